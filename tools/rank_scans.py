#!/usr/bin/env python
"""Rank scan orders on probe tasks where the scan carries the spatial mixing.

A thin caller of ``vision_ssm.cli.rank_scans`` (installed: ``vssm-rank-scans``), whose
docstring, like ``python tools/rank_scans.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.rank_scans import main

if __name__ == "__main__":
    sys.exit(main())
