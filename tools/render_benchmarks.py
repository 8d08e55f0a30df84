#!/usr/bin/env python
"""Writes BENCHMARKS.md from the committed result files in vision_ssm/bench/results/.

A thin caller of ``vision_ssm.cli.render_benchmarks`` (installed: ``vssm-render-benchmarks``), whose
docstring, like ``python tools/render_benchmarks.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.render_benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
