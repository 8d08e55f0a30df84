"""A toy COCO instance-segmentation set: coloured squares, circles and triangles.

Layout (the one mmdet's ``CocoDataset`` and ``CocoMetric`` read)::

    ROOT/train2017/000000000001.jpg ...
    ROOT/val2017/...
    ROOT/annotations/instances_train2017.json, instances_val2017.json

Squares and triangles are annotated with polygons, circles with (uncompressed) RLE masks, so both
COCO segmentation encodings are exercised.  Each category has its own colour range so that the
task is learnable in a few hundred iterations.
"""
from __future__ import annotations

import os

import numpy as np

from ._draw import (SHAPES, background, mask_to_bbox, mask_to_polygons, mask_to_rle, paint,
                    random_box, shape_mask, write_image, write_json)

CATEGORIES = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPES)]
COLORS = {"square": (40, 40, 220), "circle": (40, 200, 40), "triangle": (220, 60, 40)}  # BGR


def make_coco(root: str, seed: int = 0, num_train: int = 200, num_val: int = 24,
              size=(160, 128), max_objects: int = 3) -> dict:
    """Writes the toy COCO set under ``root``; returns {'train': ann_path, 'val': ann_path}."""
    width, height = size
    rng = np.random.default_rng(seed)
    out = {}
    ann_id = 1
    for split, count in (("train", num_train), ("val", num_val)):
        images, annotations = [], []
        for i in range(count):
            img_id = len(images) + 1 + (0 if split == "train" else 100000)
            file_name = f"{img_id:012d}.jpg"
            img = background(rng, height, width)
            occupancy = np.zeros((height, width), np.uint8)
            objects = []
            for _ in range(int(rng.integers(1, max_objects + 1))):
                kind = SHAPES[int(rng.integers(len(SHAPES)))]
                for _attempt in range(20):  # objects do not overlap, so every mask is exact
                    cx, cy, w, h = random_box(rng, height, width, 0.22, 0.45)
                    mask = shape_mask(kind, cx, cy, w, h, height, width)
                    if mask.sum() > 30 and not (mask & occupancy).any():
                        break
                else:
                    continue
                occupancy |= mask
                paint(img, mask, COLORS[kind], rng)
                objects.append((kind, mask))
            write_image(os.path.join(root, f"{split}2017", file_name), img)
            images.append({"id": img_id, "file_name": file_name, "height": height, "width": width})
            for kind, mask in objects:
                bbox = mask_to_bbox(mask)
                segmentation = mask_to_rle(mask) if kind == "circle" else mask_to_polygons(mask)
                annotations.append({
                    "id": ann_id, "image_id": img_id, "category_id": SHAPES.index(kind) + 1,
                    "bbox": bbox, "area": float(mask.sum()), "iscrowd": 0,
                    "segmentation": segmentation,
                })
                ann_id += 1
        path = os.path.join(root, "annotations", f"instances_{split}2017.json")
        write_json(path, {"info": {"description": "vision-ssm toy COCO", "seed": seed},
                          "licenses": [], "images": images, "annotations": annotations,
                          "categories": CATEGORIES})
        out[split] = path
    return out
