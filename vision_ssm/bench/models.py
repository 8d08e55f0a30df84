"""Whole-model benchmark: inference / training throughput and peak memory of timm models.

The suite behind ``tools/benchmark_models.py`` (and the measuring core of
``tools/benchmark_scans.py`` and ``tools/model_zoo.py``).  Default plan, on one machine in one run:

    VMamba-T[s1l8] vs Swin-T and ConvNeXt-T at 224, and Vim-T vs DeiT-T at 224, 512 and 1024,

with the speed and memory ratios of the pairs (VMamba-T/Swin-T, VMamba-T/ConvNeXt-T,
Vim-T/DeiT-T) side by side.  Models are built with random weights (``pretrained=False``) at the
benchmark resolution (``img_size=`` where the constructor takes it; ConvNeXt is size-free).

Measurements (one ``(model, size)`` at a time, see :func:`measure`):
    infer_ips / infer_ms   images/s and ms per batch, eval mode under ``torch.no_grad`` (not
                           ``inference_mode``: the selective scan's index-map check reads
                           ``tensor._version``, which inference tensors lack), warm-up then the
                           median of the repeats;
    train_ips / train_ms   forward + cross-entropy + backward, no optimizer step (as the VMamba
                           authors' "train throughput");
    *_peak_mib             peak memory of one call above what is live before it (weights and
                           inputs excluded): the CUDA allocator's peak, or on the CPU the
                           resident high-water mark reset before the call, glibc returning
                           freed blocks at once meanwhile (:func:`measure.peak_memory`); taken
                           in the first warm-up call (:func:`timed_with_peak`).
With ``budget_s`` a configuration whose first steady call alone exceeds the budget is measured by
that one call (Vim-T at 1024 px takes about half a minute per batch on two CPU cores).
``free_scan`` runs the vision_ssm models with the selective scan replaced by a zero-cost stand-in
(:func:`free_selective_scan`): the speed any scan backend could at best give them.
By default every ``(model, size)`` runs in a fresh subprocess (``python -m vision_ssm.bench.models``
with a JSON spec on stdin) so that models cannot contaminate each other's memory or caches;
``isolate=False`` measures in-process with the peak reset and the previous model freed.
"""
from __future__ import annotations

import contextlib
import difflib
import gc
import json
import math
import os
import sys
import time
import traceback
import warnings
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from .measure import device_name, markdown_table, peak_memory, run_isolated, sync, time_call

__all__ = ["LABELS", "ALIASES", "DEFAULT_PLAN", "DEFAULT_PAIRS", "QUICK_KWARGS", "SCALING_MODELS",
           "register_models", "resolve_model", "zoo_models", "build_model", "measure", "measure_many",
           "run_benchmark", "ratios", "side_by_side", "report", "plot", "device_name", "parse_model_kwargs",
           "AMP_CHOICES"]

# Display names of the models the benchmarks talk about.
LABELS = {
    "vanilla_vmamba_tiny": "Vanilla-VMamba-T", "vanilla_vmamba_small": "Vanilla-VMamba-S",
    "vanilla_vmamba_base": "Vanilla-VMamba-B",
    "vmamba_tiny_s1l8": "VMamba-T[s1l8]", "vmamba_small_s1l20": "VMamba-S[s1l20]",
    "vmamba_base_s1l20": "VMamba-B[s1l20]", "vmamba_tiny_s2l5": "VMamba-T[s2l5]",
    "vmamba_small_s2l15": "VMamba-S[s2l15]", "vmamba_base_s2l15": "VMamba-B[s2l15]",
    "vim_tiny_patch16_224": "Vim-T", "vim_small_patch16_224": "Vim-S", "vim_base_patch16_224": "Vim-B",
    "vim_tiny_patch16_stride8_224": "Vim-T+", "vim_small_patch16_stride8_224": "Vim-S+",
    "swin_tiny_patch4_window7_224": "Swin-T", "convnext_tiny": "ConvNeXt-T", "deit_tiny_patch16_224": "DeiT-T",
}
# Short names accepted by --models.
ALIASES = {"vmamba_t": "vmamba_tiny_s1l8", "vim_t": "vim_tiny_patch16_224", "swin_t": "swin_tiny_patch4_window7_224",
           "convnext_t": "convnext_tiny", "deit_t": "deit_tiny_patch16_224"}

