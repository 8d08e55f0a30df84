"""Ranking scan orders on probe tasks where the scan carries the spatial mixing.

The suite behind ``tools/rank_scans.py``.  A probe model (a small Vim whose only token mixing is
its scan: patch 1, no 2D convolution, the causal conv1d running in scan order; or a VMamba with
``ssm_conv=1``) is trained on each generated task (:mod:`vision_ssm.data.probes`) once per
(scan, seed), with the same seeds for every scan.  Controls run first: each probe on the easy tier
of each task (train accuracy must pass 95%) and a small CNN on the task itself.  ``lines`` trains
its first 30% of steps on the start tier (wide gaps, no distractors, all orientations), so that a
probe's one-in-four chance to see its gap does not leave some seeds stuck at chance.  The statistics
(:mod:`vision_ssm.bench.stats`) are each scan's mean with a 95% CI, Friedman's test over scans and
Holm-corrected paired differences against ``raster``; for ``lines`` also per orientation.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import platform
import re
import time
from datetime import date
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.probes import ProbeData, make_probe_data
from .measure import device_name
from .stats import friedman, mean_ci, paired_tests

__all__ = ["TaskSettings", "TASK_SETTINGS", "QUICK", "DEFAULT_SCANS", "DEFAULT_TASKS", "LOCAL_ROW", "QUICK_SCANS", "PROBES", "CLAIMS",
           "build_probe", "build_cnn", "param_groups", "train_probe", "run_suite", "summarize",
           "erf_maps", "shared_trunk_models"]

LOCAL_ROW = "local:window=4,directions=['row']"   # LocalMamba's windows, one direction like raster
HILBERT = "hilbert:directions=1"                   # the curve alone (the strategy's default adds its reverse)
# One direction each: the probes differ in the order of the tokens only, not in size.
DEFAULT_SCANS = ("raster", "column", LOCAL_ROW, HILBERT, "random")
DEFAULT_TASKS = ("lines", "dots")
QUICK_SCANS = ("raster", "column", "random")
PROBES = ("vim", "vmamba")
BASELINE = "raster"


@dataclasses.dataclass
class TaskSettings:
    size: int
    steps: int
    batch: int = 32
    train_samples: int = 16000
    val_samples: int = 4000
    lr: float = 3e-3
    ssm_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    curriculum: float = 0.0     # fraction of the steps trained on the task's "start" tier first


TASK_SETTINGS = {
    "lines": TaskSettings(size=16, steps=900, curriculum=0.3),
    "digits": TaskSettings(size=20, steps=500),
    "dots": TaskSettings(size=14, steps=300),
    "pathfinder": TaskSettings(size=32, steps=2000, curriculum=0.3),  # the hard tier (--tasks pathfinder)
}
SOLVED = 0.9  # a run "solves" a hard task at this validation accuracy (Pathfinder: solved seeds out of total)
HARD_TASKS = ("pathfinder",)
QUICK = {"lines": TaskSettings(size=16, steps=450, train_samples=8000, val_samples=2000, curriculum=0.3)}

# Published claims the default run tests: (name, scan, against, source).
CLAIMS = (
    ("cross beats bidirectional raster", "cross", "bidirectional", "VMamba, Fig. 8 (ImageNet, +0.3 to 1.4 pt)"),
    ("local windows beat raster", LOCAL_ROW, "raster", "LocalMamba, Table 2 (Vim-T, +1.0 pt)"),
    ("Hilbert beats raster", HILBERT, "raster", "Hilbert-flattened 1D CNNs beat plain flattening"),
)


# ------------------------------------------------------------------------------------ models
def build_probe(kind: str, scan: Any, num_classes: int, img_size: int, width: int = 48, depth: int = 2,
                d_state: int = 8) -> nn.Module:
    """The probe: ``vim`` (patch 1, no class token, max pool over tokens, conv1d in scan order,
    Mamba's dt init) or ``vmamba`` (patch 1, one stage, ``ssm_conv=1``: no 2D depthwise conv, no MLP).
    Max pooling lets a local detection anywhere in the image decide, as the tasks need."""
    if kind == "vim":
        from ..models.vim import VisionMamba
        return VisionMamba(img_size=img_size, patch_size=1, in_chans=1, num_classes=num_classes,
                           embed_dim=width, depth=depth, d_state=d_state, d_conv=4, scan=scan,
                           class_token=False, global_pool="max", dt_init_mode="mamba")
    if kind == "vmamba":
        from ..models.vmamba import VMamba
        return VMamba(patch_size=1, in_chans=1, num_classes=num_classes, depths=(depth,), dims=width, global_pool="max",
                      ssm_d_state=d_state, ssm_conv=1, mlp_ratio=0, drop_path_rate=0.0, scan=scan)
    raise ValueError(f"`probe` must be one of {PROBES}, got {kind!r}")


def build_cnn(num_classes: int, width: int = 32) -> nn.Module:
    """The positive control: four 3x3 conv layers, then global max and mean pooling."""
    layers, c = [], 1
    for out in (width, width, 2 * width, 2 * width):
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        c = out
    trunk = nn.Sequential(*layers)

    class _Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.head = trunk, nn.Linear(2 * c, num_classes)

        def forward(self, x):
            f = self.trunk(x)
            return self.head(torch.cat([f.amax((2, 3)), f.mean((2, 3))], 1))

    return _Net()


_SSM_NAMES = re.compile(r"(A(_\w+)?_logs?|A_logs|Ds?|D_\w+|dt_projs_bias)")


def _is_ssm_dynamics(name: str) -> bool:
    """A_log, D and the dt bias (each direction's, in either backbone's naming)."""
    parts = name.split(".")
    return bool(_SSM_NAMES.fullmatch(parts[-1])) or (parts[-1] == "bias" and parts[-2].startswith("dt_proj"))


def param_groups(model: nn.Module, lr: float, ssm_lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: SSM dynamics (A_log, D, dt bias) at ``ssm_lr`` without weight decay; norms,
    biases and position embeddings without weight decay; the rest with it."""
    ssm, no_decay, decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if _is_ssm_dynamics(name):
            ssm.append(p)
        elif p.ndim <= 1 or name.endswith("pos_embed"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [dict(params=decay, lr=lr, weight_decay=weight_decay),
            dict(params=no_decay, lr=lr, weight_decay=0.0),
            dict(params=ssm, lr=ssm_lr, weight_decay=0.0)]


# ------------------------------------------------------------------------------------ training
def _accuracy(model: nn.Module, data: ProbeData, device: torch.device, limit: int | None = None,
              batch: int = 500) -> tuple[float, dict[str, float]]:
    n = len(data.labels) if limit is None else min(limit, len(data.labels))
    correct = np.zeros(n, bool)
    model.eval()
    with torch.no_grad():
        for s in range(0, n, batch):
            x = torch.from_numpy(data.images[s:s + batch]).to(device)
            correct[s:s + len(x)] = (model(x).argmax(1).cpu().numpy() == data.labels[s:s + len(x)])
    model.train()
    groups = data.group[:n]
    by_group = {name: float(correct[groups == g].mean()) for g, name in enumerate(data.group_names)
                if (groups == g).any()}
    return float(correct.mean()), by_group


def _tensors(data: ProbeData) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.images), torch.from_numpy(data.labels)


def train_probe(model: nn.Module, train: ProbeData, val: ProbeData, settings: TaskSettings, seed: int,
                device: torch.device | str = "cpu", start: ProbeData | None = None) -> dict[str, Any]:
    """AdamW, linear warmup then cosine decay, grad-norm clip 1; batches drawn with ``seed``.
    With ``start``, the first ``settings.curriculum`` of the steps draw from it instead of ``train``.
    Returns validation accuracy (overall and per group), train accuracy on 2,000 train samples,
    the loss every 10% of the steps and the seconds taken."""
    device = torch.device(device)
    model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model, settings.lr, settings.ssm_lr, settings.weight_decay))
    base = [g["lr"] for g in opt.param_groups]
    warm = max(1, int(settings.warmup * settings.steps))
    gen = torch.Generator().manual_seed(seed)
    if settings.curriculum and start is None:
        raise ValueError(f"`start` data is needed for curriculum={settings.curriculum}")
    switch = int(settings.curriculum * settings.steps)
    images, labels = _tensors(start if switch else train)
    losses, t0, running = [], time.perf_counter(), 0.0
    for step in range(settings.steps):
        if step == switch > 0:
            images, labels = _tensors(train)
        scale = (step + 1) / warm if step < warm else \
            0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, settings.steps - warm)))
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * scale
        idx = torch.randint(len(labels), (settings.batch,), generator=gen)
        loss = F.cross_entropy(model(images[idx].to(device)), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += loss.item()
        if (step + 1) % max(1, settings.steps // 10) == 0:
            losses.append(round(running / max(1, settings.steps // 10), 4))
            running = 0.0
    train_acc, _ = _accuracy(model, train, device, limit=2000)
    val_acc, by_group = _accuracy(model, val, device)
    return dict(val_acc=val_acc, val_by_group=by_group, train_acc=train_acc, losses=losses,
                seconds=round(time.perf_counter() - t0, 2))


# ------------------------------------------------------------------------------------ the suite
def _scan_arg(item: str):
    """``"local:window=4"`` -> dict(name="local", window=4); a plain name as is."""
    from .scans import parse_scan
    return parse_scan(item)[1]


@functools.lru_cache(maxsize=8)
def _data(task: str, count: int, seed: int, size: int, tier: str = "default", split: str = "train") -> ProbeData:
    return make_probe_data(task, count, seed=seed, size=size, tier=tier, split=split)


VAL_SEED = 10_000


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One training run (a worker's unit): ``job`` names the task, model, scan, seed and settings."""
    torch.set_num_threads(job["threads"])
    s = TaskSettings(**job["settings"])
    tier = job.get("tier", "default")
    train = _data(job["task"], s.train_samples, job["seed"], s.size, tier)
    val_count = s.val_samples if tier == "default" else s.val_samples // 4
    val = _data(job["task"], val_count, VAL_SEED, s.size, tier, "val")
    start = _data(job["task"], s.train_samples, job["seed"], s.size, "start") if s.curriculum else None
    torch.manual_seed(job["seed"])
    if job["model"] == "cnn":
        model = build_cnn(val.num_classes)
    else:
        model = build_probe(job["model"], _scan_arg(job["scan"]), val.num_classes, s.size)
    return train_probe(model, train, val, s, seed=job["seed"], device=job["device"], start=start)


def run_suite(tasks: Sequence[str], scans: Sequence[str], seeds: Sequence[int], probe: str = "vim",
              settings: Mapping[str, TaskSettings] | None = None, controls: bool = True,
              device: str = "cpu", workers: int = 1, threads: int | None = None,
              progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains every (task, scan, seed) and the controls; returns the raw results (see ``summarize``).

    ``workers`` > 1 runs that many training processes at once, each with ``threads // workers``
    CPU threads (small probes spend much of a step in Python, so two one-thread workers beat one
    two-thread process on two cores)."""
    settings = dict(settings or TASK_SETTINGS)
    missing = [t for t in tasks if t not in settings]
    if missing:
        raise ValueError(f"`tasks` {missing} have no settings; known: {sorted(settings)}")
    if BASELINE not in scans:
        raise ValueError(f"`scans` must include the baseline {BASELINE!r}, got {list(scans)}")
    if len(seeds) < 2:
        raise ValueError(f"`seeds` needs 2 or more seeds for confidence intervals, got {list(seeds)}")
    if workers < 1:
        raise ValueError(f"`workers` must be >= 1, got {workers}")
    threads = threads or torch.get_num_threads()
    per_worker = max(1, threads // workers)
    jobs = []
    for task in tasks:
        common = dict(task=task, settings=dataclasses.asdict(settings[task]), device=device, threads=per_worker)
        if controls:
            jobs += [dict(common, model=kind, scan=BASELINE, seed=0, tier="easy",
                          label=f"{kind} probe ({BASELINE}), easy tier") for kind in PROBES]
            jobs.append(dict(common, model="cnn", scan=None, seed=0, label="CNN (4 conv layers)"))
        jobs += [dict(common, model=probe, scan=scan, seed=seed, label=None) for seed in seeds for scan in scans]

    results: list[dict | None] = [None] * len(jobs)
    t0 = time.perf_counter()

    def finished(i: int, result: dict) -> None:
        results[i] = result
        done = sum(r is not None for r in results)
        job = jobs[i]
        eta = (time.perf_counter() - t0) / done * (len(jobs) - done)
        name = job["label"] or f"{job['scan']} seed {job['seed']}"
        progress(f"[{done}/{len(jobs)}] {job['task']} {name}: val {result['val_acc']:.3f} "
                 f"train {result['train_acc']:.3f} ({result['seconds']:.0f} s; about {eta / 60:.0f} min left)")

    if workers == 1:
        for i, job in enumerate(jobs):
            finished(i, _run_job(job))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                finished(futures[future], future.result())

    runs = [dict(task=j["task"], scan=j["scan"], seed=j["seed"], **r)
            for j, r in zip(jobs, results) if j["label"] is None]
    control_runs = [dict(task=j["task"], model=j["label"], **r) for j, r in zip(jobs, results) if j["label"]]
    return dict(probe=probe, tasks=list(tasks), scans=list(scans), seeds=list(seeds),
                settings={t: dataclasses.asdict(settings[t]) for t in tasks},
                runs=runs, controls=control_runs, date=date.today().isoformat(), workers=workers,
                device=device_name(device),
                versions=dict(torch=torch.__version__, python=platform.python_version()))


def _scores(runs: list[dict], task: str, scans: Sequence[str], seeds: Sequence[int],
            key: Callable[[dict], float]) -> dict[str, list[float]]:
    table = {(r["scan"], r["seed"]): key(r) for r in runs if r["task"] == task}
    return {scan: [table[(scan, seed)] for seed in seeds] for scan in scans}


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """Per task: each scan's mean and 95% CI, Friedman over scans, paired tests against raster;
    per orientation for ``lines``; the positive and negative controls and the claims, judged."""
    scans, seeds = result["scans"], result["seeds"]
    out: dict[str, Any] = {}
    for task in result["tasks"]:
        scores = _scores(result["runs"], task, scans, seeds, lambda r: r["val_acc"])
        entry = dict(seeds=len(seeds), scans={s: dict(zip(("mean", "ci"), mean_ci(v))) for s, v in scores.items()},
                     friedman=friedman(scores), vs_raster=paired_tests(scores, BASELINE))
        if task in HARD_TASKS:
            entry["solved"] = {scan: sum(v >= SOLVED for v in vals) for scan, vals in scores.items()}
        groups = next((list(r["val_by_group"]) for r in result["runs"] if r["task"] == task), [])
        if len(groups) > 1:
            entry["by_group"] = {
                g: dict(scans={s: dict(zip(("mean", "ci"), mean_ci(v))) for s, v in gs.items()},
                        vs_raster=paired_tests(gs, BASELINE) if BASELINE in gs else {})
                for g in groups
                for gs in [_scores(result["runs"], task, scans, seeds, lambda r, g=g: r["val_by_group"][g])]}
        out[task] = entry
    out["verdicts"] = _verdicts(result, out)
    return out


def _significant(test: Mapping[str, float] | None, sign: int, alpha: float = 0.05) -> bool:
    return bool(test) and test.get("p_holm", 1.0) < alpha and test["diff"] * sign > 0


def _verdicts(result: Mapping[str, Any], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    verdicts = []
    lines = summary.get("lines", {}).get("by_group", {})
    if "column" in result["scans"] and {"horizontal", "vertical"} <= set(lines):
        h = lines["horizontal"]["vs_raster"].get("column")
        v = lines["vertical"]["vs_raster"].get("column")
        verdicts.append(dict(kind="positive control", claim="row-following raster beats column on horizontal "
                             "gaps and loses on vertical ones", holds=_significant(h, -1) and _significant(v, +1),
                             evidence=dict(horizontal=h, vertical=v)))
    if "random" in result["scans"] and "lines" in summary:
        means = {s: m["mean"] for s, m in summary["lines"]["scans"].items()}
        test = summary["lines"]["vs_raster"].get("random")
        verdicts.append(dict(kind="positive control", claim="random is the worst scan on lines",
                             holds=min(means, key=means.get) == "random" and _significant(test, -1),
                             evidence=dict(means=means, vs_raster=test)))
    if "dots" in summary:
        fr = summary["dots"]["friedman"]
        verdicts.append(dict(kind="negative control", claim="no scan differs on the order-free dots task",
                             holds=not (fr["p"] < 0.05), evidence=fr))
    for name, scan, against, source in CLAIMS:
        if scan not in result["scans"] or against not in result["scans"]:
            continue
        for task in result["tasks"]:
            if task == "dots":
                continue
            scores = _scores(result["runs"], task, [against, scan], result["seeds"], lambda r: r["val_acc"])
            test = paired_tests(scores, against)[scan]
            found = "supported" if test["p"] < 0.05 and test["diff"] > 0 else \
                "contradicted" if test["p"] < 0.05 else "no significant difference"
            verdicts.append(dict(kind="published claim", claim=f"{name} ({task})", source=source,
                                 found=found, evidence=test))
    return verdicts


# ------------------------------------------------------------------------------------ ERF
def shared_trunk_models(scans: Sequence[str], probe: str = "vim", img_size: int = 32,
                        seed: int = 0) -> dict[str, nn.Module]:
    """One model per scan carrying the same trunk: every direction of every scan gets the weights
    of the one-direction ``raster`` model built from ``seed``, so only the order differs."""
    torch.manual_seed(seed)
    reference = build_probe(probe, "raster", 2, img_size).state_dict()
    out = {}
    for scan in scans:
        model = build_probe(probe, _scan_arg(scan), 2, img_size)
        state = model.state_dict()
        for name, value in state.items():
            source = reference.get(_direction0_name(name))
            if source is None:
                continue
            if source.shape == value.shape:
                state[name] = source.clone()
            elif value.dim() >= 1 and value.shape[0] % source.shape[0] == 0 and value.shape[1:] == source.shape[1:]:
                state[name] = source.repeat(value.shape[0] // source.shape[0], *[1] * (value.dim() - 1))
        model.load_state_dict(state)
        out[scan] = model.eval()
    return out


def _direction0_name(name: str) -> str:
    """Direction k's parameter name in a Vim mixer -> direction 0's (``conv1d_b.weight`` -> ``conv1d.weight``)."""
    from ..layers.bimamba import direction_param_names
    parts = name.split(".")
    for k in range(1, 64):
        for what, own in direction_param_names(k).items():
            if parts[-1] == own or (len(parts) > 1 and parts[-2] == own):
                base = direction_param_names(0)[what]
                return ".".join(parts[:-1] + [base]) if parts[-1] == own else ".".join(parts[:-2] + [base, parts[-1]])
    return name


def erf_maps(models: Mapping[str, nn.Module], img_size: int, images: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """|d (centre token's features) / d input|, averaged over ``images`` noise images, per scan;
    each map scaled to [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(images, 1, img_size, img_size, generator=gen)
    out = {}
    for scan, model in models.items():
        xi = x.clone().requires_grad_(True)
        feats = model.forward_features(xi)                    # (B, L, C) for Vim, (B, H, W, C) for VMamba
        feats = feats.reshape(images, img_size, img_size, -1) if feats.dim() == 3 else feats
        if feats.shape[1] != img_size:                        # channel-first map
            feats = feats.permute(0, 2, 3, 1)
        feats[:, img_size // 2, img_size // 2].sum().backward()
        g = xi.grad.abs().mean((0, 1)).numpy()
        out[scan] = g / max(float(g.max()), 1e-12)
    return out
