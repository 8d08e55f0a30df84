#!/usr/bin/env python
"""Train every toy twin's whole schedule on the toy data, beside its OpenMMLab control, and report.

A thin caller of ``vision_ssm.cli.toy_twins`` (installed: ``vssm-toy-twins``), whose
docstring, like ``python tools/toy_twins.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.toy_twins import main

if __name__ == "__main__":
    sys.exit(main())
