"""Atomic checkpoint files and the random state that makes resumed runs exact.

A checkpoint is written to a temporary file in the destination directory, flushed and fsynced,
then renamed over the destination with ``os.replace`` (atomic on POSIX and Windows), and the
directory is fsynced.  A crash at any point leaves either the old file or the new one, never a
truncated file; a failed write removes its temporary file.

Everything stored loads with ``torch.load(weights_only=True)`` (see
:func:`vision_ssm.checkpoint.load_checkpoint_file`): tensors, plain containers, numbers and
strings.  NumPy's random state is stored as a tensor for that reason.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from ..files import write_atomic as _write_atomic

__all__ = ["save_atomic", "copy_atomic", "get_rng_state", "set_rng_state"]


def save_atomic(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    return _write_atomic(path, lambda f: torch.save(obj, f))


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Copies a file to ``dst`` atomically (used for ``best.pth``)."""
    def write(f):
        with open(src, "rb") as s:
            while True:
                block = s.read(chunk)
                if not block:
                    break
                f.write(block)
    return _write_atomic(dst, write)


def get_rng_state(data_generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) and data-generator states, as weights_only-safe values."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if data_generator is not None:
        state["data_generator"] = data_generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], data_generator: torch.Generator | None = None) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state({
        "bit_generator": n["bit_generator"],
        "state": {"key": n["key"].numpy().astype(np.uint32), "pos": int(n["pos"])},
        "has_gauss": int(n["has_gauss"]),
        "gauss": float(n["gauss"]),
    })
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    if data_generator is not None and "data_generator" in state:
        data_generator.set_state(state["data_generator"])
