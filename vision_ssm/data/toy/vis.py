"""A toy YouTube-VIS 2019 set: shapes that move, grow and leave the frame, with per-frame masks.

Layout::

    ROOT/{train,valid}/JPEGImages/<video>/00000.jpg ...
    ROOT/{train,valid}.json                               raw YouTube-VIS format (as released)
    ROOT/annotations/youtube_vis_2019_{train,valid}.json  CocoVID (what mmdet's converter
                                                          ``youtubevis2coco`` makes, read by
                                                          ``YouTubeVISDataset``)

Unlike the real validation split, the toy ``valid`` split keeps its annotations so that
``YouTubeVISMetric`` can score it.  Category ids and names are YouTube-VIS 2019's (all 40 listed,
three used), so the dataset's class order is unchanged.
"""
from __future__ import annotations

import os

import numpy as np

from ._draw import (background, mask_to_bbox, mask_to_rle, paint, shape_mask, write_image,
                    write_json)

YTVIS_2019_CLASSES = (
    'person', 'giant_panda', 'lizard', 'parrot', 'skateboard', 'sedan', 'ape', 'dog', 'snake',
    'monkey', 'hand', 'rabbit', 'duck', 'cat', 'cow', 'fish', 'train', 'horse', 'turtle', 'bear',
    'motorbike', 'giraffe', 'leopard', 'fox', 'deer', 'owl', 'surfboard', 'airplane', 'truck',
    'zebra', 'tiger', 'elephant', 'snowboard', 'boat', 'shark', 'mouse', 'frog', 'eagle',
    'earless_seal', 'tennis_racket')
# toy category -> (shape drawn, colour BGR)
TOY_OBJECTS = {"person": ("square", (40, 40, 220)), "duck": ("circle", (40, 200, 230)),
               "fish": ("triangle", (220, 90, 40))}


def make_vis(root: str, seed: int = 0, num_train: int = 32, num_valid: int = 12, num_frames: int = 10,
             size=(160, 128), num_objects: int = 2) -> dict:
    """Writes the toy set; returns {'train'|'valid': CocoVID json path}."""
    width, height = size
    rng = np.random.default_rng(seed)
    categories = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(YTVIS_2019_CLASSES)]
    names = list(TOY_OBJECTS)
    paths = {}
    for split, count in (("train", num_train), ("valid", num_valid)):
        raw = {"info": {"description": "vision-ssm toy YouTube-VIS", "seed": seed}, "licenses": [],
               "videos": [], "annotations": [], "categories": categories}
        vid = {"videos": [], "images": [], "annotations": [], "categories": categories}
        for v in range(count):
            video_name = f"{split[:1]}{v:04d}{int(rng.integers(1 << 20)):05x}"
            video_id = len(raw["videos"]) + 1
            objs = []
            for k in range(num_objects):
                cat = names[int(rng.integers(len(names)))]
                s0 = rng.uniform(0.25, 0.4) * min(width, height)
                objs.append(dict(cat=cat, cx=rng.uniform(s0, width - s0), cy=rng.uniform(s0, height - s0),
                                 vx=rng.uniform(-6, 6), vy=rng.uniform(-4, 4), s=s0, ds=rng.uniform(-1.5, 1.5)))
            file_names = []
            per_obj = [dict(segmentations=[], bboxes=[], areas=[]) for _ in objs]
            for f in range(num_frames):
                img = background(rng, height, width)
                occupied = np.zeros((height, width), bool)
                masks = []
                for o in objs:  # later objects occlude earlier ones
                    shape, color = TOY_OBJECTS[o["cat"]]
                    m = shape_mask(shape, o["cx"], o["cy"], o["s"], o["s"], height, width)
                    paint(img, m, color, rng)
                    masks.append(m.astype(bool))
                for i in range(len(masks) - 1, -1, -1):
                    masks[i] &= ~occupied
                    occupied |= masks[i]
                for o in objs:
                    o["cx"] += o["vx"]
                    o["cy"] += o["vy"]
                    o["s"] = float(np.clip(o["s"] + o["ds"], 8, 0.6 * min(width, height)))
                rel = f"{video_name}/{f:05d}.jpg"
                write_image(os.path.join(root, split, "JPEGImages", rel), img)
                file_names.append(rel)
                for i, m in enumerate(masks):
                    bbox = mask_to_bbox(m) if m.sum() >= 10 else None  # gone: None, as in YouTube-VIS
                    per_obj[i]["segmentations"].append(mask_to_rle(m) if bbox else None)
                    per_obj[i]["bboxes"].append(bbox)
                    per_obj[i]["areas"].append(float(m.sum()) if bbox else None)
            raw["videos"].append({"id": video_id, "width": width, "height": height, "length": num_frames,
                                  "file_names": file_names})
            vid["videos"].append({"id": video_id, "name": video_name, "width": width, "height": height})
            first_img = len(vid["images"]) + 1
            for f, rel in enumerate(file_names):
                vid["images"].append({"id": first_img + f, "file_name": rel, "height": height, "width": width,
                                      "frame_id": f, "video_id": video_id})
            for o, track in zip(objs, per_obj):
                if not any(b is not None for b in track["bboxes"]):
                    continue
                instance_id = len(raw["annotations"]) + 1
                cat_id = YTVIS_2019_CLASSES.index(o["cat"]) + 1
                raw["annotations"].append({"id": instance_id, "video_id": video_id, "category_id": cat_id,
                                           "iscrowd": 0, "height": height, "width": width,
                                           "length": 1, **track})
                for f in range(num_frames):
                    if track["bboxes"][f] is None:
                        continue
                    vid["annotations"].append({
                        "id": len(vid["annotations"]) + 1, "video_id": video_id, "image_id": first_img + f,
                        "category_id": cat_id, "instance_id": instance_id, "bbox": track["bboxes"][f],
                        "area": track["areas"][f], "segmentation": track["segmentations"][f], "iscrowd": 0})
        write_json(os.path.join(root, f"{split}.json"), raw)
        paths[split] = os.path.join(root, "annotations", f"youtube_vis_2019_{split}.json")
        write_json(paths[split], vid)
    return paths
