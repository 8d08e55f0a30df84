#!/usr/bin/env bash
# Sets up vision-ssm in a virtual environment (.venv, or $VISION_SSM_VENV), idempotently.
#   tools/setup.sh          torch 2.14.1 / torchvision 0.29.1 (pinned), the package and its test tools
#   tools/setup.sh --mm     also the OpenMMLab stack (mmcv 2.1.0 built once per machine, ~10 min on 2 cores)
# A second run with nothing changed takes a few seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=${VISION_SSM_VENV:-$ROOT/.venv}
WITH_MM=0
for arg in "$@"; do
  case "$arg" in
    --mm) WITH_MM=1 ;;
    *) echo "setup.sh: unknown option '$arg' (expected --mm)" >&2; exit 2 ;;
  esac
done

pick_python() {  # torch 2.14.1 wheels are at hand for CPython 3.11; any 3.10+ works
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      echo "$candidate"; return
    fi
  done
  echo "setup.sh: needs Python >= 3.10" >&2; exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$(pick_python)" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

if ! "$PY" -c 'import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith("2.14.1") and torchvision.__version__.startswith("0.29.1")))' 2>/dev/null; then
  echo "[setup] installing torch 2.14.1 and torchvision 0.29.1"
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi

# Reinstall the package only when its metadata changed.
stamp="$VENV/.vision_ssm_installed"
digest=$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] || ! "$PY" -c 'import vision_ssm, scans' 2>/dev/null; then
  echo "[setup] installing vision-ssm (editable) with its test tools"
  # setuptools < 80 keeps pkg_resources, which mmcv 2.1.0's build needs.
  "${PIP[@]}" "setuptools>=64,<80" wheel
  "${PIP[@]}" -e "$ROOT[test]"
  echo "$digest" > "$stamp"
fi

if [ "$WITH_MM" = 1 ]; then
  echo "[setup] OpenMMLab stack (the first time builds mmcv 2.1.0 from source: about 10 minutes)"
  bash "$ROOT/tools/install_mmlab.sh" "$PY"
fi
echo "[setup] ready: $PY"
