#!/usr/bin/env python
"""Compare 2D scan strategies on one backbone: parameters, GFLOPs, inference and training
throughput, peak memory and (with --train) accuracy after a short training, mean ± std over seeds.
--scaling instead sweeps resolution, SSM backbones (VMamba-T, Vim-T) against DeiT-T and Swin-T.

A thin caller of ``vision_ssm.cli.benchmark_scans`` (installed: ``vssm-benchmark-scans``), whose
docstring, like ``python tools/benchmark_scans.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.benchmark_scans import main

if __name__ == "__main__":
    sys.exit(main())
