"""Scan-strategy benchmark: one backbone, every (or chosen) 2D scan strategy.

The suite behind ``tools/benchmark_scans.py``.  For each strategy (``scans.list_scans()``, or
``name:key=value,...`` with options, e.g. ``local:window=4``) and each resolution: parameters,
GFLOPs (:func:`vision_ssm.flops.count_gflops`), inference and training throughput and peak
memory (measured by :func:`vision_ssm.bench.models.measure`).  With a training task (``digits``,
``pathfinder`` or an ImageFolder directory) each strategy is also trained for a few epochs with
several seeds through :func:`vision_ssm.train.train`, and the final top-1 is reported as
mean ± std (sample standard deviation over the seeds).

Scaling mode (:func:`run_scaling`): a resolution sweep contrasting the SSM backbones (VMamba-T,
Vim-T) with DeiT-T and Swin-T on time per image and peak memory, on a log-log plot with the
fitted exponent of each model (time ∝ pixels^k: k = 1 is linear in the number of tokens, k = 2
quadratic).
"""
from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from . import models as bench_models
from ..train.config import plain_values
from .measure import markdown_table

__all__ = ["DEFAULT_MODEL", "SMALL_KWARGS", "QUICK_SCANS", "SCALING_SIZES", "parse_scan", "parse_scans",
           "run_scan_benchmark", "train_scans", "report", "plot", "write_outputs", "run_scaling",
           "scaling_exponents", "scaling_report", "plot_scaling"]

DEFAULT_MODEL = "vmamba_tiny_s1l8"
# The default backbone is a small VMamba (VMamba-T[s1l8] code, fewer and narrower blocks).
SMALL_KWARGS: dict[str, Any] = dict(dims=32, depths=(1, 1, 2, 1))
QUICK_SCANS = ("raster", "bidirectional", "cross", "hilbert")
QUICK_SIZE = 64
SCALING_SIZES = (224, 384, 512, 768, 1024)
BUILTIN_TASKS = ("digits", "pathfinder")


