#!/usr/bin/env python
"""Draw every scan strategy's token orders as PNGs (one per strategy, plus overview.png).

    python tools/visualize_scans.py --out work_dirs/scans --size 8 8
    python tools/visualize_scans.py --out work_dirs/scans --scans cross hilbert --photo
"""
import sys

from vision_ssm.cli.visualize_scans import main

if __name__ == "__main__":
    sys.exit(main())
