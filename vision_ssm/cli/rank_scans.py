"""Rank scan orders on probe tasks where the scan carries the spatial mixing.

Trains a small Vim probe (patch 1, no 2D convolution) on generated tasks, the same seeds for every
scan: oriented-line gap detection and an order-free dot count (the negative control); cluttered
digits with --tasks digits; Pathfinder, the hard tier reported as solved seeds (val >= 90%) out of
the total, with --tasks pathfinder. Controls run first (each probe on the easy tiers, a small CNN on each task). Writes
rank_scans.json, rank_scans.md, accuracy / orientation / receptive-field PNGs to --out, and with
--update-zoo the section of model_zoo.md between the scans markers.

    python tools/rank_scans.py --out outputs/rank_scans --update-zoo     # the default table, ~1 h on 2 cores
    python tools/rank_scans.py --quick                                   # raster, column, random on lines, ~3 min
    python tools/rank_scans.py --device cuda --scale 4 --seeds 0 1 2 3 4 5 6 7 --out outputs/rank_scans_gpu
        # on a GPU: four times the training steps and samples, 8 seeds
    python tools/rank_scans.py --scans raster bidirectional cross --tasks lines    # VMamba's cross-scan claim
    python tools/rank_scans.py --tasks pathfinder --device cuda --out outputs/rank_pathfinder    # the hard tier
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from vision_ssm.bench import scan_rank
from vision_ssm.bench import scan_rank_report as report
from vision_ssm.cli import REPO_ROOT, recorded_command
from vision_ssm.data.probes import TASKS
from vision_ssm.files import write_text_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=None,
                   help="default: lines dots (--quick: lines); digits on request")
    p.add_argument("--scans", nargs="+", default=None, metavar="NAME[:K=V,...]",
                   help=f"default: {' '.join(scan_rank.DEFAULT_SCANS)} (--quick: {' '.join(scan_rank.QUICK_SCANS)}); "
                        "must include raster, the baseline")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="paired seeds (default 0-4; --quick 0 1)")
    p.add_argument("--probe", choices=scan_rank.PROBES, default="vim")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply training steps and samples (e.g. 2 on a GPU)")
    p.add_argument("--no-controls", action="store_true", help="skip the easy-tier and CNN controls")
    p.add_argument("--quick", action="store_true", help="lines only, 3 scans, 2 seeds, shorter training")
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all (default 2)")
    p.add_argument("--workers", type=int, default=None,
                   help="training processes at once, sharing --threads (default: --threads on CPU, 1 on GPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="outputs/rank_scans")
    p.add_argument("--update-zoo", action="store_true", help="write the results into model_zoo.md")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.scale <= 0:
        raise SystemExit(f"--scale must be > 0, got {args.scale}")
    torch.set_num_threads(args.threads)
    tasks = args.tasks or (["lines"] if args.quick else list(scan_rank.DEFAULT_TASKS))
    settings = {t: scan_rank.QUICK.get(t, dataclasses.replace(scan_rank.TASK_SETTINGS[t], steps=scan_rank.QUICK["lines"].steps))
                if args.quick else scan_rank.TASK_SETTINGS[t] for t in tasks}
    settings = {t: dataclasses.replace(s, steps=max(1, round(s.steps * args.scale)),
                                       train_samples=max(s.batch, round(s.train_samples * args.scale)))
                for t, s in settings.items()}
    scans = args.scans or list(scan_rank.QUICK_SCANS if args.quick else scan_rank.DEFAULT_SCANS)
    for item in scans:
        from vision_ssm.bench.scans import parse_scan
        try:
            parse_scan(item)
        except ValueError as e:
            raise SystemExit(f"--scans: {e}")
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    workers = args.workers or (1 if args.device.startswith("cuda") else args.threads)
    if workers < 1:
        raise SystemExit(f"--workers must be >= 1, got {workers}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    result = scan_rank.run_suite(tasks, scans, seeds, probe=args.probe, settings=settings,
                                 controls=not args.no_controls and not args.quick, device=args.device,
                                 workers=workers, threads=args.threads,
                                 progress=lambda line: print(line, flush=True))
    write_text_atomic(out / "rank_scans_raw.json", json.dumps(result, indent=1))  # kept if a later step fails
    erf_size = 32
    maps = scan_rank.erf_maps(scan_rank.shared_trunk_models(scans, args.probe, erf_size), erf_size)
    result["minutes"] = (time.perf_counter() - start) / 60
    result["command"] = recorded_command("rank_scans", argv)
    summary = scan_rank.summarize(result)
    result["summary"] = summary

    pictures = {"accuracy per scan (mean, 95% CI, seeds)": report.plot_accuracy(result, summary, out / "rank_scans_accuracy.png")}
    if "lines" in tasks:
        pictures["lines accuracy per orientation"] = report.plot_orientations(summary, scans, out / "rank_scans_lines_orientation.png")
    pictures["effective receptive fields"] = report.plot_erf(
        maps, out / "rank_scans_erf.png", f"{args.probe} probe at init, one trunk shared by every scan: "
        f"|d centre / d input| ({erf_size}x{erf_size}, log scale)")
    write_text_atomic(out / "rank_scans.json", json.dumps(result, indent=1))
    print(f"wrote {out / 'rank_scans.json'} ({result['minutes']:.1f} min)")

    if args.update_zoo:
        from vision_ssm.bench.render import save_result
        from vision_ssm.zoo import update_markdown
        assets = REPO_ROOT / "scans" / "assets"
        linked = {}
        for caption, path in pictures.items():
            target = assets / Path(path).name
            target.write_bytes(Path(path).read_bytes())
            linked[caption] = target.relative_to(REPO_ROOT).as_posix()
        save_result(result, "cpu_rank_scans")
        update_markdown(REPO_ROOT / "model_zoo.md", report.markdown(result, summary, linked), begin=report.BEGIN, end=report.END)
        print("updated model_zoo.md")
    text = report.markdown(result, summary, {k: Path(v).name for k, v in pictures.items()})
    write_text_atomic(out / "rank_scans.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
