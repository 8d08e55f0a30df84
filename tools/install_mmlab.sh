#!/usr/bin/env bash
# Installs the OpenMMLab stack for vision_ssm.mmlab into PYTHON's environment, idempotently:
#   mmcv 2.1.0 (built from source once per machine by tools/build_mmcv.sh, then cached),
#   mmengine>=0.10.4,<0.11, mmdet 3.3.0, mmsegmentation 1.2.2, and what their metrics need:
#   pycocotools (CocoMetric), ftfy + regex (mmdet's text utilities), trackeval (MOTChallengeMetric
#   imports TrackEval; PyPI's "trackeval" is a packaged TrackEval that runs on NumPy 2) and lap
#   (ByteTracker's linear assignment).
# Usage: tools/install_mmlab.sh PYTHON        (a second run takes a few seconds)
set -euo pipefail
PY=${1:?usage: install_mmlab.sh PYTHON}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE=${VISION_SSM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vision-ssm}
mkdir -p "$CACHE"

want_ok() {  # all pinned packages present at the right versions and importable together
  "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as md
pins = {"mmcv": "2.1.0", "mmdet": "3.3.0", "mmsegmentation": "1.2.2"}
for name, version in pins.items():
    assert md.version(name) == version, name
major, minor = (int(x) for x in md.version("mmengine").split(".")[:2])
assert (major, minor) == (0, 10) and tuple(int(x) for x in md.version("mmengine").split(".")[:3]) >= (0, 10, 4)
for name in ("pycocotools", "ftfy", "regex", "trackeval", "lap", "terminaltables", "shapely", "prettytable"):
    md.version(name)
import mmcv.ops, mmdet, mmseg, trackeval, lap, pycocotools.coco  # noqa: F401  (mmcv.ops: the compiled ops load)
EOF
}

if want_ok; then
  echo "OpenMMLab stack already installed for $PY"
  exit 0
fi

# One installer at a time per machine (a parallel run waits here, then finds everything installed).
exec 9>"$CACHE/install_mmlab.lock"
flock 9
if want_ok; then
  echo "OpenMMLab stack already installed for $PY"
  exit 0
fi

# mmcv: wait for a build already running (e.g. started by tools/setup.sh) instead of starting a
# second one; build_mmcv.sh then returns the cached wheel (or builds it if none is cached).
while pgrep -f "tools/build_mmcv.sh" >/dev/null 2>&1; do
  echo "waiting for the mmcv build already running (log: see tools/setup.sh) ..." >&2
  sleep 20
done
wheel=$(bash "$HERE/build_mmcv.sh" "$PY" | tail -n1)
[ -f "$wheel" ] || { echo "install_mmlab.sh: no mmcv wheel from build_mmcv.sh ($wheel)" >&2; exit 1; }

# --no-deps for the OpenMMLab packages: their wheels require opencv-python, which would sit on top
# of the project's opencv-python-headless (same cv2 module); their real dependencies are listed
# explicitly below instead.
"$PY" -m pip install -q --no-deps "$wheel" "mmengine>=0.10.4,<0.11" "mmdet==3.3.0" \
  "mmsegmentation==1.2.2" "trackeval==1.3.0"
"$PY" -m pip install -q \
  addict pyyaml rich termcolor yapf packaging Pillow matplotlib scipy tqdm six \
  shapely terminaltables prettytable ftfy regex pycocotools tabulate lap

want_ok || { echo "install_mmlab.sh: the OpenMMLab stack does not import; see the errors above" >&2;
             "$PY" -c "import mmcv.ops, mmdet, mmseg, trackeval, lap"; exit 1; }
echo "OpenMMLab stack installed for $PY (mmcv from $wheel)"
