"""Pictures of scan orders (OpenCV): numbered, coloured paths on a grid.

Cells are coloured by the step at which they are visited (a colormap from first to last);
consecutive tokens are joined by arrows (steps to one of the 8 neighbouring cells) or thin
lines (longer jumps);
a ring marks the first token and a square the last; small grids get step numbers in cells.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Iterable, Optional

import cv2
import numpy as np

from .registry import get_scan, list_scans

FONT = cv2.FONT_HERSHEY_SIMPLEX
TITLE_H = 28
GAP = 10
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def cell_size(H: int, W: int, target: int = 320) -> int:
    return int(max(10, min(48, target // max(H, W))))


def step_colors(L: int, colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """(L, 3) uint8 BGR colours, first step to last along ``colormap``."""
    ramp = np.linspace(0, 255, max(L, 1)).round().astype(np.uint8).reshape(-1, 1)
    return cv2.applyColorMap(ramp, colormap).reshape(-1, 3)[:L]


def load_photo(name: str = "astronaut") -> np.ndarray:
    """One of scikit-image's bundled images (``skimage.data.<name>()``) as BGR uint8."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise ValueError(f"skimage.data has no image {name!r} (try 'astronaut', 'chelsea', 'coffee')")
    image = np.asarray(loader())
    if image.dtype != np.uint8:
        image = (255 * (image.astype(np.float64) / max(float(image.max()), 1e-12))).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def _fit(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop ``photo`` to the aspect ratio width:height, then resize."""
    ph, pw = photo.shape[:2]
    scale = min(pw / width, ph / height)
    cw, ch = int(round(width * scale)), int(round(height * scale))
    x0, y0 = (pw - cw) // 2, (ph - ch) // 2
    return cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)


def _put_centered(img, text, center, scale, color=BLACK, thickness=1, outline=None):
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    org = (int(center[0] - tw / 2), int(center[1] + th / 2))
    if outline is not None:
        cv2.putText(img, text, org, FONT, scale, outline, thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, color, thickness, cv2.LINE_AA)


def _titled(img: np.ndarray, title: str) -> np.ndarray:
    bar = np.full((TITLE_H, img.shape[1], 3), 255, np.uint8)
    scale = 0.55
    while scale > 0.3 and cv2.getTextSize(title, FONT, scale, 1)[0][0] > img.shape[1] - 4:
        scale -= 0.05
    _put_centered(bar, title, (img.shape[1] / 2, TITLE_H / 2), scale)
    return np.vstack([bar, img])


def draw_order(order, H: int, W: int, title: Optional[str] = None, photo: Optional[np.ndarray] = None,
               cell: Optional[int] = None) -> np.ndarray:
    """One scan order (a sequence of row-major positions) drawn on an H×W grid, BGR uint8."""
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    L = H * W
    if order.shape != (L,) or not np.array_equal(np.sort(order), np.arange(L)):
        raise ValueError(f"draw_order: `order` must be a permutation of range({L}) for H={H}, W={W}")
    c = cell or cell_size(H, W)
    colors = step_colors(L).astype(np.float64)
    step = np.empty(L, np.int64)
    step[order] = np.arange(L)

    # cell fill: pale step colour on white, or a translucent tint over the photo
    tint = colors[step].reshape(H, W, 3)
    tint = np.repeat(np.repeat(tint, c, axis=0), c, axis=1)
    if photo is None:
        img = (0.45 * tint + 0.55 * 255).astype(np.uint8)
    else:
        img = (0.35 * tint + 0.65 * _fit(photo, W * c, H * c)).astype(np.uint8)
    for k in range(1, H):
        cv2.line(img, (0, k * c), (W * c, k * c), (200, 200, 200), 1)
    for k in range(1, W):
        cv2.line(img, (k * c, 0), (k * c, H * c), (200, 200, 200), 1)

    i, j = np.divmod(order, W)
    centers = np.stack([j * c + c // 2, i * c + c // 2], axis=1)
    thick = max(1, c // 12)
    for t in range(L - 1):
        p0, p1 = tuple(int(v) for v in centers[t]), tuple(int(v) for v in centers[t + 1])
        color = tuple(int(v) for v in colors[t])
        if max(abs(i[t] - i[t + 1]), abs(j[t] - j[t + 1])) == 1:  # step to an (8-)neighbour
            if photo is not None:
                cv2.line(img, p0, p1, BLACK, thick + 2, cv2.LINE_AA)
            if c >= 20:
                cv2.arrowedLine(img, p0, p1, color, thick, cv2.LINE_AA, tipLength=0.3)
            else:
                cv2.line(img, p0, p1, color, thick, cv2.LINE_AA)
        else:  # jump
            cv2.line(img, p0, p1, (90, 90, 90) if photo is None else WHITE, 1, cv2.LINE_AA)
    r = max(3, c // 5)
    first, last = tuple(int(v) for v in centers[0]), tuple(int(v) for v in centers[-1])
    cv2.circle(img, first, r, BLACK, 2, cv2.LINE_AA)
    cv2.rectangle(img, (last[0] - r, last[1] - r), (last[0] + r, last[1] + r), BLACK, 2)
    if c >= 18 and L <= 1024:
        scale = c / 75
        for t in range(L):
            corner = (int(centers[t][0] - c * 0.22), int(centers[t][1] - c * 0.22))
            _put_centered(img, str(t), corner, scale, BLACK, 1, outline=WHITE)
    cv2.rectangle(img, (0, 0), (W * c - 1, H * c - 1), (60, 60, 60), 1)
    return _titled(img, title) if title else img


def _pad_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.full((height, width, 3), 255, np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return out


def tile(images: list, cols: int) -> np.ndarray:
    """Images in a grid of ``cols`` columns on white, GAP pixels apart."""
    cols = max(1, min(cols, len(images)))
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    rows = []
    for r in range(math.ceil(len(images) / cols)):
        row = images[r * cols:(r + 1) * cols]
        row = row + [np.full((h, w, 3), 255, np.uint8)] * (cols - len(row))
        padded = [_pad_to(im, h, w) for im in row]
        spaced = []
        for im in padded:
            spaced += [im, np.full((h, GAP, 3), 255, np.uint8)]
        rows += [np.hstack(spaced[:-1]), np.full((GAP, cols * w + (cols - 1) * GAP, 3), 255, np.uint8)]
    sheet = np.vstack(rows[:-1])
    return cv2.copyMakeBorder(sheet, GAP, GAP, GAP, GAP, cv2.BORDER_CONSTANT, value=WHITE)


def draw_strategy(strategy, H: int, W: int, photo: Optional[np.ndarray] = None, cols: int = 4) -> np.ndarray:
    """All K directions of a strategy side by side (``cols`` per row), labelled, under a header."""
    strategy = get_scan(strategy)
    orders = strategy.orders(H, W).numpy()
    names = list(getattr(strategy, "direction_names", [str(k) for k in range(len(orders))]))
    panels = [draw_order(o, H, W, title=f"{k}: {n}", photo=photo) for k, (o, n) in enumerate(zip(orders, names))]
    sheet = tile(panels, cols)
    opts = ", ".join(f"{k}={v}" for k, v in getattr(strategy, "options", {}).items())
    name = getattr(strategy, "name", type(strategy).__name__)
    header = name + (f" ({opts})" if opts else "") + f"  K={strategy.num_directions}  {H}x{W}"
    return _titled(sheet, header)


def draw_overview(strategies: Iterable, H: int, W: int, photo: Optional[np.ndarray] = None,
                  cols: int = 4) -> np.ndarray:
    """One representative (the first) direction per strategy, titled with its name."""
    panels = []
    for s in strategies:
        s = get_scan(s)
        panels.append(draw_order(s.orders(H, W)[0].numpy(), H, W, photo=photo,
                                 title=f"{s.name}: {s.direction_names[0]} (K={s.num_directions})"))
    return tile(panels, cols)


def render_all(out_dir: str, size=(8, 8), names: Optional[list] = None, photo: Optional[str] = None,
               log: Callable[[str], None] = print) -> list:
    """Writes ``<name>.png`` per strategy and ``overview.png`` into ``out_dir``; returns the paths.

    ``photo``: name of a scikit-image bundled image to draw the paths over (None: plain grid).
    """
    H, W = (int(v) for v in size)
    names = list(names) if names else list_scans()
    image = load_photo(photo) if photo else None
    os.makedirs(out_dir, exist_ok=True)
    paths, strategies = [], []
    for n, name in enumerate(names, 1):
        strategy = get_scan(name)
        path = os.path.join(out_dir, f"{name}.png")
        if not cv2.imwrite(path, draw_strategy(strategy, H, W, photo=image)):
            raise OSError(f"could not write {path}")
        log(f"[{n}/{len(names)}] {name}: K={strategy.num_directions} -> {path}")
        paths.append(path)
        strategies.append(strategy)
    path = os.path.join(out_dir, "overview.png")
    if not cv2.imwrite(path, draw_overview(strategies, H, W, photo=image)):
        raise OSError(f"could not write {path}")
    log(f"overview of {len(strategies)} scans -> {path}")
    return paths + [path]
