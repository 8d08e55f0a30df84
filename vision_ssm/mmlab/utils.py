"""Config helpers shared by tools/mm_train.py, tools/mm_test.py and the tests."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["set_data_root", "setup_cpu_distributed"]


def set_data_root(cfg: Any, data_root: str) -> Any:
    """Moves a config's datasets to ``data_root``: every string value that starts with the
    config's ``data_root`` (dataset roots, evaluator ``ann_file`` paths ...) gets the new prefix.

    Returns the config (modified in place).  A config without ``data_root`` is an error.
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
    return cfg


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
