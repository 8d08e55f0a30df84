#!/usr/bin/env bash
# Builds mmcv 2.1.0 (with ops, CPU) for the active Python and torch, once per machine.
# mmcv 2.1.0 is the only release both mmdet 3.3.0 and mmseg 1.2.2 accept, and it ships no wheel
# for torch 2.14, whose headers need C++20: we raise the source's C++ standard and build it here.
# Usage: tools/build_mmcv.sh PYTHON   -> prints the path of the cached wheel
set -euo pipefail
PY=${1:?usage: build_mmcv.sh PYTHON}; PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
VERSION=2.1.0
TORCH=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
PYTAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
CACHE=${VISION_SSM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vision-ssm}/wheels/mmcv-$VERSION-torch$TORCH-$PYTAG
mkdir -p "$CACHE"
wheel=$(ls "$CACHE"/mmcv-*.whl 2>/dev/null | head -n1 || true)
if [ -n "$wheel" ]; then echo "$wheel"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building mmcv $VERSION for torch $TORCH ($PYTAG): about 10 minutes on 2 cores" >&2
"$PY" -m pip install -q "setuptools<80" ninja >&2   # mmcv's setup.py imports pkg_resources
"$PY" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation "mmcv==$VERSION" -d "$work" >&2
tar xzf "$work/mmcv-$VERSION.tar.gz" -C "$work"
sed -i -E "s/-std=c\+\+1[47]/-std=c++20/g" "$work/mmcv-$VERSION/setup.py"
(cd "$work/mmcv-$VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} FORCE_CUDA=0 CUDA_HOME= \
   "$PY" -m pip wheel -q --no-deps --no-build-isolation . -w "$CACHE" >&2)
ls "$CACHE"/mmcv-*.whl | head -n1