# ------------------------------------------------------------------------------------ scans
def parse_scan(item: str) -> tuple[str, Any]:
    """``"cross"`` -> ("cross", "cross"); ``"local:window=4"`` -> ("local:window=4", {"name": "local", "window": 4}).

    Raises ValueError naming the available strategies for an unknown name, and the strategy's
    own error for bad options (the strategy is built once to check).
    """
    import scans
    from vision_ssm.train.config import parse_kwargs
    name, _, opts = item.partition(":")
    name = name.strip()
    if name not in scans.list_scans():
        import difflib
        close = difflib.get_close_matches(name, scans.list_scans(), n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ValueError(f"unknown scan {name!r}{hint}; available scans: {', '.join(scans.list_scans())}")
    options = parse_kwargs([o for o in _top_level_split(opts) if o.strip()], flag="--scans") if opts else {}
    scans.get_scan(name, **options)  # validates the options
    return item, (dict(name=name, **options) if options else name)


def _top_level_split(text: str, sep: str = ",") -> list[str]:
    """``text`` split at the ``sep`` outside brackets and quotes: ``"a=(1,2),b='x,y'"`` -> two items."""
    items, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return items + [text[start:]]


def parse_scans(items: Sequence[str] | None, quick: bool = False) -> list[tuple[str, Any]]:
    """Strategies to benchmark: ``items``, or every registered one (``QUICK_SCANS`` with ``quick``)."""
    import scans
    if not items:
        items = [s for s in QUICK_SCANS if s in scans.list_scans()] if quick else scans.list_scans()
    out = [parse_scan(i) for i in items]
    labels = [label for label, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--scans: duplicate entries in {labels}")
    return out


def _directions(scan_arg: Any) -> int:
    import scans
    if isinstance(scan_arg, Mapping):
        options = dict(scan_arg)
        return scans.get_scan(options.pop("name"), **options).num_directions
    return scans.get_scan(scan_arg).num_directions


# ------------------------------------------------------------------------------------ suite
def run_scan_benchmark(
        model: str = DEFAULT_MODEL,
        scan_list: Sequence[tuple[str, Any]] = (),
        sizes: Sequence[int] = (224,),
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        batch: int = 8,
        device: str = "cpu",
        threads: int | None = 2,
        amp: str = "none",
        train_throughput: bool = True,
        memory: bool = True,
        flops: bool = True,
        repeats: int = 3,
        warmup: int = 1,
        budget_s: float | None = None,
        isolate: bool = False,
        task: str | None = None,
        train_options: Mapping[str, Any] | None = None,
        seeds: Sequence[int] = (0, 1, 2),
        out_dir: str | os.PathLike | None = None,
        progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Measures ``model`` with every strategy of ``scan_list`` at every size; trains on ``task``.

    Returns ``dict(rows, accuracy, model, model_kwargs, sizes, device, ...)``: one row per
    (scan, size) with ``scan``, ``directions``, ``params``, ``gflops``, ``infer_ips``,
    ``train_ips``, ``infer_peak_mib``, ``train_peak_mib`` (and ``acc_mean`` / ``acc_std`` /
    ``acc_n`` after training).
    """
    model = bench_models.resolve_model(model)
    if device.startswith("cpu") and threads:
        torch.set_num_threads(int(threads))
    scan_list = list(scan_list) or parse_scans(None)
    kwargs = dict(model_kwargs or {})
    specs = []
    for label, scan_arg in scan_list:
        for size in sizes:
            specs.append(dict(model=model, img_size=int(size), batch=batch, device=device, threads=threads, amp=amp,
                              model_kwargs=kwargs, scan=scan_arg, key=label, label=bench_models.label_of(model),
                              infer=True, train=train_throughput, memory=memory, flops=flops, repeats=repeats,
                              warmup=warmup, budget_s=budget_s))
    if progress:
        progress(f"benchmarking {model}{' ' + str(kwargs) if kwargs else ''} with {len(scan_list)} scans at "
                 f"{', '.join(map(str, sizes))} px on {bench_models.device_name(device)}, batch {batch}")
    rows = bench_models.measure_many(specs, isolate=isolate, progress=progress)
    for row, (label, scan_arg) in zip(rows, [(lbl, arg) for lbl, arg in scan_list for _ in sizes]):
        row["scan"] = row.pop("key", label)
        row["scan_spec"] = scan_arg
        row["directions"] = _directions(scan_arg)
    result = dict(rows=rows, accuracy=[], model=model, label=bench_models.label_of(model),
                  model_kwargs=plain_values(kwargs), sizes=list(sizes), scans=[label for label, _ in scan_list],
                  task=task, seeds=list(seeds) if task else [], train_options=plain_values(dict(train_options or {})),
                  device=bench_models.device_name(device), date=date.today().isoformat(), torch=torch.__version__,
                  threads=threads, batch=batch, amp=amp, repeats=repeats, warmup=warmup)
    if task:
        if out_dir is not None:  # the measurements are kept whatever becomes of the training runs
            paths = write_outputs(result, out_dir)
            if progress:
                progress(f"measurements written to {paths['json']}; training each scan on {task}")
        result["accuracy"] = train_scans(model, scan_list, task, model_kwargs=kwargs, seeds=seeds, device=device,
                                         options=train_options, out_dir=out_dir, progress=progress)
        by_scan = {a["scan"]: a for a in result["accuracy"]}
        for row in rows:
            acc = by_scan.get(row["scan"])
            if acc and acc.get("n"):
                row.update(acc_mean=acc["mean"], acc_std=acc["std"], acc_n=acc["n"])
    return result


def _resolve_task(task: str) -> dict[str, Any]:
    if task.lower() in BUILTIN_TASKS:
        return dict(dataset=task.lower())
    if os.path.isdir(task):
        return dict(data_dir=os.fspath(task))
    raise ValueError(f"--train {task!r}: expected {' or '.join(BUILTIN_TASKS)}, or an ImageFolder directory "
                     f"with train/ and val/ subfolders (no such directory)")


def parse_train_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values as Python literals, else strings) checked against TrainConfig's fields."""
    import dataclasses

    from vision_ssm.train.config import TrainConfig, parse_kwargs
    dashed = [item.partition("=") for item in items]  # tools/train.py spells the names with dashes
    options = parse_kwargs([key.replace("-", "_") + sep + value for key, sep, value in dashed], flag="--train-options")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in options:
        if key not in fields:
            raise ValueError(f"--train-options: unknown setting {key!r}; known: {', '.join(sorted(fields))}")
        if key in PER_RUN_SETTINGS:
            raise ValueError(f"--train-options: {key!r} is set by each run (from --model, --model-kwargs, --scans, "
                             f"--seeds, --train, --device, --out); it cannot be overridden")
    return options


# TrainConfig fields that train_scans sets for each (strategy, seed) run
PER_RUN_SETTINGS = ("model", "model_kwargs", "scan", "seed", "device", "output", "resume", "dataset", "data_dir",
                    "progress", "plot")


def _run_config(model: str, label: str, scan_arg: Any, seed: int, data: Mapping[str, Any], *,
                model_kwargs: Mapping[str, Any] | None, device: str, options: Mapping[str, Any],
                root: Path) -> dict[str, Any]:
    """The TrainConfig of one (strategy, seed) run."""
    kwargs = dict(model_kwargs or {})
    cfg: dict[str, Any] = dict(model=model, model_kwargs=kwargs, seed=int(seed), device=device,
                               output=str(root / f"{_slug(label)}-seed{seed}"), progress="none", plot=False, **data)
    if isinstance(scan_arg, str):
        cfg["scan"] = scan_arg
    else:
        kwargs["scan"] = dict(scan_arg)
    cfg.update(options)
    return cfg


def check_training(model: str, scan: tuple[str, Any], task: str, *, model_kwargs: Mapping[str, Any] | None = None,
                   seed: int = 0, device: str = "cpu", options: Mapping[str, Any] | None = None) -> None:
    """Raises ValueError naming the setting when the training runs of ``train_scans`` are misconfigured
    (checked before any measurement, so a bad setting does not surface after them)."""
    from vision_ssm.train import TrainConfig
    label, scan_arg = scan
    TrainConfig.from_any(_run_config(model, label, scan_arg, seed, _resolve_task(task), model_kwargs=model_kwargs,
                                     device=device, options=dict(options or {}), root=Path("unused")))


def train_scans(model: str, scan_list: Sequence[tuple[str, Any]], task: str, *,
                model_kwargs: Mapping[str, Any] | None = None, seeds: Sequence[int] = (0, 1, 2),
                device: str = "cpu", options: Mapping[str, Any] | None = None,
                out_dir: str | os.PathLike | None = None,
                progress: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Trains ``model`` once per (strategy, seed) with :func:`vision_ssm.train.train`.

    ``options``: extra :class:`vision_ssm.train.TrainConfig` fields (``epochs``, ``img_size``,
    ``batch_size``, ``lr``, ``train_samples``, ...).  Returns one entry per strategy:
    ``scan``, ``mean``, ``std`` (sample std; 0 for one seed), ``n``, ``runs`` (per seed:
    ``seed``, ``final_top1``, ``best_top1``, ``train_time_s``) and ``errors``.
    """
    from vision_ssm.train import train

    data = _resolve_task(task)
    options = dict(options or {})
    root = Path(out_dir or "outputs/benchmark_scans") / "train"
    total = len(scan_list) * len(seeds)
    done = 0
    out = []
    for label, scan_arg in scan_list:
        runs, errors = [], []
        for seed in seeds:
            done += 1
            cfg = _run_config(model, label, scan_arg, seed, data, model_kwargs=model_kwargs, device=device,
                              options=options, root=root)
            t0 = time.perf_counter()
            try:
                res = train(cfg)
            except ValueError:
                raise  # a configuration error: the same for every run
            except Exception as err:  # noqa: BLE001 - report, go on with the other runs
                errors.append(f"seed {seed}: {type(err).__name__}: {err}")
                if progress:
                    progress(f"[train {done}/{total}] scan={label} seed={seed}: FAILED ({type(err).__name__}: {err})")
                continue
            run = dict(seed=int(seed), final_top1=res.get("final_top1"), best_top1=res.get("best_top1"),
                       train_time_s=res.get("train_time_s"), output_dir=res.get("output_dir"))
            runs.append(run)
            if progress:
                progress(f"[train {done}/{total}] scan={label} seed={seed}: top-1 {run['final_top1']:.2f} "
                         f"(best {run['best_top1']:.2f}) in {time.perf_counter() - t0:.0f}s")
        accs = [r["final_top1"] for r in runs if r["final_top1"] is not None]
        out.append(dict(scan=label, n=len(accs), mean=statistics.fmean(accs) if accs else None,
                        std=statistics.stdev(accs) if len(accs) > 1 else (0.0 if accs else None),
                        runs=runs, errors=errors))
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


TABLE_COLUMNS = ["scan", "directions", "img_size", "params_m", "gflops", "infer_ips", "train_ips", "infer_peak_mib",
                 "train_peak_mib", "top-1", "error"]
CSV_COLUMNS = ["model", "scan", "directions", "img_size", "batch", "amp", "params", "params_m", "gflops", "infer_ips",
               "infer_ms", "infer_peak_mib", "train_ips", "train_ms", "train_peak_mib", "acc_mean", "acc_std", "acc_n",
               "error"]


def _acc_text(row: Mapping[str, Any]) -> str:
    if row.get("acc_mean") is None:
        return ""
    return f"{row['acc_mean']:.2f} ± {row['acc_std']:.2f} (n={row['acc_n']})"


def report(result: Mapping[str, Any]) -> str:
    rows = [dict(r, **{"top-1": _acc_text(r)}) for r in result["rows"]]
    cols = [c for c in TABLE_COLUMNS if any(r.get(c) not in (None, "") for r in rows)]
    kwargs = ", ".join(f"{k}={v}" for k, v in result["model_kwargs"].items())
    head = (f"scan benchmark: {result['label']} ({result['model']}{', ' + kwargs if kwargs else ''})"
            f" on {result['device']}, torch {result['torch']}, batch {result['batch']}, "
            f"{'fp32' if result['amp'] == 'none' else result['amp']}, {result['date']}\n")
    if result.get("task"):
        opts = result.get("train_options") or {}
        head += (f"top-1: final validation accuracy on {result['task']} after {opts.get('epochs', 'default')} epochs "
                 f"at {opts.get('img_size', 'default')} px, mean ± std over seeds {result['seeds']}\n")
    return head + "\n" + markdown_table(rows, cols)


def write_outputs(result: Mapping[str, Any], out_dir: str | os.PathLike,
                  stem: str = "benchmark_scans") -> dict[str, str]:
    """``stem``.json, .csv, .md and .png in ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: str(out / f"{stem}.{ext}") for ext in ("json", "csv", "md", "png")}
    Path(paths["json"]).write_text(json.dumps(plain_values(result), indent=2))
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in result["rows"]:
            writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    Path(paths["md"]).write_text(report(result) + "\n")
    plot(result, paths["png"])
    return paths


def plot(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Accuracy per scan with error bars (when trained) and throughput per scan (one bar group per size)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scans_ = list(result["scans"])
    rows = [r for r in result["rows"] if not r.get("error")]
    acc = [a for a in result.get("accuracy", []) if a.get("n")]
    panels = (["acc"] if acc else []) + ["infer"] + (["train"] if any("train_ips" in r for r in rows) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 0.7 * len(scans_) + 2) * len(panels) / 1.4, 4.4),
                             squeeze=False)
    xs = list(range(len(scans_)))
    for ax, panel in zip(axes[0], panels):
        if panel == "acc":
            by = {a["scan"]: a for a in acc}
            means = [by[s]["mean"] if s in by else float("nan") for s in scans_]
            stds = [by[s]["std"] if s in by else 0.0 for s in scans_]
            ax.bar(xs, means, yerr=stds, capsize=4, color="tab:green", alpha=0.8)
            finite = [m for m in means if m == m]
            if finite:
                lo = max(0.0, min(finite) - 3 * max(stds + [1.0]))
                ax.set_ylim(lo, min(100.0, max(finite) + 3 * max(stds + [1.0])))
            ax.set_ylabel("top-1 (%), mean ± std")
            ax.set_title(f"accuracy on {result.get('task')} (n={max(a['n'] for a in acc)} seeds)")
        else:
            sizes = sorted({r["img_size"] for r in rows})
            width = 0.8 / max(1, len(sizes))
            for i, size in enumerate(sizes):
                vals = []
                for s in scans_:
                    hit = next((r for r in rows if r["scan"] == s and r["img_size"] == size), None)
                    vals.append(hit.get(f"{panel}_ips", float("nan")) if hit else float("nan"))
                ax.bar([x + i * width for x in xs], vals, width, label=f"{size}px")
            ax.set_ylabel(f"{'inference' if panel == 'infer' else 'training'} img/s (batch {result['batch']})")
            ax.set_title(f"{'inference' if panel == 'infer' else 'training (fwd+bwd)'} throughput")
            if len(sizes) > 1:
                ax.legend(fontsize=8)
            xs_off = [x + width * (len(sizes) - 1) / 2 for x in xs]
            ax.set_xticks(xs_off)
            ax.set_xticklabels(scans_, rotation=30, ha="right")
            continue
        ax.set_xticks(xs)
        ax.set_xticklabels(scans_, rotation=30, ha="right")
    fig.suptitle(f"{result['label']} scan strategies, {result['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------- scaling
def run_scaling(models: Sequence[str] = bench_models.SCALING_MODELS, sizes: Sequence[int] = SCALING_SIZES, *,
                model_kwargs: Mapping[str, Mapping[str, Any]] | None = None, batch: int = 8, device: str = "cpu",
                threads: int | None = 2, amp: str = "none", train_throughput: bool = False, memory: bool = True,
                repeats: int = 3, warmup: int = 1, budget_s: float | None = None, isolate: bool = True,
                progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Resolution sweep of ``models`` (SSM backbones vs DeiT-T / Swin-T): time and memory per size."""
    plan = [(bench_models.resolve_model(m), tuple(int(s) for s in sizes)) for m in models]
    pairs = [(a, b) for a, b in (("vmamba_tiny_s1l8", "swin_tiny_patch4_window7_224"),
                                 ("vim_tiny_patch16_224", "deit_tiny_patch16_224"))]
    result = bench_models.run_benchmark(plan, batch=batch, device=device, threads=threads, amp=amp,
                                        train=train_throughput, memory=memory, repeats=repeats, warmup=warmup,
                                        budget_s=budget_s, model_kwargs=model_kwargs, isolate=isolate, pairs=pairs,
                                        progress=progress)
    for row in result["rows"]:
        if "infer_ms" in row:
            row["infer_ms_per_image"] = row["infer_ms"] / row["batch"]
        if "train_ms" in row:
            row["train_ms_per_image"] = row["train_ms"] / row["batch"]
    result["exponents"] = scaling_exponents(result["rows"])
    result["sizes"] = [int(s) for s in sizes]
    return result


def _fit_slope(points: Sequence[tuple[float, float]]) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pts)
    my = statistics.fmean(p[1] for p in pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def scaling_exponents(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Least-squares slope of log(time per image) and log(peak memory) against log(pixels)."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model and not r.get("error")]
        entry: dict[str, Any] = dict(model=model, label=mine[0].get("label", model) if mine else model)
        for key, name in (("infer_ms_per_image", "time_exponent"), ("infer_peak_mib", "memory_exponent"),
                          ("train_ms_per_image", "train_time_exponent")):
            slope = _fit_slope([(r["img_size"] ** 2, r[key]) for r in mine if key in r])
            if slope is not None:
                entry[name] = slope
        out.append(entry)
    return out


def scaling_report(result: Mapping[str, Any]) -> str:
    rows = result["rows"]
    cols = [c for c in ["label", "img_size", "batch", "infer_ms_per_image", "infer_ips", "infer_peak_mib",
                        "train_ms_per_image", "train_peak_mib", "error"] if any(c in r for r in rows)]
    text = (f"resolution scaling on {result['device']}, torch {result['torch']}, batch {result['batch']}, "
            f"{'fp32' if result['amp'] == 'none' else result['amp']}, {result['date']}\n\n"
            + markdown_table(rows, cols))
    exps = result.get("exponents") or []
    if exps:
        ecols = [c for c in ["label", "time_exponent", "memory_exponent", "train_time_exponent"]
                 if any(c in e for e in exps)]
        text += ("\n\nfitted exponents k in cost ∝ pixels^k (1: linear in tokens, 2: quadratic)\n\n"
                 + markdown_table(exps, ecols))
    if result.get("side_by_side"):
        sbs = result["side_by_side"]
        text += "\n\nratios (a/b)\n\n" + markdown_table(sbs, list(dict.fromkeys(k for r in sbs for k in r)))
    return text


_SSM_PREFIXES = ("vmamba", "vanilla_vmamba", "vim")


def plot_scaling(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Log-log: time per image and peak memory against pixels; SSMs solid, attention models dashed,
    with dotted O(N) and O(N²) guides through the first point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if not r.get("error")]
    metrics = [("infer_ms_per_image", "inference ms / image"), ("infer_peak_mib", "inference peak memory (MiB)")]
    metrics = [m for m in metrics if any(m[0] in r for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(6 * max(1, len(metrics)), 4.6), squeeze=False)
    exps = {e["model"]: e for e in result.get("exponents", [])}
    for ax, (key, ylabel) in zip(axes[0], metrics):
        guide_done = False
        models = list(dict.fromkeys(r["model"] for r in rows))
        for model in models:
            pts = sorted((r["img_size"] ** 2, r[key]) for r in rows if r["model"] == model and r.get(key, 0) > 0)
            if not pts:
                continue
            label = next(r.get("label", model) for r in rows if r["model"] == model)
            k = exps.get(model, {}).get("time_exponent" if key.endswith("per_image") else "memory_exponent")
            style = "-" if model.startswith(_SSM_PREFIXES) else "--"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=f"C{models.index(model) % 10}",
                    label=f"{label}" + (f" (k={k:.2f})" if k is not None else ""))
            if not guide_done and len(pts) > 1:
                x0, y0 = pts[0]
                xs = [p[0] for p in pts]
                ax.plot(xs, [y0 * x / x0 for x in xs], ":", color="gray", lw=1, label="∝ N")
                ax.plot(xs, [y0 * (x / x0) ** 2 for x in xs], ":", color="black", lw=1, label="∝ N²")
                guide_done = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = sorted({r["img_size"] for r in rows})
        ax.set_xticks([s * s for s in sizes])
        ax.set_xticklabels([f"{s}²" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("pixels (resolution²)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not metrics:
        axes[0][0].text(0.5, 0.5, "no successful measurement", ha="center", va="center")
    fig.suptitle(f"SSM vs attention backbones: resolution scaling, {result['device']}, batch {result['batch']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_scaling_outputs(result: Mapping[str, Any], out_dir: str | os.PathLike,
                          stem: str = "benchmark_scaling") -> dict[str, str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: str(out / f"{stem}.{ext}") for ext in ("json", "csv", "md", "png")}
    Path(paths["json"]).write_text(json.dumps(plain_values(result), indent=2))
    cols = ["model", "label", "img_size", "batch", "amp", "params", "infer_ms", "infer_ms_per_image", "infer_ips",
            "infer_peak_mib", "train_ms", "train_ms_per_image", "train_ips", "train_peak_mib", "error"]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in result["rows"]:
            writer.writerow({k: row.get(k, "") for k in cols})
    Path(paths["md"]).write_text(scaling_report(result) + "\n")
    plot_scaling(result, paths["png"])
    return paths
