#!/usr/bin/env python
"""Writes BENCHMARKS.md from the committed result files in vision_ssm/bench/results/.

    python tools/render_benchmarks.py            # rewrite BENCHMARKS.md
    python tools/render_benchmarks.py --check    # exit 1 if BENCHMARKS.md is out of date
"""
import sys

from vision_ssm.cli.render_benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
