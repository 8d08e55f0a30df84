"""Patch embeddings and stride-2 downsampling layers (VMamba's versions, official module layout).

Child indices follow the official ``nn.Sequential`` layouts so that state-dict keys match
(``patch_embed.0.weight``, ``layers.0.downsample.1.weight`` ...); positions that hold a
permutation or nothing in a given layout are ``Permute`` / ``nn.Identity``.

Any input size, never a silent crop:
    * ``PatchEmbed`` v1 (conv k=s=patch_size) zero-pads the image on the bottom / right to a
      multiple of ``patch_size`` first (the official code would drop the remainder);
    * ``PatchMerging2D`` (v1 downsample) zero-pads an odd H or W by one row / column at the
      bottom / right before taking the 2x2 neighbourhoods (as the official current code does);
    * ``ConvDownsample`` v2 (conv k=s=2) zero-pads an odd H or W the same way;
    * the overlapping 3x3 stride-2 convs (``PatchEmbed`` v2, ``ConvDownsample`` v3, padding 1)
      cover every pixel by themselves: their output is ceil(H / 2) x ceil(W / 2).
"""
from __future__ import annotations

from typing import Sequence, Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norm import LayerNorm2d

__all__ = ["Permute", "pad_to_multiple", "PatchEmbed", "PatchMerging2D", "ConvDownsample",
           "make_downsample"]


class Permute(nn.Module):
    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


def pad_to_multiple(x: torch.Tensor, multiple: int, channel_first: bool = True) -> torch.Tensor:
    """Zero-pads the spatial dims of (B, C, H, W) (or (B, H, W, C)) at the bottom / right."""
    H, W = (x.shape[-2], x.shape[-1]) if channel_first else (x.shape[1], x.shape[2])
    pad_h, pad_w = (-H) % multiple, (-W) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h)) if channel_first else F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x


class PatchEmbed(nn.Sequential):
    """VMamba's stem.  Input (B, C, H, W); output (B, C, H', W') or channel-last (B, H', W', C).

    version "v1": ``[conv k=s=patch_size, Permute|Identity, norm]`` (Swin's patch embedding);
    version "v2": ``[conv3x3/2, Permute|Identity, norm, Permute|Identity, GELU, conv3x3/2,
    Permute|Identity, norm]`` (``patch_size`` must be 4).
    """

    def __init__(self, in_chans: int = 3, embed_dim: int = 96, patch_size: int = 4,
                 patch_norm: bool = True, norm_layer: Type[nn.Module] = nn.LayerNorm,
                 channel_first: bool = False, version: str = "v1"):
        to_last = (lambda: nn.Identity()) if channel_first else (lambda: Permute(0, 2, 3, 1))
        if version == "v1":
            layers = [
                nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True),
                to_last(),
                norm_layer(embed_dim) if patch_norm else nn.Identity(),
            ]
            self.pad_multiple = patch_size
        elif version == "v2":
            if patch_size != 4:
                raise ValueError(f"patchembed_version='v2' (two 3x3 stride-2 convs) needs patch_size=4, "
                                 f"got {patch_size}")
            inner_last = channel_first or not patch_norm
            layers = [
                nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1),
                nn.Identity() if inner_last else Permute(0, 2, 3, 1),
                norm_layer(embed_dim // 2) if patch_norm else nn.Identity(),
                nn.Identity() if inner_last else Permute(0, 3, 1, 2),
                nn.GELU(),
                nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1),
                to_last(),
                norm_layer(embed_dim) if patch_norm else nn.Identity(),
            ]
            self.pad_multiple = 1  # overlapping convs with padding 1: ceil(H / 4), nothing dropped
        else:
            raise ValueError(f"patchembed_version must be 'v1' or 'v2', got {version!r}")
        super().__init__(*layers)
        self.version = version
        self.patch_size = patch_size

    def dynamic_feat_size(self, img_size: Sequence[int]) -> Tuple[int, int]:
        """The output grid for an (H, W) input: ceil(H / patch_size) x ceil(W / patch_size) (padded, never cropped)."""
        return tuple(-(-int(n) // self.patch_size) for n in img_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_multiple > 1:
            x = pad_to_multiple(x, self.pad_multiple, channel_first=True)
        return super().forward(x)


class PatchMerging2D(nn.Module):
    """Swin's patch merging (VMamba v1 downsample): 2x2 neighbours -> LayerNorm(4C) -> Linear(4C, 2C).

    Concatenation order of the 2x2 neighbourhood: (0, 0), (1, 0), (0, 1), (1, 1) as (row, col)
    offsets, as in Swin / VMamba.  Odd H / W are zero-padded at the bottom / right.
    Works on channel-last maps; ``channel_first=True`` permutes in and out.
    """

    def __init__(self, dim: int, out_dim: int = -1, norm_layer: Type[nn.Module] = nn.LayerNorm,
                 channel_first: bool = False):
        super().__init__()
        if norm_layer is LayerNorm2d:
            norm_layer = nn.LayerNorm  # applied to channel-last features here
        elif not issubclass(norm_layer, nn.LayerNorm):
            raise ValueError("PatchMerging2D (downsample_version='v1') needs a LayerNorm norm_layer")
        self.dim = dim
        self.channel_first = channel_first
        self.reduction = nn.Linear(4 * dim, (2 * dim) if out_dim < 0 else out_dim, bias=False)
        self.norm = norm_layer(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_first:
            x = x.permute(0, 2, 3, 1)
        x = pad_to_multiple(x, 2, channel_first=False)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        x = self.reduction(self.norm(x))
        if self.channel_first:
            x = x.permute(0, 3, 1, 2)
        return x


class ConvDownsample(nn.Sequential):
    """``[Permute|Identity, conv, Permute|Identity, norm]``: v2 (2x2 stride 2) or v3 (3x3 stride 2, pad 1)."""

    def __init__(self, dim: int, out_dim: int, norm_layer: Type[nn.Module] = nn.LayerNorm,
                 channel_first: bool = False, version: str = "v3"):
        if version == "v2":
            conv = nn.Conv2d(dim, out_dim, kernel_size=2, stride=2)
        elif version == "v3":
            conv = nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"ConvDownsample version must be 'v2' or 'v3', got {version!r}")
        super().__init__(
            nn.Identity() if channel_first else Permute(0, 3, 1, 2),
            conv,
            nn.Identity() if channel_first else Permute(0, 2, 3, 1),
            norm_layer(out_dim),
        )
        self.version = version
        self.channel_first = channel_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.version == "v2":
            x = pad_to_multiple(x, 2, channel_first=self.channel_first)
        return super().forward(x)


def make_downsample(version: str, dim: int, out_dim: int, norm_layer: Type[nn.Module] = nn.LayerNorm,
                    channel_first: bool = False) -> nn.Module:
    """VMamba's ``downsample_version``: "v1" patch merging, "v2" conv 2x2/2, "v3" conv 3x3/2."""
    if version == "v1":
        return PatchMerging2D(dim, out_dim, norm_layer=norm_layer, channel_first=channel_first)
    if version in ("v2", "v3"):
        return ConvDownsample(dim, out_dim, norm_layer=norm_layer, channel_first=channel_first, version=version)
    raise ValueError(f"downsample_version must be one of 'v1', 'v2', 'v3', got {version!r}")
