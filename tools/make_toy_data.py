#!/usr/bin/env python
"""Writes the toy COCO / ADE20K / MOT17 / YouTube-VIS sets used by the OpenMMLab toy configs.

A thin caller of ``vision_ssm.cli.make_toy_data`` (installed: ``vssm-make-toy-data``), whose
docstring, like ``python tools/make_toy_data.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.make_toy_data import main

if __name__ == "__main__":
    sys.exit(main())
