"""Writes the toy COCO / ADE20K / MOT17 / YouTube-VIS sets used by the OpenMMLab toy configs.

    python tools/make_toy_data.py --out data/toy [--seed 0]

then train a toy config on them, e.g.
    python tools/mm_train.py configs/detection/toy/mask-rcnn_vmamba-toy_fpn_coco.py --data-root data/toy
"""
import argparse
import json
import sys

from vision_ssm.data.toy import make_all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    roots = make_all(args.out, seed=args.seed)
    print(json.dumps(roots, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
