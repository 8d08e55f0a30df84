"""The model-zoo table (``model_zoo.md``): every registered model with our measurements next to
the published figures.

Per model: parameters (checked against the official code's exact count), GFLOPs at 224
(:func:`vision_ssm.flops.count_gflops`, scan counted as 9·B·L·D·N like the published figures),
CPU inference throughput measured here (batch 8, 2 threads, fp32), GPU throughput read from a
``tools/benchmark_models.py`` JSON of a GPU run, the published top-1 with its source, and the
pretrained weights' source (URL or hub id from the model's ``pretrained_cfg``).

Measurements are cached in a JSON file, keyed by model and measurement settings, so that the
table can be regenerated without measuring again.  :func:`update_markdown` rewrites only the part
of ``model_zoo.md`` between ``<!-- zoo:begin -->`` and ``<!-- zoo:end -->``.
"""
from __future__ import annotations

import json
import os
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .bench import models as bench_models
from .files import write_text_atomic

__all__ = ["PUBLISHED", "BEGIN", "END", "measure_zoo", "load_gpu_results", "build_rows", "render_table",
           "update_markdown", "params_check", "pretrained_source"]

BEGIN, END = "<!-- zoo:begin -->", "<!-- zoo:end -->"

_VMAMBA_SRC = ("VMamba README", "https://github.com/MzeroMiko/VMamba")
_VIM_SRC = ("Vim README", "https://github.com/hustvl/Vim")

# Published figures (ImageNet-1k, 224x224).  ``params``: the exact parameter count of the
# official code's model (the figure to match); ``params_pub``: as the README rounds it;
# ``tp_a100``: the VMamba authors' inference images/s on one A100 at batch 128.
PUBLISHED: dict[str, dict[str, Any]] = {
    "vanilla_vmamba_tiny": dict(top1=82.2, params=22_893_448, params_pub="23M", gflops=5.6, tp_a100=638,
                                train_tp_a100=195, source=_VMAMBA_SRC, release="#v0cls"),
    "vanilla_vmamba_small": dict(top1=83.5, params=44_417_416, params_pub="44M", gflops=11.2, tp_a100=359,
                                 train_tp_a100=111, source=_VMAMBA_SRC, release="#v0cls"),
    "vanilla_vmamba_base": dict(top1=83.7, params=76_254_056, params_pub="76M", gflops=18.0, tp_a100=268,
                                train_tp_a100=84, source=_VMAMBA_SRC, release="#v0cls"),
    "vmamba_tiny_s1l8": dict(top1=82.6, params=30_249_064, params_pub="30M", gflops=4.9, tp_a100=1686,
                             train_tp_a100=571, source=_VMAMBA_SRC, release="#v2cls"),
    "vmamba_small_s1l20": dict(top1=83.3, params=49_012_840, params_pub="49M", gflops=8.6, tp_a100=1106,
                               train_tp_a100=390, source=_VMAMBA_SRC, release="#v2cls"),
    "vmamba_base_s1l20": dict(top1=83.8, params=86_614_504, params_pub="87M", gflops=15.2, tp_a100=827,
                              train_tp_a100=313, source=_VMAMBA_SRC, release="#v2cls"),
    "vmamba_tiny_s2l5": dict(top1=82.5, params=30_705_832, params_pub="31M", gflops=4.9, tp_a100=1340,
                             train_tp_a100=464, source=_VMAMBA_SRC, release="#v2cls"),
    "vmamba_small_s2l15": dict(top1=83.6, params=50_147_752, params_pub="50M", gflops=8.7, tp_a100=877,
                               train_tp_a100=314, source=_VMAMBA_SRC, release="#v2cls"),
    "vmamba_base_s2l15": dict(top1=83.9, params=88_557_800, params_pub="89M", gflops=15.4, tp_a100=646,
                              train_tp_a100=247, source=_VMAMBA_SRC, release="#v2cls"),
    "vim_tiny_patch16_224": dict(top1=76.1, top5=93.0, params=7_148_008, params_pub="7M", source=_VIM_SRC),
    "vim_tiny_patch16_stride8_224": dict(top1=78.3, top5=94.2, params=7_250_344, params_pub="7M", source=_VIM_SRC),
    "vim_small_patch16_224": dict(top1=80.5, top5=95.1, params=25_796_584, params_pub="26M", source=_VIM_SRC),
    "vim_small_patch16_stride8_224": dict(top1=81.6, top5=95.4, params=26_001_256, params_pub="26M",
                                          source=_VIM_SRC),
    "vim_base_patch16_224": dict(top1=81.9, top5=95.8, params=97_598_440, params_pub="98M", source=_VIM_SRC),
}

