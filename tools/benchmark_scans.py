#!/usr/bin/env python
"""Compare 2D scan strategies on one backbone: parameters, GFLOPs, inference and training
throughput, peak memory and (with --train) accuracy after a short training, mean ± std over seeds.
--scaling instead sweeps resolution, SSM backbones (VMamba-T, Vim-T) against DeiT-T and Swin-T.

Prints a markdown table; writes benchmark_scans.{json,csv,md,png} (or benchmark_scaling.*) to --out.
The default backbone is a small VMamba (vmamba_tiny_s1l8 with dims=32 depths=1,1,2,1); pass
--model-kwargs with no value for the full model.

    python tools/benchmark_scans.py --quick                                   # 4 scans, 64 px, < 1 min
    python tools/benchmark_scans.py --sizes 64 128 --out outputs/benchmark_scans
    python tools/benchmark_scans.py --train digits --epochs 5 --seeds 0 1 2 --sizes 64
    python tools/benchmark_scans.py --scans cross local:window=4 hilbert --model vim_tiny_patch16_224 \\
        --model-kwargs depth=6 --sizes 224
    python tools/benchmark_scans.py --scaling --sizes 224 384 512 768 1024 --batch 2
"""
import sys

from vision_ssm.cli.benchmark_scans import main

if __name__ == "__main__":
    sys.exit(main())
