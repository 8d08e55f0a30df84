#!/usr/bin/env python
"""Evaluate a trained OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone.

    python tools/mm_test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl] [--data-root DIR]
                            [--cfg-options key=value ...]
    torchrun --nproc_per_node=8 tools/mm_test.py CONFIG CHECKPOINT --launcher pytorch

Prints (and logs under the work dir) the config's test metric: mIoU, COCO bbox / segm mAP,
HOTA / MOTA / IDF1, or YouTube-VIS AP.
"""
import sys

from vision_ssm.cli.mm_test import main

if __name__ == "__main__":
    sys.exit(main())