DEFAULT_PLAN: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("vmamba_tiny_s1l8", (224,)),
    ("swin_tiny_patch4_window7_224", (224,)),
    ("convnext_tiny", (224,)),
    ("vim_tiny_patch16_224", (224, 512, 1024)),
    ("deit_tiny_patch16_224", (224, 512, 1024)),
)
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("vmamba_tiny_s1l8", "swin_tiny_patch4_window7_224"),
    ("vmamba_tiny_s1l8", "convnext_tiny"),
    ("vim_tiny_patch16_224", "deit_tiny_patch16_224"),
)
# SSM backbones against attention ones, for the resolution sweep of benchmark_scans --scaling.
SCALING_MODELS = ("vmamba_tiny_s1l8", "vim_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")

# Miniature versions for --quick runs (same code paths, a few seconds each on two cores).
QUICK_KWARGS: dict[str, dict[str, Any]] = {
    "vmamba_tiny_s1l8": dict(dims=16, depths=(1, 1, 1, 1)),
    "swin_tiny_patch4_window7_224": dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2)),
    "convnext_tiny": dict(dims=(16, 32, 64, 128), depths=(1, 1, 1, 1)),
    "vim_tiny_patch16_224": dict(embed_dim=32, depth=2),
    "deit_tiny_patch16_224": dict(embed_dim=32, depth=2, num_heads=2),
}

AMP_CHOICES = ("none", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_REPO_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------- models
_registered = False


def register_models() -> None:
    """Registers the zoo's models with timm (``import vision_ssm`` and every model module)."""
    global _registered
    if _registered:
        return
    import importlib

    import vision_ssm  # noqa: F401 - registers the models
    for name in ("vmamba", "vim"):
        try:
            importlib.import_module(f"vision_ssm.models.{name}")
        except ImportError:
            pass
    _registered = True


def resolve_model(name: str) -> str:
    """An alias or timm name -> the timm name; a ValueError with close matches if unknown."""
    import timm
    register_models()
    full = ALIASES.get(name, name)
    if timm.is_model(full):
        return full
    names = timm.list_models()
    close = difflib.get_close_matches(full, names + list(ALIASES), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}: not a registered timm model{hint} "
                     f"(aliases: {', '.join(f'{k}={v}' for k, v in ALIASES.items())})")


def zoo_models(include_aliases: bool = False) -> list[str]:
    """Every model that vision_ssm registers with timm (VMamba family first, then Vim).

    The official long Vim factory names are aliases of the short ones and left out unless
    ``include_aliases``.
    """
    import timm
    from timm.models import model_entrypoint
    register_models()
    names = [n for n in timm.list_models() if model_entrypoint(n).__module__.startswith("vision_ssm.")]
    if not include_aliases:
        aliases: set[str] = set()
        for n in names:
            module = sys.modules[model_entrypoint(n).__module__]
            aliases.update(getattr(module, "OFFICIAL_NAMES", {}).values())
        names = [n for n in names if n not in aliases]
    order = list(LABELS)
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def label_of(name: str) -> str:
    return LABELS.get(name, name)


