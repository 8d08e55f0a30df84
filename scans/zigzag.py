"""Continuous zigzag (boustrophedon / snake) scans of PlainMamba and ZigMa."""
from __future__ import annotations

from ._grid import positions, snake_cols, snake_rows
from .base import ScanStrategy, check_choice
from .registry import register_scan

VARIANTS = ("plainmamba", "zigma")
# ZigMa's corners: (name, flip rows, flip columns), in the order of its zigzag_path.
_CORNERS = (("tl", False, False), ("tr", False, True), ("bl", True, False), ("br", True, True))


@register_scan("zigzag")
class ZigzagScan(ScanStrategy):
    """Snake scans: consecutive tokens are always 4-neighbours on the grid, for any H, W.

    ``variant="plainmamba"`` (default, K=4), in the order of PlainMamba's official code
    (``get_permute_order``: o1..o4): row snake from the top-left, its reverse, column snake from
    the top-left, its reverse.  Reference: Yang et al., "PlainMamba: Improving Non-Hierarchical
    Mamba in Visual Recognition", BMVC 2024.  (PlainMamba's learned direction-aware updates are
    a block feature, not part of the scan order.)

    ``variant="zigma"`` (K=8), in the order of ZigMa's ``zigzag_path``: for each starting corner
    top-left, top-right, bottom-left, bottom-right, the row snake then the column snake from that
    corner (the corner's rows/columns are walked away from it).  Reference: Hu et al.,
    "ZigMa: A DiT-style Zigzag Mamba Diffusion Model", ECCV 2024.
    """

    def __init__(self, variant: str = "plainmamba"):
        check_choice("variant", variant, VARIANTS)
        super().__init__(variant=variant)
        self.variant = variant
        if variant == "plainmamba":
            self.direction_names = ("row_snake", "row_snake_rev", "col_snake", "col_snake_rev")
        else:
            self.direction_names = tuple(f"{axis}_{corner}" for corner, _, _ in _CORNERS
                                         for axis in ("row", "col"))

    def build_orders(self, H, W):
        rows, cols = snake_rows(H, W), snake_cols(H, W)
        if self.variant == "plainmamba":
            return [rows, rows[::-1], cols, cols[::-1]]
        orders = []
        for _, flip_rows, flip_cols in _CORNERS:
            grid = positions(H, W)
            grid = grid[::-1] if flip_rows else grid
            grid = grid[:, ::-1] if flip_cols else grid
            labels = grid.reshape(-1)  # the snake of the flipped grid, read as original positions
            orders += [labels[rows], labels[cols]]
        return orders
