#!/usr/bin/env python
"""Train an OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone through mmengine's Runner.

A thin caller of ``vision_ssm.cli.mm_train`` (installed: ``vssm-mm-train``), whose
docstring, like ``python tools/mm_train.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.mm_train import main

if __name__ == "__main__":
    sys.exit(main())
