#!/usr/bin/env python
"""Regenerate the model-zoo table in model_zoo.md (only between <!-- zoo:begin --> and <!-- zoo:end -->).

Every registered VMamba / Vim model: params (checked against the official code), GFLOPs at 224,
CPU inference img/s measured here (batch 8, 2 threads), GPU img/s from a GPU run of
tools/benchmark_models.py (--gpu-json), the published top-1 with its source, and the weights'
source.  Measurements are cached (--cache) and reused unless --remeasure.

    python tools/model_zoo.py                                             # measure what is not cached
    python tools/model_zoo.py --gpu-json outputs/bm_gpu/benchmark_models.json
    python tools/model_zoo.py --no-throughput                             # params and GFLOPs only
    python tools/model_zoo.py --models vmamba_tiny_s1l8 vim_tiny_patch16_224 --remeasure
"""
import sys

from vision_ssm.cli.model_zoo import main

if __name__ == "__main__":
    sys.exit(main())