CACHE_VERSION = 1


# ---------------------------------------------------------------------------------- measuring
def _signature(img_size: int, batch: int, threads: int, model_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return dict(img_size=int(img_size), batch=int(batch), threads=int(threads),
                model_kwargs=json.loads(json.dumps(dict(model_kwargs or {}), default=list)))


def load_cache(path: str | os.PathLike | None) -> dict[str, Any]:
    if not path or not os.path.isfile(path):
        return dict(version=CACHE_VERSION, entries={})
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--cache {path}: not valid JSON ({err}); delete it or pass --remeasure") from err
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        raise ValueError(f"--cache {path}: not a model-zoo cache of version {CACHE_VERSION}; "
                         f"delete it or pass --remeasure")
    return data


def save_cache(cache: Mapping[str, Any], path: str | os.PathLike) -> None:
    write_text_atomic(path, json.dumps(cache, indent=2))


def measure_zoo(models: Sequence[str], *, cache_path: str | os.PathLike | None = None, remeasure: bool = False,
                throughput: bool = True, img_size: int = 224, batch: int = 8, threads: int = 2, repeats: int = 3,
                warmup: int = 1, budget_s: float | None = None,
                model_kwargs: Mapping[str, Mapping[str, Any]] | None = None, isolate: bool = True,
                progress: Callable[[str], None] | None = print) -> dict[str, dict[str, Any]]:
    """Params, GFLOPs and (``throughput``) CPU images/s of each model, from the cache where valid.

    An entry is reused when its settings (size, batch, threads, model kwargs) match and it has
    what is asked for; new measurements are written back to ``cache_path`` after each model.
    Returns ``{model: entry}``.
    """
    try:
        cache = load_cache(cache_path)
    except ValueError:
        if not remeasure:
            raise
        cache = dict(version=CACHE_VERSION, entries={})  # --remeasure starts a broken cache afresh
    entries = cache["entries"]
    out = {}
    for i, name in enumerate(models):
        kwargs = dict((model_kwargs or {}).get(name, {}))
        sig = _signature(img_size, batch, threads, kwargs)
        old = entries.get(name)
        usable = (old is not None and not remeasure and old.get("signature") == sig and "gflops" in old
                  and (not throughput or "cpu_ips" in old))
        if usable:
            out[name] = old
            if progress:
                progress(f"[{i + 1}/{len(models)}] {name}: cached ({old.get('measured_at', '?')})")
            continue
        spec = dict(model=name, img_size=img_size, batch=batch, device="cpu", threads=threads, amp="none",
                    model_kwargs=kwargs, infer=throughput, train=False, memory=False, flops=True,
                    repeats=repeats, warmup=warmup, budget_s=budget_s)
        t0 = time.perf_counter()
        row = bench_models.measure_isolated(spec) if isolate else bench_models.measure(spec)
        entry = dict(signature=sig, measured_at=time.strftime("%Y-%m-%d %H:%M"),
                     cpu=f"{platform.processor() or platform.machine()}", torch=torch.__version__)
        for key in ("params", "gflops"):
            if key in row:
                entry[key] = row[key]
        if "infer_ips" in row:
            entry.update(cpu_ips=row["infer_ips"], cpu_ms=row["infer_ms"])
        elif old is not None and old.get("signature") == sig and "cpu_ips" in old:
            entry.update(cpu_ips=old["cpu_ips"], cpu_ms=old.get("cpu_ms"))  # keep an earlier throughput
        if row.get("error"):
            entry["error"] = row["error"]
        out[name] = entry
        if not row.get("error"):
            entries[name] = entry
            if cache_path:
                save_cache(cache, cache_path)
        if progress:
            what = f"FAILED ({row['error']})" if row.get("error") else (
                f"{entry['params'] / 1e6:.2f}M params, {entry['gflops']:.2f} GFLOPs"
                + (f", {entry['cpu_ips']:.1f} img/s" if "cpu_ips" in entry else ""))
            progress(f"[{i + 1}/{len(models)}] {name}: {what} ({time.perf_counter() - t0:.0f}s)")
    return out


def load_gpu_results(path: str | os.PathLike, img_size: int = 224) -> dict[str, Any]:
    """``{"device", "batch", "amp", "rows": {model: row}}`` from a benchmark_models.py JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--gpu-json {path}: cannot read it ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"--gpu-json {path}: not a benchmark_models.py result (no 'rows' list)")
    rows = {r["model"]: r for r in data["rows"]
            if r.get("img_size") == img_size and not r.get("error") and "infer_ips" in r and not r.get("model_kwargs")}
    return dict(device=data.get("device", "?"), batch=data.get("batch"), amp=data.get("amp", "none"), rows=rows,
                file=os.path.basename(os.fspath(path)), date=data.get("date"), torch=data.get("torch"))


# ------------------------------------------------------------------------------------ the table
def params_check(name: str, params: int | None) -> tuple[str, bool]:
    """("✓" | "✗ official N" | "-", mismatch?) against the official exact count."""
    pub = PUBLISHED.get(name)
    if pub is None or params is None or "params" not in pub:
        return "-", False
    if int(params) == int(pub["params"]):
        return "✓", False
    return f"✗ official {pub['params']:,}", True


def pretrained_source(name: str) -> str:
    """The weights' source from the default pretrained cfg: a linked file name, or hf-hub id / file."""
    from timm.models import get_pretrained_cfg
    try:
        cfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001
        cfg = None
    if cfg is None:
        return "-"
    if getattr(cfg, "hf_hub_id", None):
        return f"hf-hub: `{cfg.hf_hub_id}`" + (f" / `{cfg.hf_hub_filename}`" if cfg.hf_hub_filename else "")
    if getattr(cfg, "url", None):
        from urllib.parse import unquote
        parts = unquote(cfg.url).rstrip("/").split("/")
        shown = "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]
        return f"[{shown}]({cfg.url})"
    if getattr(cfg, "file", None):
        return f"file `{cfg.file}`"
    return "-"


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def build_rows(models: Sequence[str], measured: Mapping[str, Mapping[str, Any]],
               gpu: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One dict per model with the table's fields (plain values and their text)."""
    rows = []
    for name in models:
        m = measured.get(name, {})
        pub = PUBLISHED.get(name, {})
        check, mismatch = params_check(name, m.get("params"))
        g = (gpu or {}).get("rows", {}).get(name)
        top1 = pub.get("top1")
        source = pub.get("source")
        rows.append(dict(
            model=name, label=bench_models.label_of(name), params=m.get("params"), params_check=check,
            params_mismatch=mismatch, gflops=m.get("gflops"), gflops_published=pub.get("gflops"),
            cpu_ips=m.get("cpu_ips"), gpu_ips=g.get("infer_ips") if g else None,
            gpu_train_ips=g.get("train_ips") if g else None, tp_a100_published=pub.get("tp_a100"),
            top1_published=top1, top5_published=pub.get("top5"),
            top1_source=f"[{source[0]}]({source[1]})" if source else "-",
            weights=pretrained_source(name), error=m.get("error")))
    return rows


TABLE_HEADER = ["model", "timm name", "params (M)", "params vs official", "GFLOPs@{size} (ours / published@224)",
                "CPU img/s", "GPU img/s", "A100 img/s (published)", "top-1 (published)", "top-1 source", "weights"]


def render_table(rows: Sequence[Mapping[str, Any]], *, batch: int, threads: int, gpu: Mapping[str, Any] | None,
                 cpu_name: str | None = None, img_size: int = 224) -> str:
    header = [h.format(size=img_size) for h in TABLE_HEADER]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        gflops = _fmt(r["gflops"], ".2f") + " / " + _fmt(r["gflops_published"], ".1f")
        gpu_txt = _fmt(r["gpu_ips"], ".0f")
        if r.get("gpu_train_ips"):
            gpu_txt += f" (train {r['gpu_train_ips']:.0f})"
        cpu_txt = _fmt(r["cpu_ips"], ".1f") if not r.get("error") or r.get("cpu_ips") else "failed"
        cells = [r["label"], f"`{r['model']}`", _fmt(r["params"] / 1e6 if r["params"] else None, ".2f"),
                 r["params_check"], gflops, cpu_txt, gpu_txt, _fmt(r["tp_a100_published"], "d"),
                 _fmt(r["top1_published"], ".1f"), r["top1_source"], r["weights"]]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "- params: ours; \"vs official\" compares with the exact count of the official code's model "
        "(✓ equal, ✗ mismatch).",
        f"- GFLOPs: fvcore at {img_size}x{img_size}, one image, the selective scan counted as 9·B·L·D·N (+ B·D·L for D), "
        "elementwise ops ignored, as the published figures.",
        f"- CPU img/s: inference at {img_size}x{img_size}, batch {batch}, fp32, {threads} threads"
        + (f", {cpu_name}" if cpu_name else "") + " (median of repeats after warm-up).",
    ]
    if gpu:
        notes.append(f"- GPU img/s: inference (and training fwd+bwd) on {gpu['device']}, batch {gpu['batch']}, "
                     f"{'fp32' if gpu['amp'] in (None, 'none') else gpu['amp']}, from `{gpu['file']}` "
                     f"(tools/benchmark_models.py"
                     + "".join(f", {k} {gpu[k]}" for k in ("torch", "date") if gpu.get(k))
                     + "); \"-\": not measured there.")
    else:
        notes.append("- GPU img/s: not measured (run tools/benchmark_models.py on a GPU and pass --gpu-json).")
    notes.append("- A100 img/s (published): the VMamba authors' inference throughput, A100, batch 128.")
    mismatched = [r for r in rows if r["params_mismatch"]]
    if mismatched:
        notes.append("- **parameter mismatch**: " + ", ".join(
            f"`{r['model']}` ours {r['params']:,} vs official {PUBLISHED[r['model']]['params']:,}" for r in mismatched))
    return "\n".join(lines + notes)


def update_markdown(path: str | os.PathLike, content: str, title: str = "# Model zoo",
                    begin: str = BEGIN, end: str = END) -> None:
    """Replaces the text between the ``begin`` / ``end`` markers of ``path`` (the zoo's by default;
    appended with the markers where absent)."""
    path = Path(path)
    block = f"{begin}\n{content.rstrip()}\n{end}"
    if not path.exists():
        path.write_text(f"{title}\n\n{block}\n", encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    i, j = text.find(begin), text.find(end)
    if i < 0 and j < 0:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    elif i < 0 or j < i:
        raise ValueError(f"{path}: the markers {begin} / {end} are incomplete or out of order; fix them by hand")
    else:
        text = text[:i] + block + text[j + len(end):]
    write_text_atomic(path, text)


def generate(models: Sequence[str], measured: Mapping[str, Mapping[str, Any]], *, batch: int, threads: int,
             gpu: Mapping[str, Any] | None = None, img_size: int = 224) -> tuple[str, list[dict[str, Any]]]:
    """The block written between the markers, and the rows."""
    rows = build_rows(models, measured, gpu)
    cpu_names = {m.get("cpu") for m in measured.values() if m.get("cpu")}
    table = render_table(rows, batch=batch, threads=threads, gpu=gpu,
                         cpu_name=next(iter(cpu_names)) if len(cpu_names) == 1 else None, img_size=img_size)
    head = (f"<!-- generated by tools/model_zoo.py on {date.today().isoformat()}, torch {torch.__version__}; "
            f"do not edit between the zoo markers -->\n")
    return head + table, rows
