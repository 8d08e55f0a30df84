#!/usr/bin/env python
"""Regenerate the model-zoo table in model_zoo.md (only between <!-- zoo:begin --> and <!-- zoo:end -->).

A thin caller of ``vision_ssm.cli.model_zoo`` (installed: ``vssm-model-zoo``), whose
docstring, like ``python tools/model_zoo.py --help``, gives the usage and examples.
"""
import sys

from vision_ssm.cli.model_zoo import main

if __name__ == "__main__":
    sys.exit(main())
