#!/usr/bin/env python
"""Draw every scan strategy's token orders as PNGs (one per strategy, plus overview.png).

A thin caller of ``vision_ssm.cli.visualize_scans`` (installed: ``vssm-visualize-scans``), whose
docstring, like ``python tools/visualize_scans.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.visualize_scans import main

if __name__ == "__main__":
    sys.exit(main())
