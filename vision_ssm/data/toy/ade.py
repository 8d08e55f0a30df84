"""A toy ADE20K-style semantic segmentation set (the ``ADEChallengeData2016`` folder layout).

::

    ROOT/ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_%08d.jpg
    ROOT/ADEChallengeData2016/annotations/{training,validation}/ADE_{train,val}_%08d.png

Label PNGs use ADE20K's indices (0 = "other", ignored by ``reduce_zero_label``; 1 wall, 2 building,
3 sky, 4 floor, 5 tree), so mmseg's ``ADE20KDataset`` with its 150 classes reads them unchanged.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from ._draw import background, paint, random_box, shape_mask, write_image

WALL, BUILDING, SKY, FLOOR, TREE = 1, 2, 3, 4, 5
COLORS = {WALL: (150, 150, 150), SKY: (230, 180, 90), FLOOR: (70, 70, 70)}  # BGR
# each object class has two looks (a shape-only split was not learned by the toy twins in 600 iterations)
OBJECT_COLORS = {BUILDING: ((60, 90, 160), (40, 40, 200)), TREE: ((40, 160, 40), (40, 120, 90))}


def make_ade(root: str, seed: int = 0, num_train: int = 240, num_val: int = 24, size=(64, 64)) -> str:
    """Writes the toy set; returns the ``ADEChallengeData2016`` directory (the config's data_root).

    Sky or wall above a horizon, floor below, and 1 to 3 buildings (squares) or trees (circles),
    each in one of its class's two colours."""
    width, height = size
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "ADEChallengeData2016")
    for split, tag, count in (("training", "train", num_train), ("validation", "val", num_val)):
        for i in range(count):
            img = background(rng, height, width)
            label = np.zeros((height, width), np.uint8)
            horizon = int(rng.uniform(0.3, 0.6) * height)
            regions = [(SKY, np.s_[:horizon, :]), (FLOOR, np.s_[horizon:, :])]
            if rng.random() < 0.5:  # a wall instead of the sky on half of the images
                regions[0] = (WALL, regions[0][1])
            for cls, sl in regions:
                m = np.zeros((height, width), np.uint8)
                m[sl] = 1
                label[m.astype(bool)] = cls
                paint(img, m, COLORS[cls], rng)
            for _ in range(int(rng.integers(1, 4))):
                cls = BUILDING if rng.random() < 0.5 else TREE
                cx, cy, w, h = random_box(rng, height, width, 0.2, 0.45)
                m = shape_mask("square" if cls == BUILDING else "circle", cx, cy, w, h, height, width)
                label[m.astype(bool)] = cls
                paint(img, m, OBJECT_COLORS[cls][rng.integers(2)], rng)
            # an unlabeled ("other") one-pixel frame, as ADE20K leaves object borders unlabeled
            cv2.rectangle(label, (0, 0), (width - 1, height - 1), 0, thickness=1)
            name = f"ADE_{tag}_{i + 1:08d}"
            write_image(os.path.join(base, "images", split, name + ".jpg"), img)
            write_image(os.path.join(base, "annotations", split, name + ".png"), label)
    return base
