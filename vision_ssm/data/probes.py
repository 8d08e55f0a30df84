"""Generated probe tasks for ranking scan orders (no download; every sample a function of its seed).

``lines``     one straight line (horizontal, vertical, diagonal or anti-diagonal), continuous (0) or
              broken by a gap (1), among isolated distractor dots.  Line lengths are drawn so that
              the number of lit pixels says little about the label: the gap must be seen where it is.
``digits``    scikit-learn's 8x8 digits pasted at a random place on a canvas cluttered with
              fragments of other digits; the label is the digit.
``dots``      the order-free control: isolated dots, label 1 when there are more than ``threshold``.
``pathfinder``  the hard tier: are the two dots joined by one dashed curve, among distractor curves
              (:mod:`vision_ssm.data.pathfinder`, "medium"; the easy tiers use its "easy").

Each generator returns ``ProbeData`` (images (n, 1, S, S) float32 in [0, 1], labels (n,) int64 and a
per-sample ``group``: the line's orientation, else 0).  ``tier="easy"`` is the version a probe must
learn before its scan comparison means anything (wider gaps, no clutter); ``tier="start"`` is the
easy version with every class and group of the default one, for a curriculum's first steps.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

__all__ = ["ProbeData", "ORIENTATIONS", "TASKS", "TIERS", "lines", "cluttered_digits", "count_dots",
           "pathfinder", "make_probe_data"]

ORIENTATIONS = ("horizontal", "vertical", "diagonal", "antidiagonal")
TIERS = ("easy", "start", "default")
_STEPS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal": (1, 1), "antidiagonal": (1, -1)}


@dataclasses.dataclass
class ProbeData:
    images: np.ndarray          # (n, 1, S, S) float32
    labels: np.ndarray          # (n,) int64
    group: np.ndarray           # (n,) int64: orientation index for ``lines``, else 0
    num_classes: int
    group_names: tuple = ("all",)


def _check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise ValueError(f"`tier` must be one of {TIERS}, got {tier!r}")
    return tier


def _check_size(size: int, minimum: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < minimum:
        raise ValueError(f"`size` must be an int >= {minimum}, got {size!r}")
    return int(size)


def _isolated_dots(rng: np.random.Generator, occupied: np.ndarray, count: int,
                   radius: int = 1) -> list[tuple[int, int]]:
    """Up to ``count`` pixels with no lit pixel (``occupied`` or another dot) within ``radius``
    (Chebyshev distance)."""
    S, r = occupied.shape[0], radius
    blocked = np.zeros((S + 2 * r, S + 2 * r), bool)
    for i, j in zip(*np.nonzero(occupied)):
        blocked[i:i + 2 * r + 1, j:j + 2 * r + 1] = True
    dots = []
    for _ in range(count):
        free = np.argwhere(~blocked[r:S + r, r:S + r])
        if len(free) == 0:
            break
        i, j = free[rng.integers(len(free))]
        dots.append((int(i), int(j)))
        blocked[i:i + 2 * r + 1, j:j + 2 * r + 1] = True
    return dots


def lines(count: int, seed: int, size: int = 16, tier: str = "default",
          orientations: tuple | None = None) -> ProbeData:
    """Gap detection on one straight line.  Orientation and label are balanced by construction.

    ``default``: lines of 6 to 12 cells, a 1-cell gap at least 2 cells from either end, and 3 to 6
    distractor dots, each at least 3 cells (Chebyshev) from every other lit or gap cell, so that
    "lit, unlit, lit" along a line's direction occurs only at the gap.  ``easy``: horizontal lines
    only (the direction a row scan follows, so a one-direction probe can show it learns), a 3-cell
    gap and no dots.  ``start``: the easy lines in all four orientations.  ``orientations`` overrides
    the tier's set.
    """
    _check_tier(tier)
    size = _check_size(size, 14)
    if orientations is None:
        orientations = ("horizontal",) if tier == "easy" else ORIENTATIONS
    unknown = [o for o in orientations if o not in _STEPS]
    if unknown or not orientations:
        raise ValueError(f"`orientations` must be a non-empty subset of {ORIENTATIONS}, got {orientations!r}")
    rng = np.random.default_rng([seed, 1])
    images = np.zeros((count, 1, size, size), np.float32)
    labels = np.arange(count) % 2
    group = (np.arange(count) // 2) % len(orientations)
    perm = rng.permutation(count)
    labels, group = labels[perm], group[perm]
    for n in range(count):
        di, dj = _STEPS[orientations[group[n]]]
        length = int(rng.integers(6, 13))
        gap = 1 if tier == "default" else 3
        if labels[n]:
            length = max(length, gap + 4)
        i0 = int(rng.integers(0, size - di * (length - 1)))
        j_lo, j_hi = (0, size - (length - 1)) if dj >= 0 else (length - 1, size)
        j0 = int(rng.integers(j_lo, j_hi)) if dj else int(rng.integers(0, size))
        lit = np.ones(length, bool)
        if labels[n]:
            start = int(rng.integers(2, length - gap - 1))
            lit[start:start + gap] = False
        canvas = np.zeros((size, size), bool)
        steps = np.arange(length)[lit]
        canvas[i0 + di * steps, j0 + dj * steps] = True
        if tier == "default":
            for i, j in _isolated_dots(rng, canvas | _gap_cells(i0, j0, di, dj, lit, size),
                                       int(rng.integers(3, 7)), radius=2):
                canvas[i, j] = True
        images[n, 0] = canvas
    names = tuple(orientations)
    return ProbeData(images, labels.astype(np.int64), group.astype(np.int64), 2, names)


def _gap_cells(i0, j0, di, dj, lit, size) -> np.ndarray:
    """The unlit cells inside the line, kept free of dots so a dot never fills a gap."""
    cells = np.zeros((size, size), bool)
    steps = np.nonzero(~lit)[0]
    cells[i0 + di * steps, j0 + dj * steps] = True
    return cells


def _digit_bank() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


def cluttered_digits(count: int, seed: int, size: int = 24, tier: str = "default", split: str = "train") -> ProbeData:
    """A digit at a random place on a ``size`` canvas; ``default`` adds 4 to 6 random 3x3 fragments
    of other digits (dimmed to at most 0.8).  ``split`` picks disjoint digit images (every fifth
    image is held out for "val"), so validation digits are never seen in training."""
    _check_tier(tier)
    size = _check_size(size, 12)
    if split not in ("train", "val"):
        raise ValueError(f"`split` must be 'train' or 'val', got {split!r}")
    bank, targets = _digit_bank()
    held_out = np.arange(len(bank)) % 5 == 0
    pool = np.nonzero(held_out if split == "val" else ~held_out)[0]
    rng = np.random.default_rng([seed, 2, split == "val"])
    images = np.zeros((count, 1, size, size), np.float32)
    labels = np.zeros(count, np.int64)
    for n in range(count):
        canvas = images[n, 0]
        if tier == "default":
            for _ in range(int(rng.integers(4, 7))):
                src = bank[rng.integers(len(bank))]
                a, b = rng.integers(0, 6, size=2)
                i, j = rng.integers(0, size - 3, size=2)
                canvas[i:i + 3, j:j + 3] = np.maximum(canvas[i:i + 3, j:j + 3], 0.8 * src[a:a + 3, b:b + 3])
        pick = pool[rng.integers(len(pool))]
        i, j = rng.integers(0, size - 8 + 1, size=2)
        canvas[i:i + 8, j:j + 8] = np.maximum(canvas[i:i + 8, j:j + 8], bank[pick])
        labels[n] = targets[pick]
    return ProbeData(images, labels, np.zeros(count, np.int64), 10)


def count_dots(count: int, seed: int, size: int = 16, tier: str = "default", threshold: int = 7) -> ProbeData:
    """Isolated dots, 3 to 12 of them (``easy``, ``start``: 3-5 or 10-12); label 1 when more than ``threshold``.
    The answer is a sum over pixels, so no scan order should help or hurt."""
    _check_tier(tier)
    size = _check_size(size, 10)
    rng = np.random.default_rng([seed, 3])
    images = np.zeros((count, 1, size, size), np.float32)
    labels = np.arange(count) % 2
    rng.shuffle(labels)
    for n in range(count):
        if tier != "default":
            k = int(rng.integers(threshold + 3, threshold + 6)) if labels[n] else int(rng.integers(threshold - 4, threshold - 1))
        else:
            k = int(rng.integers(threshold + 1, 13)) if labels[n] else int(rng.integers(3, threshold + 1))
        dots = _isolated_dots(rng, np.zeros((size, size), bool), k)
        for i, j in dots:
            images[n, 0, i, j] = 1.0
        labels[n] = len(dots) > threshold  # the dots placed (a crowded canvas may hold fewer)
    return ProbeData(images, labels.astype(np.int64), np.zeros(count, np.int64), 2)


def pathfinder(count: int, seed: int, size: int = 32, tier: str = "default") -> ProbeData:
    """Pathfinder at ``size`` px: label 1 when the two dots lie on one dashed curve.  ``default`` is
    the "medium" difficulty, ``easy`` and ``start`` the "easy" one (shorter curves, one distractor)."""
    from .pathfinder import generate_pathfinder, make_spec
    _check_tier(tier)
    size = _check_size(size, 24)
    data = generate_pathfinder(make_spec(size, "medium" if tier == "default" else "easy"), seed, 0, count)
    images = (data["images"][:, None] / 255.0).astype(np.float32)
    return ProbeData(images, data["labels"].astype(np.int64), np.zeros(count, np.int64), 2)


TASKS: dict[str, Callable[..., ProbeData]] = {"lines": lines, "digits": cluttered_digits, "dots": count_dots,
                                              "pathfinder": pathfinder}


def make_probe_data(task: str, count: int, seed: int, size: int, tier: str = "default", split: str = "train") -> ProbeData:
    """``task`` in :data:`TASKS`; the train and val splits use different seeds (and digit images)."""
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {tuple(TASKS)}, got {task!r}")
    split_seed = [seed, 0 if split == "train" else 1]
    seed_int = int(np.random.default_rng(split_seed).integers(2 ** 31))
    if task == "digits":
        return cluttered_digits(count, seed_int, size, tier, split=split)
    return TASKS[task](count, seed_int, size, tier)
