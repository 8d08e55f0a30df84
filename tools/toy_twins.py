#!/usr/bin/env python
"""Train every toy twin's whole schedule on the toy data, beside its OpenMMLab control, and report.

    python tools/toy_twins.py                                  # every family, into outputs/toy_twins
    python tools/toy_twins.py --families segmentation --update-zoo

Writes OUT/toy_twins.json and OUT/toy_twins.md; with --update-zoo also the committed results file
(vision_ssm/bench/results/DATE_cpu_toy_twins.json) and model_zoo.md's toy table.  Toy data are
generated into OUT/data unless --data-root names a tools/make_toy_data.py output.
"""
import sys

from vision_ssm.cli.toy_twins import main

if __name__ == "__main__":
    sys.exit(main())
