#!/usr/bin/env python
"""Benchmarks the selective-scan backends (ref, torch, triton) at VMamba-T and Vim-T shapes.

A thin caller of ``vision_ssm.cli.benchmark_kernels`` (installed: ``vssm-benchmark-kernels``), whose
docstring, like ``python tools/benchmark_kernels.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.benchmark_kernels import main

if __name__ == "__main__":
    sys.exit(main())
