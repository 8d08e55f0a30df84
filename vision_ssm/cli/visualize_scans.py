"""Draw every scan strategy's token orders as PNGs (one per strategy, plus overview.png).

    python tools/visualize_scans.py --out work_dirs/scans --size 8 8
    python tools/visualize_scans.py --out work_dirs/scans --scans cross hilbert --photo
"""
from __future__ import annotations

import argparse
import sys

import scans
from scans.visualize import render_all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--size", nargs=2, type=int, default=(8, 8), metavar=("H", "W"), help="grid size (default 8 8)")
    parser.add_argument("--scans", nargs="+", action="extend", default=None, metavar="NAME",
                        help=f"strategies to draw (default all: {' '.join(scans.list_scans())})")
    parser.add_argument("--photo", nargs="?", const="astronaut", default=None, metavar="IMAGE",
                        help="draw over a scikit-image bundled photo (default astronaut)")
    args = parser.parse_args(argv)
    if min(args.size) < 1:
        parser.error("--size: H and W must be >= 1")
    unknown = [n for n in args.scans or [] if n not in scans.list_scans()]
    if unknown:
        parser.error(f"unknown scan(s) {', '.join(unknown)}; available: {', '.join(scans.list_scans())}")
    render_all(args.out, size=args.size, names=args.scans, photo=args.photo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
