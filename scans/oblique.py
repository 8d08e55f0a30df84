"""Oblique (diagonal) scans, alone and added to the cross scan."""
from __future__ import annotations

import numpy as np

from ._grid import with_reverses
from .base import ScanStrategy
from .cross import CrossScan
from .registry import register_scan


def diagonal_orders(H: int, W: int) -> list:
    """[by (i+j, i), by (i-j, i)]: tokens sorted by diagonal index, then by row within a diagonal."""
    i, j = np.divmod(np.arange(H * W, dtype=np.int64), W)
    return [np.lexsort((i, i + j)), np.lexsort((i, i - j))]


@register_scan("oblique")
class ObliqueScan(ScanStrategy):
    """Four oblique directions: ``diag`` visits the lines i+j = const from the top-left corner
    (within a line, top to bottom), ``antidiag`` the lines i-j = const from the top-right corner
    (within a line, top to bottom), then both reversed.  Consecutive tokens of one line are
    diagonal neighbours; moving to the next line jumps across the grid.

    Diagonal scan directions are among those compared for vision Mamba models, e.g. by
    Zhu et al., "Rethinking Scanning Strategies with Vision Mamba in Semantic Segmentation of
    Remote Sensing Imagery: An Experimental Study", 2024 (arXiv:2405.08493).
    """

    direction_names = ("diag", "antidiag", "diag_rev", "antidiag_rev")

    def __init__(self):
        super().__init__()

    def build_orders(self, H, W):
        return with_reverses(diagonal_orders(H, W))


@register_scan("cross_oblique")
class CrossObliqueScan(ScanStrategy):
    """Eight directions: the cross scan's four (VMamba order) followed by the oblique four.

    References: VMamba (Liu et al., 2024) for the first four; see ``ObliqueScan`` for the rest.
    """

    direction_names = CrossScan.direction_names + ObliqueScan.direction_names

    def __init__(self):
        super().__init__()

    def build_orders(self, H, W):
        return list(CrossScan().build_orders(H, W)) + list(ObliqueScan().build_orders(H, W))
