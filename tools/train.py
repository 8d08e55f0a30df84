#!/usr/bin/env python
"""Train an image classifier: any timm model (the zoo's VMamba/Vim included) on digits,
pathfinder or an ImageFolder tree.  All logic lives in ``vision_ssm.train``.

    python tools/train.py --model vmamba_tiny_s1l8 --model-kwargs dims=32 depths=[1,1,2,1] --dataset digits
    torchrun --nproc_per_node 2 tools/train.py ...      # DDP; --batch-size is per process

``python tools/train.py --help`` lists every flag.
"""
import sys

from vision_ssm.train.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
