"""Toy twins that must learn: each trains its config's schedule on the toy data and reaches a target.

A toy twin is a published recipe shrunk to the toy data (``configs/*/toy``).  Here each one runs its
own schedule end to end through mmengine's ``Runner`` (train, then the real test metric), beside a
control: the same head, data and schedule on a backbone from OpenMMLab itself.  A twin far below its
control points at the integration (feature strides, ``out_indices``, norms, loading), not the toy.
Used by ``tools/toy_twins.py`` (results JSON, model_zoo.md table) and the slow tests.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from .utils import set_data_root

__all__ = ["Twin", "TWINS", "FAMILIES", "CONFIGS", "BEGIN", "END", "toy_data_root", "load_toy_config",
           "train_and_test", "markdown", "committed_results", "select", "below_target", "scheduled_configs"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BEGIN, END = "<!-- toy:begin -->", "<!-- toy:end -->"
TOY_PREFIX = "data/toy/"


@dataclasses.dataclass(frozen=True)
class Twin:
    config: str                          # relative to configs/
    family: str
    targets: tuple[tuple[str, float], ...]  # (test metric, the least it must reach in its own unit)
    control: str | None = None           # a config with an OpenMMLab backbone and the same schedule


SEG_CONTROL = "segmentation/toy/upernet_r18-toy_ade20k-64x64.py"
DET_CONTROL = "detection/toy/mask-rcnn_r18-toy_fpn_coco.py"
MOT_CONTROL = "tracking/toy/qdtrack_faster-rcnn_r18-toy_fpn_mot17-toy.py"
BYTETRACK_CONTROL = "tracking/toy/bytetrack_yolox-csp-toy_mot17-toy.py"
VIS_CONTROL = "tracking/toy/masktrack-rcnn_r18-toy_fpn_youtubevis-toy.py"
MIOU = (("mIoU", 70.0),)
BOX_MASK = (("coco/bbox_mAP", 0.5), ("coco/segm_mAP", 0.4))
HOTA = (("motchallenge-metric/HOTA", 0.5),)
MASK_AP = (("youtube_vis/segm_mAP", 0.3),)
TWINS: tuple[Twin, ...] = (
    Twin("segmentation/toy/upernet_vmamba-toy_ade20k-64x64.py", "segmentation", MIOU, SEG_CONTROL),
    Twin("segmentation/toy/upernet_vim-toy_ade20k-64x64.py", "segmentation", MIOU, SEG_CONTROL),
    Twin("detection/toy/mask-rcnn_vmamba-toy_fpn_1x_coco.py", "detection", BOX_MASK, DET_CONTROL),
    Twin("detection/toy/cascade-mask-rcnn_vim-toy_simple-fpn_coco.py", "detection", BOX_MASK, DET_CONTROL),
    Twin("tracking/toy/qdtrack_faster-rcnn_vmamba-toy_fpn_mot17-toy.py", "tracking", HOTA, MOT_CONTROL),
    Twin("tracking/toy/qdtrack_faster-rcnn_vim-toy_simple-fpn_mot17-toy.py", "tracking", HOTA, MOT_CONTROL),
    Twin("tracking/toy/bytetrack_yolox-vmamba-toy_mot17-toy.py", "tracking", HOTA, BYTETRACK_CONTROL),
    Twin("tracking/toy/masktrack-rcnn_vmamba-toy_fpn_youtubevis-toy.py", "vis", MASK_AP, VIS_CONTROL),
)
FAMILIES = tuple(dict.fromkeys(t.family for t in TWINS))


def toy_data_root(toy_root: str | Path, cfg: Any) -> str:
    """The directory under ``toy_root`` (what ``make_all`` wrote) that a toy config's
    ``data_root`` ('data/toy/...') stands for."""
    rel = cfg.get("data_root", "")
    if not rel.startswith(TOY_PREFIX):
        raise ValueError(f"`cfg.data_root` must start with {TOY_PREFIX!r} in a toy config, got {rel!r}")
    return str(Path(toy_root) / rel[len(TOY_PREFIX):])


def load_toy_config(config: str | Path, toy_root: str | Path | None = None, work_dir: str | Path | None = None,
                    max_iters: int | None = None) -> Any:
    """A toy config (a path, or relative to ``configs/``) with its data moved under ``toy_root``;
    ``max_iters`` cuts the schedule short (smoke runs): that many iterations, with the schedule's
    per-iteration warm-up and without its per-epoch steps."""
    from mmengine.config import Config  # this package's import has registered the backbones
    path = Path(config)
    if not path.is_absolute() and not path.exists():
        path = CONFIGS / path
    cfg = Config.fromfile(str(path))
    if toy_root is not None:
        set_data_root(cfg, toy_data_root(toy_root, cfg))
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    if max_iters is not None:
        if max_iters < 1:
            raise ValueError(f"`max_iters` must be >= 1, got {max_iters}")
        cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
        cfg.param_scheduler = [s for s in _as_list(cfg.get("param_scheduler")) if not s.get("by_epoch", True)]
    return cfg


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def train_and_test(cfg: Any, before_train=None) -> dict[str, Any]:
    """Trains ``cfg``'s schedule (no validation, no checkpoint files), then runs its test loop once.

    ``before_train(runner)`` runs after the weights are initialised (the tests measure a fixed
    batch's loss there).  Returns the test metrics, the logged training losses, the iterations and
    the seconds of training and of testing."""
    from mmengine.runner import Runner

    from . import compat
    compat.apply()  # the Runner runs mmdet's evaluators and MOT post-processing (see compat)
    cfg = copy.deepcopy(cfg)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10 ** 9, save_last=False)
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()  # what train() does first (a second call there is a no-op)
    if before_train is not None:
        before_train(runner)
    start = time.perf_counter()
    runner.train()
    trained = time.perf_counter() - start
    losses = [float(v) for v in runner.message_hub.get_scalar("train/loss").data[0]]
    start = time.perf_counter()
    metrics = {k: float(v) for k, v in runner.test().items()}
    return dict(metrics=metrics, losses=losses, iters=runner.iter, runner=runner,
                train_seconds=round(trained, 1), test_seconds=round(time.perf_counter() - start, 1))


def _name(config: str) -> str:
    return Path(config).stem


def markdown(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """The model_zoo.md block from one result or several (oldest first; a config's newest run wins):
    one row per twin metric, its control beside it, and a line per result file a row comes from."""
    results = [results] if isinstance(results, Mapping) else list(results)
    runs, twins, source = {}, {}, {}
    for i, result in enumerate(results):
        for run in result["runs"]:
            runs[run["config"]], source[run["config"]] = run, i
        twins.update({t["config"]: t for t in result["twins"]})
    known = [t.config for t in TWINS]
    order = [c for c in known if c in twins] + [c for c in twins if c not in known]
    shown = [twins[c] for c in order if c in runs]
    used = sorted({source[c] for t in shown for c in (t["config"], t["control"]) if c in runs})
    lines = [f"Measured by `{results[i]['command']}` on {results[i]['date']} ({results[i]['device']}, "
             f"torch {results[i]['versions']['torch']}, mmengine {results[i]['versions']['mmengine']}; "
             f"{results[i]['minutes']:.0f} min): "
             + ", ".join(sorted({twins[c]['family'] for c in runs if source[c] == i and c in twins})) + "."
             for i in used]
    lines += ["", "Each twin trains its config's own schedule from scratch on the toy data; the control is "
              "the same head, data and schedule on a backbone from OpenMMLab itself.", "",
              "| family | TOY twin | metric | target | TOY result | control | control result | iterations | train min |",
              "|---|---|---|---|---|---|---|---|---|"]
    for twin in shown:
        run = runs[twin["config"]]
        control = runs.get(twin["control"] or "")
        for metric, target in twin["targets"]:
            value = run["metrics"][metric]
            verdict = "reached" if value >= target else "**below**"
            control_cells = (f"`{_name(control['config'])}` | {control['metrics'][metric]:.3g}"
                             if control else "- | -")
            lines.append(f"| {twin['family']} | `{_name(twin['config'])}` | {metric} | {target:g} | "
                         f"{value:.3g} ({verdict}) | {control_cells} | {run['iters']} | "
                         f"{run['train_seconds'] / 60:.1f} |")
    return "\n".join(lines)


def committed_results(results_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every committed toy-twins result file (``DATE_cpu_toy_twins*.json``), oldest first."""
    from ..bench.render import RESULTS_DIR, load_results
    results = load_results(Path(results_dir) if results_dir is not None else RESULTS_DIR)  # sorted by name
    return [r for name, r in results.items() if "_cpu_toy_twins" in name]


def below_target(result: Mapping[str, Any]) -> list[str]:
    """``config: metric value < target`` for every twin metric that missed its target."""
    runs = {r["config"]: r for r in result["runs"]}
    return [f"{t['config']}: {m} {runs[t['config']]['metrics'][m]:.3g} < {target:g}"
            for t in result["twins"] for m, target in t["targets"]
            if t["config"] in runs and runs[t["config"]]["metrics"][m] < target]


def scheduled_configs(twins: Sequence[Twin] = TWINS, controls: bool = True) -> list[str]:
    """The twins' configs, then (with ``controls``) each distinct control once."""
    configs = [t.config for t in twins]
    return configs + list(dict.fromkeys(t.control for t in twins if t.control)) if controls else configs


def select(families: Sequence[str] | None = None) -> list[Twin]:
    """The twins of ``families`` (all by default)."""
    unknown = [f for f in families or () if f not in FAMILIES]
    if unknown:
        raise ValueError(f"`families` must be among {FAMILIES}, got {unknown}")
    return [t for t in TWINS if not families or t.family in families]
