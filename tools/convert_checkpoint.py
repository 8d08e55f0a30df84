#!/usr/bin/env python
"""Convert an official VMamba / Vim checkpoint into a clean timm-style .safetensors file.

A thin caller of ``vision_ssm.cli.convert_checkpoint`` (installed: ``vssm-convert-checkpoint``), whose
docstring, like ``python tools/convert_checkpoint.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.convert_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
