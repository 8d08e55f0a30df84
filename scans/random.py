"""A fixed random permutation: the control scan that keeps no neighbourhood."""
from __future__ import annotations

import numpy as np

from .base import ScanStrategy, check_int
from .registry import register_scan


@register_scan("random")
class RandomScan(ScanStrategy):
    """``directions`` fixed permutations of the grid, drawn from ``seed`` for each (H, W).

    Neighbouring pixels land at unrelated steps, so a model can only mix space through its
    state: the scan benchmark's control that every spatially coherent scan should beat.
    The same (seed, H, W) always gives the same orders.
    """

    def __init__(self, seed: int = 0, directions: int = 1):
        seed = check_int("seed", seed, minimum=0)
        directions = check_int("directions", directions)
        super().__init__(seed=seed, directions=directions)
        self.seed = seed
        self.direction_names = tuple(f"perm{k}" for k in range(directions))

    def build_orders(self, H, W):
        rng = np.random.default_rng([self.seed, H, W])
        return [rng.permutation(H * W) for _ in self.direction_names]
