"""Drawing helpers shared by the toy dataset generators (NumPy + OpenCV only).

Every generator draws filled shapes on a noisy background and derives its annotations (boxes,
polygons, masks, run-length encodings) from what was actually drawn, so the labels are exact.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

SHAPES = ("square", "circle", "triangle")


def background(rng: np.random.Generator, height: int, width: int, base: int = 110) -> np.ndarray:
    """A smooth random BGR background with pixel noise (uint8, H x W x 3)."""
    low = rng.integers(base - 40, base + 40, size=(3, 3, 3)).astype(np.float32)
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR)
    img += rng.normal(0.0, 6.0, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def shape_polygon(kind: str, cx: float, cy: float, w: float, h: float) -> np.ndarray | None:
    """The outline of a square (axis-aligned box) or triangle as an (N, 2) float array; None for a circle."""
    if kind == "square":
        return np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                         [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]], np.float32)
    if kind == "triangle":
        return np.array([[cx, cy - h / 2], [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]], np.float32)
    if kind == "circle":
        return None
    raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")


def shape_mask(kind: str, cx: float, cy: float, w: float, h: float, height: int, width: int) -> np.ndarray:
    """A binary (uint8 0/1) mask of one shape, clipped to the image."""
    mask = np.zeros((height, width), np.uint8)
    poly = shape_polygon(kind, cx, cy, w, h)
    if poly is None:
        cv2.ellipse(mask, (int(round(cx)), int(round(cy))), (max(int(w / 2), 1), max(int(h / 2), 1)),
                    0, 0, 360, 1, thickness=-1)
    else:
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask


def paint(img: np.ndarray, mask: np.ndarray, color: Sequence[int], rng: np.random.Generator) -> None:
    """Fills ``mask`` in ``img`` with ``color`` plus a little noise (in place)."""
    region = mask.astype(bool)
    noise = rng.normal(0.0, 8.0, size=(int(region.sum()), 3))
    img[region] = np.clip(np.asarray(color, np.float32)[None] + noise, 0, 255).astype(np.uint8)


def mask_to_bbox(mask: np.ndarray) -> List[float] | None:
    """COCO [x, y, w, h] of a binary mask (pixel-edge convention), None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (flat [x0, y0, x1, y1, ...] lists with >= 3 points) of a binary mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1, 2).astype(np.float32).flatten()])
    return polys


def mask_to_rle(mask: np.ndarray) -> Dict:
    """Uncompressed COCO run-length encoding: column-major runs starting with zeros."""
    flat = (np.asarray(mask).flatten(order="F") > 0).astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    counts = ([0] if flat.size and flat[0] == 1 else []) + [int(r) for r in runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def write_image(path: str, img: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    if not cv2.imwrite(path, img, params):
        raise OSError(f"could not write {path}")


def write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def random_box(rng: np.random.Generator, height: int, width: int, lo: float, hi: float,
               aspect: Tuple[float, float] = (0.7, 1.4)) -> Tuple[float, float, float, float]:
    """A random (cx, cy, w, h) fully inside the image, the longer side in [lo, hi] * min(H, W)."""
    side = rng.uniform(lo, hi) * min(height, width)
    ratio = rng.uniform(*aspect)
    w, h = side * min(1.0, ratio), side * min(1.0, 1.0 / ratio)
    cx = rng.uniform(w / 2 + 1, width - w / 2 - 1)
    cy = rng.uniform(h / 2 + 1, height - h / 2 - 1)
    return float(cx), float(cy), float(w), float(h)
