#!/usr/bin/env python
"""Tunes the Triton selective-scan launch settings on this GPU and writes the table the kernels
read (vision_ssm/ops/selective_scan/tuned_configs.json), plus every timing to --out.

    python tools/tune_kernels.py --out outputs/tune            # about a minute on an H100
"""
import sys

from vision_ssm.cli.tune_kernels import main

if __name__ == "__main__":
    sys.exit(main())
