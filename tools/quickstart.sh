#!/usr/bin/env bash
# The README's two Quickstart commands.
#   bash tools/quickstart.sh        set up, train a small VMamba on the embedded digits, then rank three scans (--quick)
#   bash tools/quickstart.sh test   set up (with OpenMMLab) and run the test suite
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${VISION_SSM_VENV:-$ROOT/.venv}/bin/python
cd "$ROOT"
case "${1:-main}" in
  main)
    bash tools/setup.sh
    OUT=${OUT_DIR:-outputs/quickstart}
    "$PY" tools/train.py --dataset digits --model vmamba_tiny_s1l8 --model-kwargs dims=32 "depths=[1,1,2,1]" \
      --img-size 32 --epochs 15 --batch-size 64 --lr 2e-3 --seed 0 --output "$OUT/train"
    "$PY" tools/rank_scans.py --quick --out "$OUT/rank_scans"
    ;;
  test)
    bash tools/setup.sh --mm
    "$PY" -m pytest -q -p no:cacheprovider tests
    ;;
  *) echo "usage: quickstart.sh [main|test]" >&2; exit 2 ;;
esac
