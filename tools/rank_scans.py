#!/usr/bin/env python
"""Rank scan orders on probe tasks where the scan carries the spatial mixing.

Trains a small Vim probe (patch 1, no 2D convolution) on generated tasks, the same seeds for every
scan: oriented-line gap detection and an order-free dot count (the negative control); cluttered
digits with --tasks digits; Pathfinder, the hard tier reported as solved seeds (val >= 90%) out of
the total, with --tasks pathfinder. Controls run first (each probe on the easy tiers, a small CNN on each task). Writes
rank_scans.json, rank_scans.md, accuracy / orientation / receptive-field PNGs to --out, and with
--update-zoo the section of model_zoo.md between the scans markers.

    python tools/rank_scans.py --out outputs/rank_scans --update-zoo     # the default table, ~1 h on 2 cores
    python tools/rank_scans.py --quick                                   # raster, column, random on lines, ~3 min
    python tools/rank_scans.py --device cuda --scale 4 --seeds 0 1 2 3 4 5 6 7 --out outputs/rank_scans_gpu
        # on a GPU: four times the training steps and samples, 8 seeds
    python tools/rank_scans.py --scans raster bidirectional cross --tasks lines    # VMamba's cross-scan claim
    python tools/rank_scans.py --tasks pathfinder --device cuda --out outputs/rank_pathfinder    # the hard tier
"""
import sys

from vision_ssm.cli.rank_scans import main

if __name__ == "__main__":
    sys.exit(main())
