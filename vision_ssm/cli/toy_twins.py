"""Train every toy twin's whole schedule on the toy data, beside its OpenMMLab control, and report.

    python tools/toy_twins.py                                  # every family, into outputs/toy_twins
    python tools/toy_twins.py --families segmentation --update-zoo

Writes OUT/toy_twins.json and OUT/toy_twins.md; with --update-zoo also the committed results file
(vision_ssm/bench/results/DATE_cpu_toy_twins[_FAMILIES].json) and model_zoo.md's toy table, whose
rows come from the newest committed run of each config.  Toy data are
generated into OUT/data unless --data-root names a tools/make_toy_data.py output.
"""
import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from vision_ssm.bench.measure import device_name
from vision_ssm.cli import REPO_ROOT, recorded_command
from vision_ssm.files import write_text_atomic
from vision_ssm.mmlab import toy_twins


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", choices=toy_twins.FAMILIES, default=None,
                   help="task families to run (default: all)")
    p.add_argument("--data-root", default=None, help="toy data written by tools/make_toy_data.py")
    p.add_argument("--out", default=str(REPO_ROOT / "outputs" / "toy_twins"))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-controls", action="store_true", help="skip the OpenMMLab control backbones")
    p.add_argument("--update-zoo", action="store_true", help="write the results file and model_zoo.md's table")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = Path(args.data_root) if args.data_root else out / "data"
    if args.data_root is None:
        from vision_ssm.data.toy import make_all
        make_all(str(data_root))
    elif not data_root.is_dir():
        raise SystemExit(f"--data-root {data_root} is not a directory (write one with tools/make_toy_data.py)")

    twins = toy_twins.select(args.families)
    configs = toy_twins.scheduled_configs(twins, controls=not args.no_controls)
    start, runs = time.perf_counter(), []
    for i, config in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {config} ...", flush=True)
        cfg = toy_twins.load_toy_config(config, data_root, out / "work" / Path(config).stem)
        result = toy_twins.train_and_test(cfg)
        result.pop("runner")
        runs.append(dict(config=config, **result))
        shown = ", ".join(f"{k} {v:.3f}" for k, v in result["metrics"].items() if isinstance(v, float))
        print(f"[{i}/{len(configs)}] {config}: {shown} ({result['train_seconds']:.0f} s training)", flush=True)

    import mmengine
    result = dict(
        date=date.today().isoformat(), device=device_name("cpu"),
        versions=dict(torch=torch.__version__, mmengine=mmengine.__version__, python=platform.python_version()),
        command=recorded_command("toy_twins", argv),
        minutes=(time.perf_counter() - start) / 60,
        twins=[dict(config=t.config, family=t.family, targets=[list(x) for x in t.targets],
                    control=None if args.no_controls else t.control) for t in twins],
        runs=runs)
    write_text_atomic(out / "toy_twins.json", json.dumps(result, indent=1))
    text = toy_twins.markdown(result)
    write_text_atomic(out / "toy_twins.md", text + "\n")
    print(text)
    if args.update_zoo:  # the table keeps earlier results files' rows for the families not run here
        from vision_ssm.bench.render import save_result
        from vision_ssm.zoo import update_markdown
        name = "cpu_toy_twins" + ("_" + "-".join(args.families) if args.families else "")
        results = save_result(result, name)
        update_markdown(REPO_ROOT / "model_zoo.md", toy_twins.markdown(toy_twins.committed_results()),
                        begin=toy_twins.BEGIN, end=toy_twins.END)
        print(f"wrote {results.relative_to(REPO_ROOT)} and model_zoo.md's toy table")
    below = toy_twins.below_target(result)
    for line in below:
        print(f"below target: {line}", file=sys.stderr)
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
