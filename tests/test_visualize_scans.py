"""tools/visualize_scans.py end to end, and the drawing helpers on degenerate grids."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import scans
from scans.visualize import draw_order, draw_overview, draw_strategy

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "visualize_scans.py"


def run_tool(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def read(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} does not decode"
    assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) > 20
    return img


def test_tool_writes_one_png_per_strategy_and_an_overview(tmp_path):
    result = run_tool("--out", str(tmp_path), "--size", "6", "5")
    assert result.returncode == 0, result.stderr
    names = scans.list_scans()
    for name in names:
        assert name in result.stdout  # progress line per strategy
    images = {name: read(tmp_path / f"{name}.png") for name in names}
    overview = read(tmp_path / "overview.png")
    for (a, ia), (b, ib) in itertools.combinations(images.items(), 2):
        assert ia.shape != ib.shape or not np.array_equal(ia, ib), f"{a} and {b} look the same"
    assert overview.shape[1] > max(im.shape[1] for im in images.values()) // 2
    # a strategy with more directions gets a wider (or taller) sheet
    assert images["cross"].size > images["raster"].size


def test_tool_photo_and_scan_selection(tmp_path):
    photo = tmp_path / "photo"
    result = run_tool("--out", str(photo), "--size", "4", "4", "--scans", "hilbert", "--photo")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(photo)) == ["hilbert.png", "overview.png"]
    a, b = draw_strategy("hilbert", 4, 4), read(photo / "hilbert.png")  # plain vs over the photo
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_tool_rejects_unknown_scan(tmp_path):
    result = run_tool("--out", str(tmp_path), "--scans", "nope")
    assert result.returncode != 0 and "nope" in result.stderr and "cross" in result.stderr


@pytest.mark.parametrize("H,W", [(1, 1), (1, 9), (9, 1), (3, 40)])
def test_drawing_degenerate_grids(H, W):
    img = draw_order(np.arange(H * W), H, W, title="t")
    assert img.dtype == np.uint8 and img.ndim == 3
    sheet = draw_strategy("cross_oblique", H, W)
    assert sheet.shape[1] >= img.shape[1]
    assert draw_overview(["raster", "spiral"], H, W).ndim == 3


def test_draw_order_rejects_non_permutations():
    with pytest.raises(ValueError, match="permutation"):
        draw_order([0, 0, 1, 2], 2, 2)
