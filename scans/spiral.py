"""Spiral scans."""
from __future__ import annotations

import numpy as np

from ._grid import transposed, with_reverses
from .base import ScanStrategy, check_choice, check_int
from .registry import register_scan


def clockwise_spiral(H: int, W: int) -> np.ndarray:
    """Outside-in clockwise spiral from the top-left cell: right along the top row, down the
    right column, left along the bottom row, up the left column, then the next ring inwards."""
    out = []
    top, bottom, left, right = 0, H - 1, 0, W - 1
    while top <= bottom and left <= right:
        out += [top * W + j for j in range(left, right + 1)]
        out += [i * W + right for i in range(top + 1, bottom + 1)]
        if top < bottom and left < right:
            out += [bottom * W + j for j in range(right - 1, left - 1, -1)]
            out += [i * W + left for i in range(bottom - 1, top, -1)]
        top, bottom, left, right = top + 1, bottom - 1, left + 1, right - 1
    return np.asarray(out, dtype=np.int64)


@register_scan("spiral")
class SpiralScan(ScanStrategy):
    """Spiral scans, continuous (4-neighbour steps) for any H, W.

    ``directions=2`` (default): outside-in clockwise from the top-left cell (``cw_in``) and
    its reverse, which runs inside-out (``cw_in_rev``).  ``directions=4`` adds the outside-in
    counter-clockwise spiral from the top-left cell (down the left column first; the clockwise
    spiral of the transposed grid) and its reverse.

    Reference: spiral scans as used for vision Mamba in e.g. DiffMa (Wang et al., "Soft Masked
    Mamba Diffusion Model for CT to MRI Conversion", 2024).
    """

    def __init__(self, directions: int = 2):
        directions = check_choice("directions", check_int("directions", directions), (2, 4))
        super().__init__(directions=directions)
        names = ("cw_in", "ccw_in")[: directions // 2]
        self.direction_names = names + tuple(f"{n}_rev" for n in names)

    def build_orders(self, H, W):
        spirals = [clockwise_spiral(H, W)]
        if self.num_directions == 4:
            spirals.append(transposed(clockwise_spiral(W, H), H, W))
        return with_reverses(spirals)
