"""Small numpy helpers shared by the scan families (positions are row-major: p = i*W + j)."""
from __future__ import annotations

import numpy as np


def positions(H: int, W: int) -> np.ndarray:
    """(H, W) array holding each cell's row-major position."""
    return np.arange(H * W, dtype=np.int64).reshape(H, W)


def transposed(order_t: np.ndarray, H: int, W: int) -> np.ndarray:
    """Map an order built on the transposed W×H grid back to positions of the H×W grid.

    Cell (a, b) of the transposed grid (position a*H + b) is cell (b, a) here (position b*W + a).
    """
    order_t = np.asarray(order_t, dtype=np.int64)
    return (order_t % H) * W + order_t // H


def with_reverses(orders: list) -> list:
    """``orders`` followed by each of them reversed (VMamba's [o1, o2, flip(o1), flip(o2)] layout)."""
    return list(orders) + [np.ascontiguousarray(o[::-1]) for o in orders]


def snake_rows(H: int, W: int) -> np.ndarray:
    """Boustrophedon over rows from the top-left: even rows left to right, odd rows right to left."""
    grid = positions(H, W).copy()
    grid[1::2] = grid[1::2, ::-1]
    return grid.reshape(-1)


def snake_cols(H: int, W: int) -> np.ndarray:
    """Boustrophedon over columns from the top-left: even columns downwards, odd ones upwards."""
    return transposed(snake_rows(W, H), H, W)
