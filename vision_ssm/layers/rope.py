"""The 2D rotary position embedding of official Vim's segmentation and detection backbones.

Official Vim (``if_rope=True``) uses EVA-02's ``VisionRotaryEmbeddingFast`` with ``dim = C / 2``.
For a token at grid position (i, j), channel pair p (channels 2p, 2p + 1) of the first half of the
C channels turns by the angle ``y_i f_p`` and pair p of the second half by ``x_j f_p``, where
``y_i = i * pretrain_grid / H0``, ``x_j = j * pretrain_grid / W0`` (the model's own grid H0 x W0,
official ``ft_seq_len``, spans the pretraining grid) and ``f_p = theta ** (-2p / (C / 2))``,
p = 0 .. C / 4 - 1.  The position step is fixed by the model's grid, so an input of another size
(a test image, a multi-scale batch) continues the same positions instead of rescaling them.
A pair (a, b) turned by angle t becomes (a cos t - b sin t, b cos t + a sin t).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn as nn

__all__ = ["RotaryEmbedding2d"]

MAX_CACHED_TABLES = 16  # (cos, sin) tables kept, one per input grid, device and dtype


class RotaryEmbedding2d(nn.Module):
    """x (B, H·W, C) in row-major grid order -> x cos(angles) + rotate_pairs(x) sin(angles).

    Args:
        dim: the channels C, a multiple of 4.
        model_grid: the model's patch grid (H0, W0) (official ``ft_seq_len``, square there).
        pretrain_grid: the grid side the model's grid spans (official ``pt_hw_seq_len``, 14).
        theta: the frequency base (10000).
    """

    def __init__(self, dim: int, model_grid: Tuple[int, int], pretrain_grid: int = 14, theta: float = 10000.0):
        super().__init__()
        if dim % 4:
            raise ValueError(f"RotaryEmbedding2d: dim must be a multiple of 4, got {dim}")
        if pretrain_grid < 1:
            raise ValueError(f"RotaryEmbedding2d: pretrain_grid must be >= 1, got {pretrain_grid}")
        self.dim, self.pretrain_grid, self.theta = dim, pretrain_grid, theta
        self.model_grid = (int(model_grid[0]), int(model_grid[1]))
        self._tables: Dict[Tuple, Tuple[torch.Tensor, torch.Tensor]] = {}

    def angles(self, grid: Tuple[int, int]) -> torch.Tensor:
        """(H·W, C) rotation angles in float64: row angles in the first half, column angles in the second."""
        H, W = grid
        half = self.dim // 2
        freqs = self.theta ** (-torch.arange(0, half, 2, dtype=torch.float64) / half)  # (C / 4,)

        def along(n: int, model_n: int) -> torch.Tensor:  # (n, C / 2): each frequency twice, for a pair
            positions = torch.arange(n, dtype=torch.float64) * (self.pretrain_grid / model_n)
            return (positions[:, None] * freqs).repeat_interleave(2, dim=-1)

        rows = along(H, self.model_grid[0])[:, None, :].expand(H, W, half)
        cols = along(W, self.model_grid[1])[None, :, :].expand(H, W, half)
        return torch.cat([rows, cols], dim=-1).reshape(H * W, self.dim)

    def _table(self, grid, device, dtype):
        key = (tuple(grid), str(device), dtype)
        if key not in self._tables:
            if len(self._tables) >= MAX_CACHED_TABLES:  # many input sizes (multi-scale training): drop the oldest
                del self._tables[next(iter(self._tables))]
            with torch.inference_mode(False):  # cached: usable later with autograd too
                angles = self.angles(grid)
                self._tables[key] = (angles.cos().to(device, dtype), angles.sin().to(device, dtype))
        return self._tables[key]

    def forward(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        H, W = int(grid[0]), int(grid[1])
        if x.dim() != 3 or x.shape[1] != H * W or x.shape[2] != self.dim:
            raise ValueError(f"RotaryEmbedding2d: x must be (B, {H}*{W}, {self.dim}) for a {H}x{W} grid, "
                             f"got {tuple(x.shape)}")
        cos, sin = self._table((H, W), x.device, x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos + rotated * sin

    def extra_repr(self) -> str:
        return f"dim={self.dim}, model_grid={self.model_grid}, pretrain_grid={self.pretrain_grid}, theta={self.theta}"
