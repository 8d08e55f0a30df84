#!/usr/bin/env python
"""Top-1/top-5/loss of a model on a dataset, from ``--checkpoint`` (a training checkpoint of ours
or an official one) or ``--pretrained``, at any ``--img-size``; ``--use-ema`` for EMA weights.

    python tools/validate.py --checkpoint outputs/digits/best.pth --output results.json

All logic lives in ``vision_ssm.train.evaluate``; ``python tools/validate.py --help`` lists every flag.
"""
import sys

from vision_ssm.train.cli import validate_main

if __name__ == "__main__":
    sys.exit(validate_main())
