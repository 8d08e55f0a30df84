#!/usr/bin/env python
"""Throughput and peak memory of whole models: VMamba-T[s1l8] vs Swin-T and ConvNeXt-T at 224,
Vim-T vs DeiT-T at 224, 512 and 1024 (by default), with their ratios side by side.

A thin caller of ``vision_ssm.cli.benchmark_models`` (installed: ``vssm-benchmark-models``), whose
docstring, like ``python tools/benchmark_models.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.benchmark_models import main

if __name__ == "__main__":
    sys.exit(main())
