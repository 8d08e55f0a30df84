#!/usr/bin/env python
"""Throughput and peak memory of whole models: VMamba-T[s1l8] vs Swin-T and ConvNeXt-T at 224,
Vim-T vs DeiT-T at 224, 512 and 1024 (by default), with their ratios side by side.

Prints a markdown table; writes benchmark_models.json and benchmark_models.png (throughput and
memory against resolution) to --out.  Each (model, size) runs in its own subprocess.

    python tools/benchmark_models.py --out outputs/benchmark_models                 # CPU: batch 8, 2 threads
    python tools/benchmark_models.py --device cuda --amp bf16 --out outputs/bm_gpu  # GPU: batch 128, +training
    python tools/benchmark_models.py --models zoo --sizes 224 --device cuda --amp bf16  # all zoo models
        (its JSON feeds tools/model_zoo.py --gpu-json)
    python tools/benchmark_models.py --quick                                        # miniature models, seconds
    python tools/benchmark_models.py --free-scan --out outputs/bm_free_scan         # the SSMs with a zero-cost scan
    python tools/benchmark_models.py --models vmamba_tiny_s1l8 --model-kwargs dims=16 depths=1,1,1,1 \\
        --sizes 64 --batch 1 --repeats 1
"""
import sys

from vision_ssm.cli.benchmark_models import main

if __name__ == "__main__":
    sys.exit(main())