def parse_model_kwargs(items: Iterable[str] | None, models: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``["dims=16", "depths=1,1,1,1", "vim_tiny_patch16_224:depth=2"]`` -> per-model kwargs.

    ``key=value`` applies to every model; ``model:key=value`` only to that model (aliases allowed).
    Values are Python literals where they parse (``1,1,1,1`` is a tuple), else strings.
    Returns ``{model: kwargs}`` for each of ``models`` (and for every named model).
    """
    from vision_ssm.train.config import parse_kwargs
    common: list[str] = []
    specific: dict[str, list[str]] = {}
    for item in items or ():
        head = item.split("=", 1)[0]
        if ":" in head:
            model, rest = item.split(":", 1)
            specific.setdefault(resolve_model(model), []).append(rest)
        else:
            common.append(item)
    common_kwargs = parse_kwargs(common)
    out = {m: dict(common_kwargs) for m in models}
    for model, rest in specific.items():
        out.setdefault(model, dict(common_kwargs)).update(parse_kwargs(rest))
    return out


def build_model(name: str, img_size: int | None = None, model_kwargs: Mapping[str, Any] | None = None,
                scan: Any = None) -> torch.nn.Module:
    """``timm.create_model(name)`` with random weights, built for ``img_size`` when it takes one.

    Models whose constructor has no ``img_size`` (ConvNeXt, ResNets) are built without it.
    ``scan``: a scan name, ``dict(name=..., **options)`` or strategy, passed as ``scan=``.
    """
    import timm
    name = resolve_model(name)
    kwargs = dict(model_kwargs or {})
    if scan is not None:
        kwargs["scan"] = scan
    if img_size is not None and "img_size" not in kwargs:
        try:
            return timm.create_model(name, pretrained=False, img_size=img_size, **kwargs)
        except TypeError as err:
            if "img_size" not in str(err):
                raise ValueError(f"model {name!r} rejects its arguments {kwargs}: {err}") from err
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as err:
        raise ValueError(f"model {name!r} rejects its arguments {kwargs}: {err}") from err


# ----------------------------------------------------------------------------------- measuring
def _autocast(device: torch.device, amp: str | None):
    if not amp or amp == "none":
        return contextlib.nullcontext()
    if amp not in _AMP_DTYPES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])


def _num_classes(model: torch.nn.Module) -> int:
    n = getattr(model, "num_classes", None)
    return int(n) if n else 1000


@contextlib.contextmanager
def free_selective_scan():
    """Replaces the backbones' selective scan by a zero-cost stand-in (zeros of its output's shape):
    what a model costs with an infinitely fast scan, a bound that no scan backend can beat."""
    from vision_ssm.layers import bimamba, ss2d

    def stand_in(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                 return_last_state=False, backend="auto", *, index=None, merge="sum"):
        if return_last_state:
            raise ValueError("free_selective_scan: the stand-in has no last state")
        per_direction = A.dim() == 3 and merge == "none"
        shape = delta.shape if A.dim() == 2 or per_direction else (delta.shape[0], *delta.shape[2:])
        return u.new_zeros(shape)

    modules = (ss2d, bimamba)
    saved = [m.selective_scan for m in modules]
    for m in modules:
        m.selective_scan = stand_in
    try:
        yield
    finally:
        for m, fn in zip(modules, saved):
            m.selective_scan = fn


def timed_with_peak(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1,
                    budget_s: float | None = None, memory: bool = True) -> tuple[float, int | None]:
    """(median seconds of ``fn`` after warm-up, peak extra bytes of one call or None).

    The peak is taken over the first warm-up call (one extra call when ``warmup`` is 0), under the
    allocator setting that makes resident memory follow the bytes alive; that call's time is never
    a measurement (every block is fresh pages then).  The timed calls run under the steady setting.
    ``budget_s``: repeats stop once they have taken this long, and a steady warm-up call that alone
    exceeds it is taken as the measurement (for calls of minutes, one-time costs are negligible).
    """
    def once() -> float:
        t0 = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - t0

    peak = None
    if memory:
        if device.type == "cuda" and warmup > 0:  # kernels compile and autotune outside the peak call
            once()
            warmup -= 1
        peak = peak_memory(once, device)
        warmup = max(0, warmup - 1)  # peak_memory returns to the steady setting
    for _ in range(warmup):
        seconds = once()
        if budget_s is not None and seconds > budget_s:
            return seconds, peak
    return time_call(fn, device, repeats=repeats, warmup=0, budget_s=budget_s), peak


def measure(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Measures one ``(model, img_size)``; ``spec`` is a JSON-able dict:

    ``model`` (timm name), ``img_size``, ``batch`` (8), ``device`` ("cpu"), ``threads`` (CPU only;
    None leaves torch's default), ``amp`` ("none" | "bf16" | "fp16"), ``model_kwargs`` ({}),
    ``scan`` (None), ``infer`` (True), ``train`` (False), ``memory`` (True), ``flops`` (False:
    GFLOPs of one image at ``img_size`` with :func:`vision_ssm.flops.count_gflops`), ``repeats`` (3),
    ``warmup`` (1), ``budget_s`` (None; see :func:`timed_with_peak`), ``label``, ``key``,
    ``free_scan`` (False: vision_ssm models run with :func:`free_selective_scan`, labelled so).

    Returns a row: the spec's identifying fields, ``params``, ``params_m``, ``weights_mib`` and the
    measurements (``infer_ips``, ``infer_ms``, ``infer_peak_mib``, ``train_ips``, ``train_ms``,
    ``train_peak_mib``, ``gflops``), plus ``error`` when something failed (e.g. out of memory).
    """
    spec = dict(spec)
    device = torch.device(spec.get("device", "cpu"))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    batch, size = int(spec.get("batch", 8)), int(spec["img_size"])
    repeats, warmup, budget = int(spec.get("repeats", 3)), int(spec.get("warmup", 1)), spec.get("budget_s")
    amp = spec.get("amp") or "none"
    name = spec["model"]
    free_scan = bool(spec.get("free_scan")) and name in zoo_models(include_aliases=True)
    label = (spec.get("label") or label_of(name)) + (" (free scan)" if free_scan else "")
    row: dict[str, Any] = dict(model=name, label=label, img_size=size, batch=batch, amp=amp, device=str(device))
    if free_scan:
        row["free_scan"] = True
    for key in ("scan", "key"):
        if spec.get(key) is not None:
            row[key] = spec[key]
    if spec.get("model_kwargs"):
        row["model_kwargs"] = dict(spec["model_kwargs"])
    model = x = None
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(free_selective_scan() if free_scan else contextlib.nullcontext())
        torch.manual_seed(0)
        model = build_model(name, size, spec.get("model_kwargs"), scan=spec.get("scan"))
        row["params"] = sum(p.numel() for p in model.parameters())
        row["params_m"] = row["params"] / 1e6
        row["weights_mib"] = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2 ** 20
        if spec.get("flops"):
            with warnings.catch_warnings():  # fvcore's jit tracing warns about deprecated torch.jit APIs
                warnings.simplefilter("ignore")
                from vision_ssm.flops import count_gflops
                row["gflops"] = count_gflops(model, (3, size, size))
        model.to(device)
        x = torch.randn(batch, 3, size, size, device=device)
        if spec.get("infer", True):
            model.eval()

            def infer():
                with torch.no_grad(), _autocast(device, amp):
                    return model(x)

            seconds, peak = timed_with_peak(infer, device, repeats, warmup, budget, spec.get("memory", True))
            row.update(infer_ms=seconds * 1e3, infer_ips=batch / seconds)
            if peak is not None:
                row["infer_peak_mib"] = peak / 2 ** 20
        if spec.get("train", False):
            model.train()
            target = torch.randint(0, _num_classes(model), (batch,), device=device)

            def train_step():
                with _autocast(device, amp):
                    out = model(x)
                loss = torch.nn.functional.cross_entropy(out.float(), target)
                loss.backward()
                model.zero_grad(set_to_none=True)

            seconds, peak = timed_with_peak(train_step, device, repeats, warmup, budget, spec.get("memory", True))
            row.update(train_ms=seconds * 1e3, train_ips=batch / seconds)
            if peak is not None:
                row["train_peak_mib"] = peak / 2 ** 20
    except Exception as err:  # noqa: BLE001 - a failed model is reported, the suite goes on
        oom = isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()
        row["error"] = "out of memory" if oom else f"{type(err).__name__}: {err}"
        if not oom and os.environ.get("VISION_SSM_BENCH_TRACEBACK"):
            traceback.print_exc()
    finally:
        stack.close()
        model = x = None  # noqa: F841 - frees the model before the next measurement
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def _child_env_ready() -> None:
    """Children must import this checkout."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(_REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(_REPO_ROOT)] + [p for p in paths if p])


def measure_isolated(spec: Mapping[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """:func:`measure` in a fresh ``python -m vision_ssm.bench.models`` process."""
    _child_env_ready()
    try:
        return run_isolated("vision_ssm.bench.models", dict(spec), timeout=timeout)
    except Exception as err:  # noqa: BLE001 - a crashed / killed child becomes an error row
        msg = str(err).strip().splitlines()
        row = dict(model=spec["model"], label=spec.get("label") or label_of(spec["model"]),
                   img_size=spec["img_size"], batch=spec.get("batch", 8), amp=spec.get("amp") or "none",
                   device=str(spec.get("device", "cpu")))
        for key in ("scan", "key"):
            if spec.get(key) is not None:
                row[key] = spec[key]
        row["error"] = f"subprocess failed: {msg[-1] if msg else type(err).__name__}"
        return row


def measure_many(specs: Sequence[Mapping[str, Any]], isolate: bool = True,
                 progress: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Measures every spec (in subprocesses when ``isolate``), printing one progress line each."""
    rows = []
    for i, spec in enumerate(specs):
        t0 = time.perf_counter()
        row = measure_isolated(spec) if isolate else measure(spec)
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        if progress:
            progress(f"[{i + 1}/{len(specs)}] {_describe(row)}")
    return rows


