"""Normalisation layers shared by the backbones.

``LayerNorm2d`` normalises the channels of a channel-first (B, C, H, W) map; its parameters are
those of ``nn.LayerNorm(C)`` (``weight``, ``bias`` of shape (C,)), so checkpoints move freely
between the channel-first and channel-last variants.  ``get_norm_layer`` maps VMamba's
``norm_layer`` names to (class, channel_first).
"""
from __future__ import annotations

from typing import Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LayerNorm2d", "get_norm_layer", "NORM_LAYERS"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of a (B, C, H, W) tensor (VMamba's ``ln2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


# name -> (layer class, works on channel-first maps)
NORM_LAYERS = {
    "ln": (nn.LayerNorm, False),
    "ln2d": (LayerNorm2d, True),
    "bn": (nn.BatchNorm2d, True),
}


def get_norm_layer(name: str) -> Tuple[Type[nn.Module], bool]:
    """``"ln"`` (channel-last LayerNorm), ``"ln2d"`` (channel-first LayerNorm) or ``"bn"``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in NORM_LAYERS:
        raise ValueError(f"norm_layer must be one of {tuple(NORM_LAYERS)}, got {name!r}")
    return NORM_LAYERS[key]
