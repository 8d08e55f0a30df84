"""timm's ``device`` / ``dtype`` factory arguments for the model constructors."""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import torch
from torch import nn

__all__ = ["accepts_device_dtype", "new_like"]


def accepts_device_dtype(init: Callable) -> Callable:
    """Wraps a model's ``__init__`` so that it takes ``device`` and ``dtype`` like timm's models:
    parameters and buffers are created on ``device`` (``"meta"`` included) and floating-point ones
    cast to ``dtype`` (index buffers keep theirs)."""
    @functools.wraps(init)
    def wrapper(self: nn.Module, *args, device=None, dtype=None, **kwargs):
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"`dtype` must be a floating-point torch.dtype, got {dtype!r}")
        place = torch.device(device) if device is not None else contextlib.nullcontext()
        with place:
            init(self, *args, **kwargs)
        if dtype is not None:
            self.to(dtype=dtype)
    return wrapper


def new_like(module: nn.Module, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` moved to ``module``'s device and floating dtype (a new head follows its trunk)."""
    reference = next(module.parameters(), None)
    new = build()
    return new if reference is None else new.to(device=reference.device, dtype=reference.dtype)