def _describe(row: Mapping[str, Any]) -> str:
    what = f"{row.get('label', row['model'])}" + (f" scan={row['scan']}" if row.get("scan") else "")
    what += f" @{row['img_size']} b{row['batch']}"
    if row.get("error"):
        return f"{what}: FAILED ({row['error']})"
    parts = []
    if "params_m" in row:
        parts.append(f"{row['params_m']:.2f}M params")
    if "gflops" in row:
        parts.append(f"{row['gflops']:.3g} GFLOPs")
    if "infer_ips" in row:
        parts.append(f"infer {row['infer_ips']:.1f} img/s" + (f", {row['infer_peak_mib']:.0f} MiB"
                                                            if "infer_peak_mib" in row else ""))
    if "train_ips" in row:
        parts.append(f"train {row['train_ips']:.1f} img/s" + (f", {row['train_peak_mib']:.0f} MiB"
                                                            if "train_peak_mib" in row else ""))
    return f"{what}: " + "; ".join(parts) + f" ({row.get('wall_s', 0):.0f}s)"


# -------------------------------------------------------------------------------------- suite
def make_plan(models: Sequence[str] | None, sizes: Sequence[int] | None) -> list[tuple[str, tuple[int, ...]]]:
    """(model, sizes) pairs: the default plan, or ``models`` x ``sizes`` (default sizes: the
    default plan's for a model in it, else 224)."""
    if not models:
        plan = [(m, tuple(sizes) if sizes else s) for m, s in DEFAULT_PLAN]
    else:
        defaults = dict(DEFAULT_PLAN)
        plan = []
        for m in models:
            full = resolve_model(m)
            plan.append((full, tuple(sizes) if sizes else defaults.get(full, (224,))))
    for model, model_sizes in plan:
        for s in model_sizes:
            if int(s) < 1:
                raise ValueError(f"--sizes: sizes must be positive, got {s}")
    return plan


