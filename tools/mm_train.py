#!/usr/bin/env python
"""Train an OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone through mmengine's Runner.

    python tools/mm_train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                             [--data-root DIR] [--cfg-options key=value ...]
    torchrun --nproc_per_node=8 tools/mm_train.py CONFIG --launcher pytorch

The vision_ssm.mmlab plugin is imported first (backbones, torch / NumPy compatibility fixes), so
configs work with or without their own ``custom_imports``.
"""
import sys

from vision_ssm.cli.mm_train import main

if __name__ == "__main__":
    sys.exit(main())
