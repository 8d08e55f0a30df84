"""LocalMamba's windowed (local) scans."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._grid import transposed
from .base import ScanStrategy, check_int
from .registry import register_scan

DIRECTIONS = ("row", "col", "row_rev", "col_rev")


def windowed_rows(H: int, W: int, window: int) -> np.ndarray:
    """Windows of window×window cells visited in raster order, raster order inside each window.

    Windows at the bottom/right edges are clipped to the grid (smaller); a window larger than a
    side covers that whole side.
    """
    i, j = np.divmod(np.arange(H * W, dtype=np.int64), W)
    # lexsort: last key is the primary one -> window row, window column, row, column.
    return np.lexsort((j, i, j // window, i // window))


@register_scan("local")
class LocalScan(ScanStrategy):
    """Local scans: the grid is cut into ``window``×``window`` windows (default 7).

    ``row``: windows in raster order, raster order inside each window (LocalMamba's ``w7``
    scan, ``local_scan(..., h_scan=False)``).  ``col``: the same on the transposed grid, i.e.
    windows visited column-major and column-major inside each window (``h_scan=True``).
    ``row_rev``/``col_rev``: those orders reversed (LocalMamba's ``*_flip``).  ``directions``
    picks which, in which order (default all four: row, col, row_rev, col_rev).

    Grids that are not multiples of ``window``: the last window row/column is clipped (smaller
    windows) instead of LocalMamba's zero padding; real tokens keep LocalMamba's relative order,
    the padded tokens are simply absent.  A window larger than the grid is clipped to the grid
    (one window along that side; with both sides clipped the row order is plain raster order).

    Reference: Huang et al., "LocalMamba: Visual State Space Model with Windowed Selective Scan",
    2024 (arXiv:2403.09338).
    """

    def __init__(self, window: int = 7, directions=DIRECTIONS):
        window = check_int("window", window)
        # read once into a tuple: ``directions`` may be an iterator
        names = tuple(directions) if isinstance(directions, Iterable) and not isinstance(directions, str) else None
        if names is None or not all(isinstance(d, str) for d in names):
            raise TypeError(f"`directions` must be a sequence of names from {DIRECTIONS}, got {directions!r}")
        directions = names
        bad = [d for d in directions if d not in DIRECTIONS]
        if bad or not directions or len(set(directions)) != len(directions):
            raise ValueError(f"`directions` must be distinct names from {DIRECTIONS} (at least one), "
                             f"got {directions!r}")
        super().__init__(window=window, directions=directions)
        self.window = window
        self.direction_names = directions

    def build_orders(self, H, W):
        row = windowed_rows(H, W, self.window)
        col = transposed(windowed_rows(W, H, self.window), H, W)
        table = {"row": row, "col": col, "row_rev": row[::-1], "col_rev": col[::-1]}
        return [table[d] for d in self.direction_names]
