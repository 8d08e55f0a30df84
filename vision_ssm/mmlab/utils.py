"""Config helpers shared by tools/mm_train.py, tools/mm_test.py and the tests."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["set_data_root", "check_data_roots", "setup_cpu_distributed"]


def set_data_root(cfg: Any, data_root: str, check: bool = True) -> Any:
    """Moves a config's datasets to ``data_root``: every string value that starts with the
    config's ``data_root`` (dataset roots, evaluator ``ann_file`` paths ...) gets the new prefix.

    Returns the config (modified in place).  A config without ``data_root`` is an error, and so is
    one whose datasets also read another root (ByteTrack's CrowdHuman next to MOT17): those would
    silently stay where they were (``check=False`` leaves that to :func:`check_data_roots`, after
    further overrides).
    """
    old = cfg.get("data_root", None) if hasattr(cfg, "get") else None
    if not old:
        raise KeyError("the config has no top-level data_root to replace")
    old_dir = old.rstrip("/")

    def move(value: str) -> str:
        if value == old or value == old_dir:
            return data_root if not old.endswith("/") else data_root.rstrip("/") + "/"
        if value.startswith(old_dir + "/"):
            return os.path.join(data_root, value[len(old_dir) + 1:])
        return value

    def visit(node):
        if isinstance(node, dict):
            for key in list(node.keys()):
                node[key] = visit(node[key])
            return node
        if isinstance(node, list):
            return [visit(v) for v in node]
        if isinstance(node, tuple):
            return tuple(visit(v) for v in node)
        if isinstance(node, str):
            return move(node)
        return node

    for key in list(cfg.keys()):
        cfg[key] = visit(cfg[key])
    if check:
        check_data_roots(cfg, data_root, old)
    return cfg


def check_data_roots(cfg: Any, data_root: str, moved_from: str, allowed=()) -> None:
    """Raises ValueError if a dataset of ``cfg`` still reads a root outside ``data_root`` (and ``allowed``)."""
    roots = [root for key in list(cfg.keys()) for root in _dataset_roots(cfg[key])]
    inside = lambda v, r: v.rstrip("/") == r.rstrip("/") or v.startswith(r.rstrip("/") + "/")  # noqa: E731
    elsewhere = sorted({v for v in roots if not any(inside(v, r) for r in (data_root, *allowed))})
    if elsewhere:
        raise ValueError(f"--data-root moves the datasets under {moved_from!r} to {data_root!r}, but this config "
                         f"also reads {elsewhere}: set those with --cfg-options (e.g. "
                         f"train_dataloader.dataset.datasets.1.data_root=DIR, as the config nests them)")


def _dataset_roots(node) -> list:
    """Every string under a ``data_root`` key, at any depth (the datasets' roots)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data_root" and isinstance(value, str):
                found.append(value)
            else:
                found += _dataset_roots(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += _dataset_roots(value)
    return found


def setup_cpu_distributed(cfg: Any) -> Any:
    """Lets ``--launcher pytorch`` (torchrun) run on a machine without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``; without CUDA we start the gloo process group ourselves (mmengine
    then skips its own initialisation) and keep DDP on the CPU (``device_ids=None``).  A no-op
    with CUDA or without a distributed launcher.
    """
    import torch
    import torch.distributed as dist
    if cfg.get("launcher", "none") != "pytorch" or torch.cuda.is_available():
        return cfg
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper.setdefault("broadcast_buffers", False)
    wrapper.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))
    wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper
    return cfg
