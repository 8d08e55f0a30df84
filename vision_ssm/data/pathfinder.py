"""A generated long-range task in the style of LRA's Pathfinder.

Pathfinder (Linsley et al., NeurIPS 2018; used in the Long Range Arena, Tay et al., ICLR 2021)
shows two dots and several dashed curves ("snakes" of short dashes with random turning); the
label says whether the two dots are joined by one curve (1) or lie on two different curves (0).

This module draws such images with OpenCV.  It is written from the task's description, not
from the original generator, and is built so that the label is true by construction:

* Every curve is a chain of straight dashes.  Between two consecutive dashes of a curve the
  end pixels are at Chebyshev distance at most ``ceil(gap) + 1``, so dilating the picture with
  a square of radius :attr:`PathfinderSpec.bridge_radius` joins the dashes of one curve.
* Every pixel of a curve (its gap-free path, its dashes and its end dots) keeps a Chebyshev
  distance of at least ``2 * bridge_radius + 2`` from every pixel of every other curve: a
  curve step that would come closer is re-drawn with another turn, and a curve that cannot be
  placed is re-started elsewhere.  So the same dilation never joins two different curves.
* A positive draws one curve with a dot at each end; a negative draws two curves with one dot
  each (plus one distractor fewer, so both classes show the same number of curves).

Hence "the two dots lie in one 8-connected component of the dilated binary image" is exactly
the label, which ``tests/test_data.py`` checks with an independent flood fill.

A sample is a pure function of ``(spec, seed, index)``: its random numbers come from a
``random.Random`` seeded with a string made of ``seed`` and ``index``.  Labels are exactly balanced: samples ``2k`` and
``2k + 1`` are one positive and one negative, in an order drawn from the same seed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
from typing import Any, Mapping

import cv2
import numpy as np

from ..files import atomic_path

__all__ = [
    "PathfinderSpec", "DIFFICULTIES", "make_spec", "generate_sample", "generate_pathfinder",
    "load_or_generate",
]

# Difficulty presets, in pixels of a 32x32 image (scaled with the image size): curve length
# (dashes per curve), number of distractor curves and the gap between dashes grow with difficulty.
DIFFICULTIES: dict[str, dict[str, Any]] = {
    "trivial": dict(num_dashes=2, num_distractors=1, dash_length=3.0, gap_length=1.0, max_turn_deg=30.0),
    "easy": dict(num_dashes=4, num_distractors=1, dash_length=2.5, gap_length=1.5, max_turn_deg=35.0),
    "medium": dict(num_dashes=5, num_distractors=2, dash_length=2.0, gap_length=2.0, max_turn_deg=45.0),
    "hard": dict(num_dashes=6, num_distractors=2, dash_length=2.0, gap_length=2.0, max_turn_deg=60.0),
}
_DIFFICULTY_ALIASES = {"0": "easy", "1": "medium", "2": "hard"}


@dataclasses.dataclass(frozen=True)
class PathfinderSpec:
    """Parameters of the generator.  Lengths are pixels of a 32x32 image, scaled by img_size/32."""

    img_size: int = 32
    num_dashes: int = 6
    num_distractors: int = 2
    dash_length: float = 3.0
    gap_length: float = 2.0
    max_turn_deg: float = 35.0
    thickness: float = 1.0
    dot_radius: float = 1.5

    def __post_init__(self):
        if int(self.img_size) < 16:
            raise ValueError(f"pathfinder img_size must be >= 16, got {self.img_size}")
        if self.num_dashes < 2:
            raise ValueError(f"pathfinder num_dashes must be >= 2, got {self.num_dashes}")
        if self.num_distractors < 1:
            raise ValueError(f"pathfinder num_distractors must be >= 1, got {self.num_distractors}")
        if self.dash_length <= 0 or self.gap_length <= 0:
            raise ValueError("pathfinder dash_length and gap_length must be > 0")
        if not 0 <= self.max_turn_deg <= 90:
            raise ValueError(f"pathfinder max_turn_deg must be in [0, 90], got {self.max_turn_deg}")

    # -- sizes in pixels of this image ------------------------------------------------------
    @property
    def scale(self) -> float:
        return self.img_size / 32.0

    @property
    def dash_px(self) -> float:
        return self.dash_length * self.scale

    @property
    def gap_px(self) -> float:
        return self.gap_length * self.scale

    @property
    def thickness_px(self) -> int:
        return max(1, int(self.thickness * self.scale + 0.5))

    @property
    def dot_radius_px(self) -> int:
        return max(1, int(self.dot_radius * self.scale + 0.5))

    @property
    def max_gap_chebyshev(self) -> int:
        """Upper bound on the Chebyshev distance between the end pixels of consecutive dashes."""
        return int(math.ceil(self.gap_px)) + 1

    @property
    def bridge_radius(self) -> int:
        """Radius of the square dilation that joins the dashes of a curve (and never two curves)."""
        return int(math.ceil((self.max_gap_chebyshev - 1) / 2))

    @property
    def separation(self) -> int:
        """Pixels of different curves stay at least this far apart (Chebyshev distance)."""
        return 2 * self.bridge_radius + 2

    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def make_spec(img_size: int = 32, difficulty: str | int | Mapping[str, Any] = "medium", **overrides) -> PathfinderSpec:
    """A spec from a difficulty name (easy|medium|hard, or 0|1|2) or a dict of fields, plus overrides."""
    if isinstance(difficulty, Mapping):
        params = dict(difficulty)
    else:
        name = _DIFFICULTY_ALIASES.get(str(difficulty), str(difficulty)).lower()
        if name not in DIFFICULTIES:
            raise ValueError(
                f"unknown pathfinder difficulty {difficulty!r}: expected one of {sorted(DIFFICULTIES)} (or 0, 1, 2)")
        params = dict(DIFFICULTIES[name])
    params.update(overrides)
    return PathfinderSpec(img_size=int(img_size), **params)


class _Canvas:
    """The pixel bookkeeping of one sample: picture, gap-free mask and the keep-out zone.

    ``keepout`` marks every pixel closer than ``spec.separation`` (Chebyshev) to a placed curve.
    Growing a curve consults ``near``, the keep-out zone widened by half the line width, through
    a flat byte string (fast look-ups of the dash centre lines); a finished curve is then checked
    exactly against ``keepout`` on its real OpenCV raster before it is committed.
    """

    def __init__(self, spec: PathfinderSpec):
        size = spec.img_size
        self.spec = spec
        self.size = size
        self.image = np.zeros((size, size), np.uint8)      # dashes and dots
        self.mask = np.zeros((size, size), np.uint8)       # gap-free curves and dots
        self.keepout = np.zeros((size, size), np.uint8)
        self.dots: list[tuple[int, int]] = []              # dot centres (x, y), in drawing order
        self.thickness = spec.thickness_px
        self.radius = spec.dot_radius_px
        reach = spec.separation - 1
        self.kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
        half = self.thickness // 2
        self.line_kernel = np.ones((2 * half + 1, 2 * half + 1), np.uint8)
        self.dot_kernel = np.ones((2 * self.radius + 1, 2 * self.radius + 1), np.uint8)
        # centres keep this far from the border so that dots and line caps stay inside
        margin = max(self.radius, (self.thickness + 1) // 2) + 1
        self.lo, self.hi = float(margin), float(size - 1 - margin)
        self.near = bytes(size * size)
        self.dot_near = self.near
        self._starts: dict[bool, np.ndarray] = {}

    def inside(self, x: float, y: float) -> bool:
        return self.lo <= x <= self.hi and self.lo <= y <= self.hi

    def segment_free(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        """Fast test of the centre-line pixels of a -> b against the widened keep-out zone."""
        near, size = self.near, self.size
        dx, dy = b[0] - a[0], b[1] - a[1]
        n = max(abs(dx), abs(dy), 1)
        for k in range(n + 1):
            x = a[0] + int(round(k * dx / n))
            y = a[1] + int(round(k * dy / n))
            if near[y * size + x]:
                return False
        return True

    def dot_free(self, p: tuple[int, int]) -> bool:
        """Exact: a filled circle of radius r lies within Chebyshev distance r of its centre."""
        return not self.dot_near[p[1] * self.size + p[0]]

    def render(self, segments, dots) -> np.ndarray:
        curve = np.zeros_like(self.mask)
        for a, b, _ in segments:
            cv2.line(curve, a, b, 1, self.thickness, cv2.LINE_8)
        for p in dots:
            cv2.circle(curve, p, self.radius, 1, -1, cv2.LINE_8)
        return curve

    def commit(self, segments, dots) -> bool:
        """Adds a curve unless its real raster touches the keep-out zone (then returns False)."""
        curve = self.render(segments, dots)
        if np.any(curve & self.keepout):
            return False
        for a, b, is_dash in segments:
            if is_dash:
                cv2.line(self.image, a, b, 255, self.thickness, cv2.LINE_8)
        for p in dots:
            cv2.circle(self.image, p, self.radius, 255, -1, cv2.LINE_8)
            self.dots.append(p)
        self.mask |= curve * 255
        self.keepout |= cv2.dilate(curve, self.kernel)
        self.near = cv2.dilate(self.keepout, self.line_kernel).tobytes()
        self.dot_near = cv2.dilate(self.keepout, self.dot_kernel).tobytes()
        self._starts = {}
        return True

    def starts(self, with_dot: bool) -> np.ndarray:
        """Flat indices of the pixels where a curve (with a dot at its start) may begin."""
        if with_dot not in self._starts:
            size, lo, hi = self.size, int(math.ceil(self.lo)), int(math.floor(self.hi))
            blocked = np.frombuffer(self.dot_near if with_dot else self.near, np.uint8).reshape(size, size)
            ok = np.zeros((size, size), bool)
            ok[lo:hi + 1, lo:hi + 1] = blocked[lo:hi + 1, lo:hi + 1] == 0
            self._starts[with_dot] = np.flatnonzero(ok)
        return self._starts[with_dot]


def _try_curve(canvas: _Canvas, rand: random.Random, dots_at: tuple[bool, bool],
               curve_tries: int = 30, budget: int = 100, turn_tries: int = 5) -> bool:
    """Grows one curve avoiding the keep-out zone; commits it and returns True on success.

    A dash is proposed up to ``turn_tries`` times with a random turn; when none fits, the
    previous dash is taken back (depth-first search) until ``budget`` proposals are spent, and
    then the curve starts again elsewhere (up to ``curve_tries`` times).
    """
    spec = canvas.spec
    uniform = rand.uniform
    max_turn = math.radians(spec.max_turn_deg)
    dash, gap, n = spec.dash_px, spec.gap_px, spec.num_dashes
    for _ in range(curve_tries):
        starts = canvas.starts(dots_at[0])
        if len(starts) == 0:
            return False
        flat = int(starts[int(rand.random() * len(starts))])
        x, y = float(flat % canvas.size), float(flat // canvas.size)
        # placed dashes: (theta, end x, end y, segments, proposals left at this depth)
        stack: list[tuple[float, float, float, list, int]] = []
        left_here, spent = turn_tries, 0
        while len(stack) < n and spent < budget:
            i = len(stack)
            if left_here == 0:
                if not stack:
                    break
                left_here = stack.pop()[4]  # back to the previous dash and its remaining proposals
                continue
            left_here -= 1
            spent += 1
            if i == 0:
                theta = uniform(0.0, 2.0 * math.pi)
                cx, cy = sx, sy = x, y
            else:
                cx, cy = stack[-1][1], stack[-1][2]
                theta = stack[-1][0] + uniform(-max_turn, max_turn)
                sx, sy = cx + gap * math.cos(theta), cy + gap * math.sin(theta)
            ex, ey = sx + dash * math.cos(theta), sy + dash * math.sin(theta)
            if not (canvas.inside(sx, sy) and canvas.inside(ex, ey)):
                continue
            c = (int(round(cx)), int(round(cy)))
            a, b = (int(round(sx)), int(round(sy))), (int(round(ex)), int(round(ey)))
            if not (canvas.segment_free(c, a) and canvas.segment_free(a, b)):
                continue
            if i == n - 1 and dots_at[1] and not canvas.dot_free(b):
                continue
            stack.append((theta, ex, ey, ([(c, a, False)] if i > 0 else []) + [(a, b, True)], left_here))
            left_here = turn_tries
        if len(stack) < n:
            continue
        segments = [seg for entry in stack for seg in entry[3]]
        ends = (segments[0][0], segments[-1][1])
        if canvas.commit(segments, [p for p, want in zip(ends, dots_at) if want]):
            return True
    return False


def _label_of(seed: int, index: int) -> int:
    """Samples 2k and 2k+1 are one of each class, in an order drawn from (seed, k)."""
    digest = hashlib.blake2b(f"pathfinder-label:{int(seed)}:{int(index) // 2}".encode(), digest_size=1).digest()
    first = digest[0] & 1
    return first if index % 2 == 0 else 1 - first


def generate_sample(spec: PathfinderSpec, seed: int, index: int, max_tries: int = 50) -> dict[str, Any]:
    """One sample: ``image`` (uint8 HxW, 0/255), ``mask`` (gap-free), ``label`` and ``dots`` (2x2 xy)."""
    label = _label_of(seed, index)
    # Python's Mersenne Twister seeded from a string: fast and the same on every platform.
    rand = random.Random(f"pathfinder:{int(seed)}:{int(index)}")
    if label == 1:
        plan = [(True, True)] + [(False, False)] * spec.num_distractors
    else:
        plan = [(True, False), (True, False)] + [(False, False)] * (spec.num_distractors - 1)
    for _ in range(max_tries):
        canvas = _Canvas(spec)
        if all(_try_curve(canvas, rand, dots_at) for dots_at in plan):
            return dict(image=canvas.image, mask=canvas.mask, label=label,
                        dots=np.array(canvas.dots, dtype=np.int16))
    raise RuntimeError(
        f"pathfinder: could not place all curves of sample {index} (seed {seed}) in {max_tries} tries; "
        f"the spec is too crowded for a {spec.img_size}x{spec.img_size} image: {spec}")


def generate_pathfinder(spec: PathfinderSpec, seed: int, start: int, count: int,
                        with_masks: bool = False) -> dict[str, np.ndarray]:
    """Samples ``start .. start+count-1``: ``images`` (N,H,W) uint8, ``labels`` (N,) int64, ``dots``."""
    size = spec.img_size
    images = np.zeros((count, size, size), np.uint8)
    labels = np.zeros((count,), np.int64)
    dots = np.zeros((count, 2, 2), np.int16)
    masks = np.zeros((count, size, size), np.uint8) if with_masks else None
    for i in range(count):
        s = generate_sample(spec, seed, start + i)
        images[i], labels[i], dots[i] = s["image"], s["label"], s["dots"]
        if masks is not None:
            masks[i] = s["mask"]
    out = dict(images=images, labels=labels, dots=dots)
    if masks is not None:
        out["masks"] = masks
    return out


def load_or_generate(spec: PathfinderSpec, seed: int, start: int, count: int,
                     cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """:func:`generate_pathfinder`, cached as an .npz in ``cache_dir`` keyed by all parameters."""
    if cache_dir is None:
        return generate_pathfinder(spec, seed, start, count)
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(os.fspath(cache_dir), f"pathfinder-{spec.key()}-s{seed}-{start}-{count}.npz")
    if os.path.isfile(path):
        try:
            with np.load(path) as data:
                return {k: data[k] for k in ("images", "labels", "dots")}
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: regenerate it
    out = generate_pathfinder(spec, seed, start, count)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **out)
    return out
