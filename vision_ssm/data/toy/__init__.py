"""Small, deterministic datasets in the real formats of COCO, ADE20K, MOT17 and YouTube-VIS.

They are drawn with OpenCV (no download), so the OpenMMLab toy configs can train a few iterations
and run their real evaluation metrics anywhere.  ``make_all(out)`` writes every set::

    OUT/coco/                    -> configs/detection/toy/*            (CocoDataset, CocoMetric)
    OUT/ade/ADEChallengeData2016 -> configs/segmentation/toy/*         (ADE20KDataset, IoUMetric)
    OUT/mot/MOT17/               -> configs/tracking/toy/*bytetrack*, *qdtrack* (MOTChallengeMetric)
    OUT/youtube_vis_2019/        -> configs/tracking/toy/*masktrack*   (YouTubeVISMetric)

This subpackage needs only NumPy and OpenCV and imports nothing else from vision_ssm.
"""
from __future__ import annotations

import os

from .ade import make_ade
from .coco import make_coco
from .mot import make_mot
from .vis import make_vis

__all__ = ["make_coco", "make_ade", "make_mot", "make_vis", "make_all", "TOY_ROOTS"]

# sub-directory of OUT that each toy config's data_root points at
TOY_ROOTS = {
    "coco": "coco/",
    "ade": "ade/ADEChallengeData2016",
    "mot": "mot/MOT17/",
    "vis": "youtube_vis_2019/",
}


def make_all(out: str, seed: int = 0) -> dict:
    """Writes every toy set under ``out`` (deterministic in ``seed``); returns their data roots."""
    make_coco(os.path.join(out, "coco"), seed=seed)
    make_ade(os.path.join(out, "ade"), seed=seed + 1)
    make_mot(os.path.join(out, "mot", "MOT17"), seed=seed + 2)
    make_vis(os.path.join(out, "youtube_vis_2019"), seed=seed + 3)
    return {k: os.path.join(out, v) for k, v in TOY_ROOTS.items()}
