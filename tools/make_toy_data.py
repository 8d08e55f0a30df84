#!/usr/bin/env python
"""Writes the toy COCO / ADE20K / MOT17 / YouTube-VIS sets used by the OpenMMLab toy configs.

    python tools/make_toy_data.py --out data/toy [--seed 0]

then train a toy config on them, e.g.
    python tools/mm_train.py configs/detection/toy/mask-rcnn_vmamba-toy_fpn_coco.py --data-root data/toy
"""
import sys

from vision_ssm.cli.make_toy_data import main

if __name__ == "__main__":
    sys.exit(main())
