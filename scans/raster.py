"""Raster scans: plain row-major flattening and its bidirectional form."""
from __future__ import annotations

import numpy as np

from ._grid import transposed, with_reverses
from .base import ScanStrategy
from .registry import register_scan


@register_scan("raster")
class RasterScan(ScanStrategy):
    """One direction: row-major flattening (p = i*W + j), as a 1-D Mamba sees a flattened image.

    Reference: Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023.
    """

    direction_names = ("row",)

    def __init__(self):
        super().__init__()

    def build_orders(self, H, W):
        return [np.arange(H * W)]


@register_scan("column")
class ColumnScan(ScanStrategy):
    """One direction: column-major flattening (down each column, columns left to right).

    The raster scan of the transposed image; the scan benchmark's counterpart to ``raster``
    (vertical neighbours are adjacent steps, horizontal ones H steps apart).
    """

    direction_names = ("col",)

    def __init__(self):
        super().__init__()

    def build_orders(self, H, W):
        return [transposed(np.arange(H * W), H, W)]


@register_scan("bidirectional")
class BidirectionalScan(ScanStrategy):
    """Two directions: row-major and its reverse, as in Vim's bidirectional blocks.

    Reference: Zhu et al., "Vision Mamba: Efficient Visual Representation Learning with
    Bidirectional State Space Model" (Vim), ICML 2024.
    """

    direction_names = ("row", "row_rev")

    def __init__(self):
        super().__init__()

    def build_orders(self, H, W):
        return with_reverses([np.arange(H * W)])
