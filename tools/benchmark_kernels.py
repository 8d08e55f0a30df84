#!/usr/bin/env python
"""Benchmarks the selective-scan backends (ref, torch, triton) at VMamba-T and Vim-T shapes.

Prints a markdown table and writes JSON (and a PNG chart) to --out.
    python tools/benchmark_kernels.py --out outputs/kernels            # full: batch 32
    python tools/benchmark_kernels.py --batch 4 --quick                  # a quick look
    python tools/benchmark_kernels.py --plan                             # launch geometry, no GPU needed
    python tools/benchmark_kernels.py --host-overhead                    # the wrapper's time per call
"""
import sys

from vision_ssm.cli.benchmark_kernels import main

if __name__ == "__main__":
    sys.exit(main())
