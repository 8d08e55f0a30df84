"""Absolute position embeddings with a class token in the MIDDLE of the token sequence (Vim).

Official Vim inserts its class token between the row-major patch tokens: for M patches the
sequence is ``[p_0 .. p_{M//2-1}, cls, p_{M//2} .. p_{M-1}]`` (index 98 of 197 at 224px), and its
``pos_embed`` (1, M + 1, C) is laid out the same way.  These helpers split, resample and rebuild
such sequences; with ``num_prefix_tokens=0`` (no class token) they reduce to plain grids.

``resample_pos_embed_mid_cls`` interpolates the patch part over the (H, W) grid (bicubic,
``align_corners=False`` like the official Vim / DeiT fine-tuning code; ``antialias`` off by default
for the same reason: the two differ only when shrinking) and keeps the class token's entry as is,
at the middle of the new sequence.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ["mid_index", "insert_mid_token", "split_mid_token", "resample_pos_embed_mid_cls"]


def mid_index(num_patches: int) -> int:
    """Where the class token sits in a sequence of ``num_patches`` patches plus one class token."""
    return num_patches // 2


def insert_mid_token(x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """(B, M, C) patches + (B, 1, C) token -> (B, M + 1, C) with the token at index M // 2."""
    mid = mid_index(x.shape[1])
    return torch.cat((x[:, :mid], token, x[:, mid:]), dim=1)


def split_mid_token(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, M + 1, C) with the token at index M // 2 -> ((B, M, C) patches, (B, 1, C) token)."""
    mid = mid_index(x.shape[1] - 1)
    return torch.cat((x[:, :mid], x[:, mid + 1:]), dim=1), x[:, mid:mid + 1]


def _as_size(size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"expected a grid size (H, W), got {size}")
    return size


def resample_pos_embed_mid_cls(
        posemb: torch.Tensor,
        new_size: Sequence[int],
        old_size: Optional[Sequence[int]] = None,
        num_prefix_tokens: int = 1,
        interpolation: str = "bicubic",
        antialias: bool = False,
) -> torch.Tensor:
    """Resamples a (1, M + T, C) position embedding to the grid ``new_size`` = (H', W').

    ``T = num_prefix_tokens`` is 1 (a class token at index M // 2, official Vim) or 0.
    ``old_size`` is the checkpoint's patch grid (H, W); when omitted the grid is assumed square.
    The class token's embedding is kept unchanged and placed at index H'·W' // 2.
    """
    if num_prefix_tokens not in (0, 1):
        raise ValueError(f"num_prefix_tokens must be 0 or 1 (one middle class token), got {num_prefix_tokens}")
    if posemb.dim() != 3:
        raise ValueError(f"pos_embed must be (1, tokens, dim), got {tuple(posemb.shape)}")
    new_h, new_w = _as_size(new_size)
    num_patches = posemb.shape[1] - num_prefix_tokens
    if old_size is None:
        side = int(round(math.sqrt(num_patches)))
        if side * side != num_patches:
            raise ValueError(f"pos_embed has {num_patches} patch entries, not a square grid: pass old_size=(H, W)")
        old_size = (side, side)
    old_h, old_w = _as_size(old_size)
    if old_h * old_w != num_patches:
        raise ValueError(f"pos_embed has {num_patches} patch entries but old_size={old_h}x{old_w}")
    if (old_h, old_w) == (new_h, new_w):
        return posemb

    if num_prefix_tokens:
        patches, cls = split_mid_token(posemb)
    else:
        patches, cls = posemb, None
    dim, dtype = posemb.shape[-1], posemb.dtype
    grid = patches.reshape(posemb.shape[0], old_h, old_w, dim).permute(0, 3, 1, 2)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    grid = F.interpolate(grid.to(compute), size=(new_h, new_w), mode=interpolation,
                         align_corners=False if interpolation in ("bilinear", "bicubic") else None,
                         antialias=antialias)
    patches = grid.permute(0, 2, 3, 1).reshape(posemb.shape[0], new_h * new_w, dim).to(dtype)
    if cls is None:
        return patches
    return insert_mid_token(patches, cls)
