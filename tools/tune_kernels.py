#!/usr/bin/env python
"""Tunes the Triton selective-scan launch settings on this GPU and writes the table the kernels
read (vision_ssm/ops/selective_scan/tuned_configs.json), plus every timing to --out.

A thin caller of ``vision_ssm.cli.tune_kernels`` (installed: ``vssm-tune-kernels``), whose
docstring, like ``python tools/tune_kernels.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.tune_kernels import main

if __name__ == "__main__":
    sys.exit(main())