def run_benchmark(plan: Sequence[tuple[str, Sequence[int]]], *, batch: int = 8, device: str = "cpu",
                  threads: int | None = 2, amp: str = "none", train: bool = False, memory: bool = True,
                  flops: bool = False, repeats: int = 3, warmup: int = 1, budget_s: float | None = None,
                  model_kwargs: Mapping[str, Mapping[str, Any]] | None = None, isolate: bool = True,
                  pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, free_scan: bool = False,
                  progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Measures every (model, size) of ``plan``; returns ``dict(rows, ratios, side_by_side, meta...)``."""
    if device.startswith("cpu") and threads:
        torch.set_num_threads(int(threads))
    model_kwargs = model_kwargs or {}
    specs = []
    for model, sizes in plan:
        for size in sizes:
            specs.append(dict(model=model, img_size=int(size), batch=batch, device=device, threads=threads, amp=amp,
                              model_kwargs=dict(model_kwargs.get(model, {})), infer=True, train=train,
                              memory=memory, flops=flops, repeats=repeats, warmup=warmup, budget_s=budget_s,
                              free_scan=free_scan))
    if progress:
        progress(f"benchmarking {len(specs)} (model, size) pairs on {device_name(device)}, batch {batch}, "
                 f"{'fp32' if amp == 'none' else amp}{', +training' if train else ''}"
                 f"{', each in a subprocess' if isolate else ''}")
    rows = measure_many(specs, isolate=isolate, progress=progress)
    ratio_rows = ratios(rows, pairs)
    return dict(rows=rows, ratios=ratio_rows, side_by_side=side_by_side(ratio_rows), device=device_name(device),
                date=date.today().isoformat(), torch=torch.__version__, timm=_timm_version(), threads=threads,
                batch=batch, amp=amp, isolate=isolate, repeats=repeats, warmup=warmup,
                model_kwargs={k: dict(v) for k, v in model_kwargs.items() if v})


def _timm_version() -> str:
    import timm
    return timm.__version__


def _ok(row: Mapping[str, Any] | None, key: str) -> bool:
    return row is not None and not row.get("error") and isinstance(row.get(key), (int, float)) and row[key] > 0


def ratios(rows: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS) -> list[dict]:
    """For each pair (a, b) and size measured for both: a/b of throughput and of peak memory."""
    index = {(r["model"], r["img_size"]): r for r in rows}
    out = []
    for a, b in pairs:
        sizes = sorted({s for (m, s) in index if m == a} & {s for (m, s) in index if m == b})
        for size in sizes:
            ra, rb = index[(a, size)], index[(b, size)]
            entry: dict[str, Any] = dict(pair=f"{ra.get('label', a)}/{rb.get('label', b)}", a=a, b=b, img_size=size)
            for kind in ("infer", "train"):
                if _ok(ra, f"{kind}_ips") and _ok(rb, f"{kind}_ips"):
                    entry[f"{kind}_speed_ratio"] = ra[f"{kind}_ips"] / rb[f"{kind}_ips"]
                if _ok(ra, f"{kind}_peak_mib") and _ok(rb, f"{kind}_peak_mib"):
                    entry[f"{kind}_memory_ratio"] = ra[f"{kind}_peak_mib"] / rb[f"{kind}_peak_mib"]
            if len(entry) > 4:
                out.append(entry)
    return out


def side_by_side(ratio_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per size, the pairs' speed and memory ratios as columns ("-" where not measured)."""
    pairs = list(dict.fromkeys(r["pair"] for r in ratio_rows))
    table = []
    for size in sorted({r["img_size"] for r in ratio_rows}):
        row: dict[str, Any] = dict(img_size=size)
        for pair in pairs:
            hit = next((r for r in ratio_rows if r["pair"] == pair and r["img_size"] == size), {})
            for kind in ("infer", "train"):
                for what in ("speed", "memory"):
                    key = f"{kind}_{what}_ratio"
                    if any(key in r for r in ratio_rows):
                        row[f"{pair} {what}" + (" (train)" if kind == "train" else "")] = \
                            f"{hit[key]:.2f}x" if key in hit else "-"
        table.append(row)
    return table


ROW_COLUMNS = ["label", "img_size", "batch", "params_m", "infer_ips", "infer_ms", "infer_peak_mib", "train_ips",
               "train_ms", "train_peak_mib", "gflops", "error"]


def report(result: Mapping[str, Any]) -> str:
    rows = result["rows"]
    cols = [c for c in ROW_COLUMNS if any(c in r for r in rows)]
    text = (f"model benchmark on {result['device']}, torch {result['torch']}, timm {result['timm']}, "
            f"batch {result['batch']}, {'fp32' if result['amp'] == 'none' else result['amp']}, {result['date']}\n"
            f"(img/s: images per second; peak MiB: memory above weights and inputs during the call)\n\n"
            + markdown_table(rows, cols))
    if result.get("side_by_side"):
        sbs = result["side_by_side"]
        cols = list(dict.fromkeys(k for r in sbs for k in r))
        text += "\n\nratios (a/b: >1 means a is faster / uses more memory)\n\n" + markdown_table(sbs, cols)
    return text


def plot(result: Mapping[str, Any], path: str | os.PathLike, title: str | None = None) -> None:
    """Throughput and peak memory against resolution, one line per model (log-log)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if not r.get("error")]
    kinds = [k for k in ("infer", "train") if any(f"{k}_ips" in r for r in rows)]
    metrics = [(f"{k}_ips", f"{k} throughput (img/s)") for k in kinds] + \
              [(f"{k}_peak_mib", f"{k} peak memory (MiB)") for k in kinds if any(f"{k}_peak_mib" in r for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5.2 * max(1, len(metrics)), 4.2), squeeze=False)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for ax, (key, ylabel) in zip(axes[0], metrics):
        for model in models:
            pts = sorted((r["img_size"], r[key]) for r in rows if r["model"] == model and key in r and r[key] > 0)
            if not pts:
                continue
            label = next(r.get("label", model) for r in rows if r["model"] == model)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label,
                    color=f"C{models.index(model) % 10}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("resolution (px)")
        ax.set_ylabel(ylabel)
        sizes = sorted({r["img_size"] for r in rows})
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes])
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not metrics:
        axes[0][0].text(0.5, 0.5, "no successful measurement", ha="center", va="center")
    fig.suptitle(title or f"{result['device']}, batch {result['batch']}, "
                          f"{'fp32' if result['amp'] == 'none' else result['amp']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: Mapping[str, Any], out_dir: str | os.PathLike, stem: str) -> dict[str, str]:
    """``stem``.json and ``stem``.png in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = dict(json=str(out / f"{stem}.json"), png=str(out / f"{stem}.png"))
    Path(paths["json"]).write_text(json.dumps(result, indent=2, default=_json_default))
    plot(result, paths["png"])
    return paths


def _json_default(value):
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _worker() -> None:
    """``python -m vision_ssm.bench.models``: one spec (JSON on stdin) -> one row (JSON, last line)."""
    spec = json.loads(sys.stdin.read())
    row = measure(spec)
    sys.stdout.write("\n" + json.dumps(row, default=_json_default) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _worker()
