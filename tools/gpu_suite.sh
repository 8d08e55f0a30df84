#!/usr/bin/env bash
# The GPU checks in one call: compiled-kernel tests, kernel benchmark, model benchmark.
#   bash tools/gpu_suite.sh OUT_DIR [STAGE...]
# stages (default: all, in this order): tests, kernels (torch and triton at the shapes),
# kernels_all (triton at every published size), models_bf16, models_none (batch 128 at 224),
# models1248 (Vim-T vs DeiT-T inference at 512-1248).
# Runs from the repository root with the machine's own torch/triton/timm (no install);
# each stage has a time limit (seconds, env STAGE_LIMIT_<name>), so a slow stage cannot eat
# the others. Writes suite.log, kernels.{json,png}, models_*.json under OUT_DIR.
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR [stages...]}
shift
stages=${*:-tests kernels kernels_all models_bf16 models_none models1248}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TRITON_CACHE_AUTOTUNING=1
log=$out/suite.log
python=${PYTHON:-python3}
work=$(mktemp -d)

stage() {  # stage NAME DEFAULT_LIMIT COMMAND...
    local name=$1 limit=$2
    shift 2
    local var=STAGE_LIMIT_$name
    limit=${!var:-$limit}
    echo "=== $name (limit ${limit}s): $*" | tee -a "$log"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0))s" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  $python -c "import torch, triton, timm; print('torch', torch.__version__, 'triton', triton.__version__, 'timm', timm.__version__)"
} 2>&1 | tee -a "$log"

for s in $stages; do
    case $s in
    tests) stage tests 240 $python -m pytest -q -p no:cacheprovider --durations=15 \
            tests/test_selective_scan_triton.py tests/test_triton_cuda.py -m cuda ;;
    kernels) stage kernels 200 $python tools/benchmark_kernels.py --backends torch triton --out "$work/kernels" &&
        cp "$work/kernels/benchmark_kernels.json" "$out/kernels.json" &&
        cp "$work/kernels/benchmark_kernels.png" "$out/kernels.png" ;;
    kernels_all) stage kernels_all 120 $python tools/benchmark_kernels.py --backends triton --shapes all \
            --out "$work/kernels_all" &&
        cp "$work/kernels_all/benchmark_kernels.json" "$out/kernels_all.json" ;;
    models_bf16|models_none) amp=${s#models_}
        stage "$s" 150 $python tools/benchmark_models.py --device cuda --amp "$amp" --batch 128 \
            --models vmamba_t swin_t vim_t deit_t --sizes 224 --out "$work/$s" &&
        cp "$work/$s/benchmark_models.json" "$out/${s}_224.json" ;;
    models1248) stage models1248 150 $python tools/benchmark_models.py --device cuda --amp none --batch 16 \
            --no-train --models vim_t deit_t --sizes 512 1024 1248 --pairs vim_t:deit_t --out "$work/models1248" &&
        cp "$work/models1248/benchmark_models.json" "$out/models_1248.json" ;;
    *) echo "unknown stage $s" | tee -a "$log"; exit 2 ;;
    esac
done
rm -rf "$work"
