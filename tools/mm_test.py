#!/usr/bin/env python
"""Evaluate a trained OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone.

A thin caller of ``vision_ssm.cli.mm_test`` (installed: ``vssm-mm-test``), whose
docstring, like ``python tools/mm_test.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.mm_test import main

if __name__ == "__main__":
    sys.exit(main())
