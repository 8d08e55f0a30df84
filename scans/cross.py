"""VMamba's cross scan (CrossScan / SS2D)."""
from __future__ import annotations

from ._grid import positions, with_reverses
from .base import ScanStrategy
from .registry import register_scan


@register_scan("cross")
class CrossScan(ScanStrategy):
    """Four directions in VMamba's order, so converted VMamba weights line up direction by direction:
    ``[row-major, column-major (flatten of the transpose), flip(row-major), flip(column-major)]``,
    i.e. VMamba's ``xs[:, 0] = x.flatten(2, 3)``, ``xs[:, 1] = x.transpose(2, 3).flatten(2, 3)``,
    ``xs[:, 2:4] = torch.flip(xs[:, 0:2], dims=[-1])``.  VMamba's CrossMerge maps the four outputs
    back and sums them; the merge here is "sum" too.

    Reference: Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024.
    """

    direction_names = ("row", "col", "row_rev", "col_rev")

    def __init__(self):
        super().__init__()

    def build_orders(self, H, W):
        grid = positions(H, W)
        return with_reverses([grid.reshape(-1), grid.T.reshape(-1)])
