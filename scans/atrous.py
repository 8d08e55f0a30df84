"""EfficientVMamba's atrous (skip) scan, laid out as full-length orders."""
from __future__ import annotations

import numpy as np

from ._grid import transposed, with_reverses
from .base import ScanStrategy, check_int
from .registry import register_scan


def strided_rows(H: int, W: int, stride: int) -> np.ndarray:
    """The stride×stride interleaved sub-grids {(i, j): i % s == a, j % s == b}, taken in raster
    order of (a, b), each visited in raster order, concatenated (every cell exactly once)."""
    i, j = np.divmod(np.arange(H * W, dtype=np.int64), W)
    # primary key: sub-grid (a, b); then row, then column.
    return np.lexsort((j, i, j % stride, i % stride))


@register_scan("atrous")
class AtrousScan(ScanStrategy):
    """Atrous / skip scan with ``stride`` s (default 2), four directions in the cross layout:
    ``row`` = the s×s sub-grids (i % s, j % s) = (a, b) in raster order of (a, b), each in
    raster order; ``col`` = the same on the transposed grid (sub-grids taken column-major,
    each visited column-major); then both reversed.  Each order covers every cell exactly once.

    EfficientVMamba's ES2D (s=2) gives each of its four directions only ONE sub-grid (a
    quarter of the tokens: (0,0) row-wise, (1,0) column-wise, (0,1) row-wise, (1,1)
    column-wise) and scans L/4 tokens per direction.  Orders here must be permutations of all
    L tokens, so the sub-grids are concatenated instead and the state runs across sub-grid
    boundaries; within a sub-grid the visiting order matches ES2D's ``x[:, :, a::s, b::s]``
    (row) and ``x.transpose(2, 3)[:, :, b::s, a::s]`` (col) flattening.
    A stride larger than a side leaves one cell per sub-grid along that side (for s >= max(H, W)
    the row order is plain raster order).

    Reference: Pei et al., "EfficientVMamba: Atrous Selective Scan for Light Weight Visual
    Mamba", 2024 (arXiv:2403.09977).
    """

    direction_names = ("row", "col", "row_rev", "col_rev")

    def __init__(self, stride: int = 2):
        stride = check_int("stride", stride)
        super().__init__(stride=stride)
        self.stride = stride

    def build_orders(self, H, W):
        row = strided_rows(H, W, self.stride)
        col = transposed(strided_rows(W, H, self.stride), H, W)
        return with_reverses([row, col])
