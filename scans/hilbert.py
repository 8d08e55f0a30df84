"""Generalized Hilbert ("gilbert") curve scans for any H×W."""
from __future__ import annotations

import numpy as np

from ._grid import transposed, with_reverses
from .base import ScanStrategy, check_choice, check_int
from .registry import register_scan

MAJORS = ("auto", "longer")


def _sign(v: int) -> int:
    return (v > 0) - (v < 0)


def _gilbert(x, y, ax, ay, bx, by, out):
    """Fill the rectangle spanned by the major vector (ax, ay) and the minor vector (bx, by) from
    corner (x, y), ending at the far end of the major side (Červený's recursive template)."""
    w, h = abs(ax + ay), abs(bx + by)
    dax, day, dbx, dby = _sign(ax), _sign(ay), _sign(bx), _sign(by)
    if h == 1 or w == 1:  # a single line: walk it
        sx, sy, n = (dax, day, w) if h == 1 else (dbx, dby, h)
        out.extend((x + k * sx, y + k * sy) for k in range(n))
        return
    ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2  # floor halves (negatives too)
    if 2 * w > 3 * h:  # long rectangle: two halves along the major side
        if abs(ax2 + ay2) % 2 and w > 2:  # keep the first half even
            ax2, ay2 = ax2 + dax, ay2 + day
        _gilbert(x, y, ax2, ay2, bx, by, out)
        _gilbert(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by, out)
        return
    if abs(bx2 + by2) % 2 and h > 2:  # keep the first step even
        bx2, by2 = bx2 + dbx, by2 + dby
    # up (half of the minor side), across (the full major side), down
    _gilbert(x, y, bx2, by2, ax2, ay2, out)
    _gilbert(x + bx2, y + by2, ax, ay, bx - bx2, by - by2, out)
    _gilbert(x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby),
             -bx2, -by2, -(ax - ax2), -(ay - ay2), out)


def gilbert_order(H: int, W: int, major: str = "auto") -> np.ndarray:
    """Row-major positions of the generalized Hilbert curve on an H×W grid, from cell (0, 0).

    ``major="longer"``: gilbert2d's own choice, the curve runs along the longer side (columns
    when W >= H) and ends at that side's far corner.  With that side odd and the other even,
    such a curve cannot be continuous (checkerboard parity: its two end cells have the same
    colour while H*W is even); gilbert then makes exactly one diagonal step, which happens here
    exactly when the longer side is odd and the shorter side is even and >= 4 (side 2 ends
    elsewhere and stays continuous).
    ``major="auto"``: the same, except that in that odd/even case the curve runs along the even
    side instead, so every step is between 4-neighbours, for every H, W.
    For square power-of-two grids both give the classical Hilbert curve.
    """
    H, W = check_int("H", H), check_int("W", W)
    check_choice("major", major, MAJORS)
    along_columns = W >= H
    if major == "auto" and (max(H, W) % 2, min(H, W) % 2) == (1, 0):
        along_columns = W % 2 == 0
    cells: list = []
    if along_columns:  # x = column j, y = row i
        _gilbert(0, 0, W, 0, 0, H, cells)
    else:
        _gilbert(0, 0, 0, H, W, 0, cells)
    xy = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    return xy[:, 1] * W + xy[:, 0]


@register_scan("hilbert")
class HilbertScan(ScanStrategy):
    """Generalized Hilbert curve for ANY H×W, from the top-left cell.

    ``directions=1``: the curve alone.  ``directions=2`` (default): the curve and its reverse.
    ``directions=4``: also the curve
    built on the transposed grid (mirrored about the main diagonal) and its reverse.
    ``major`` (see :func:`gilbert_order`): ``"auto"`` (default) makes every step go between
    4-neighbours for every grid; ``"longer"`` reproduces gilbert2d exactly, which has one
    diagonal step when the longer side is odd and the shorter one even and >= 4.

    Reference: J. Červený, "gilbert: Generalized Hilbert space-filling curve for rectangular
    domains of arbitrary sizes", 2018 (github.com/jakubcerveny/gilbert); D. Hilbert, 1891.
    Implemented here from the algorithm's description.
    """

    def __init__(self, directions: int = 2, major: str = "auto"):
        directions = check_choice("directions", check_int("directions", directions), (1, 2, 4))
        check_choice("major", major, MAJORS)
        super().__init__(directions=directions, major=major)
        self.major = major
        names = ("curve", "curve_t")[: max(1, directions // 2)]
        self.direction_names = names if directions == 1 else names + tuple(f"{n}_rev" for n in names)

    def build_orders(self, H, W):
        curves = [gilbert_order(H, W, self.major)]
        if self.num_directions == 1:
            return curves
        if self.num_directions == 4:
            curves.append(transposed(gilbert_order(W, H, self.major), H, W))
        return with_reverses(curves)
