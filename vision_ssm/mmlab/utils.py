"""Config helpers shared by tools/mm_train.py, tools/mm_test.py and the tests."""
from __future__ import annotations

import os
from typing import Any

__all__ = ["set_data_root"]


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
