#!/usr/bin/env bash
# The GPU checks in one call: CUDA tests, launch-setting tuning, kernel benchmark, first-call
# time with an empty Triton cache, whole-model benchmarks.
#   bash tools/gpu_suite.sh OUT_DIR [STAGE...]
# stages (default: all, in this order):
#   plan         the launch geometry (--plan) and the wrapper's host time per call (--host-overhead)
#   tests        the Triton operator tests compiled for the GPU (pytest-xdist when installed)
#   tune         tools/tune_kernels.py: writes the launch table into the working tree
#   kernels      tools/benchmark_kernels.py, triton, fp32 and bf16, VMamba-T stages, Vim-T at 224 and 1248 px
#   first_call   VMamba-T forward + backward in a fresh process with an empty Triton cache
#   models_bf16  tools/benchmark_models.py, batch 128, bf16, VMamba-T / Swin-T / Vim-T / DeiT-T at 224
#                (env SUITE_MODELS: another list)
#   kernels_torch  the torch backend at the same shapes (fp32), for the triton-vs-torch ratio
#   models1248   Vim-T vs DeiT-T inference at 512-1248 px, fp32, batch 16
# Runs from the repository root with the machine's own torch / triton / timm (no install). Each
# stage has a time limit (seconds, env STAGE_LIMIT_<name>) so that a slow stage cannot eat the
# others. Writes suite.log and one JSON per stage under OUT_DIR (at most 8 files).
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR [stages...]}
shift
stages=${*:-plan tests tune kernels first_call models_bf16 kernels_torch models1248}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
log=$out/suite.log
python=${PYTHON:-python3}
work=$(mktemp -d)
vmamba_shapes="vmamba_t_s1l8.stage1 vmamba_t_s1l8.stage2 vmamba_t_s1l8.stage3 vmamba_t_s1l8.stage4"

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
models=${SUITE_MODELS:-vmamba_t swin_t vim_t deit_t}

xdist=$($python -c "import xdist" 2>/dev/null && echo "-n 8")
for s in $stages; do
    case $s in
    plan) stage plan 60 $python tools/benchmark_kernels.py --plan --shapes $vmamba_shapes vim_t vim_t.1248px \
            --plan-device "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" &&
        stage host_overhead 60 $python tools/benchmark_kernels.py --host-overhead --device cuda \
            --shapes vmamba_t_s1l8.stage1 vmamba_t_s1l8.stage4 vim_t ;;
    tests) stage tests 150 env OMP_NUM_THREADS=2 $python -m pytest -v -p no:cacheprovider $xdist --tb=short \
            --durations=10 tests/test_selective_scan_triton.py tests/test_triton_cuda.py ;;
    tune) stage tune 150 $python tools/tune_kernels.py --dtypes fp32 --out "$work/tune" &&
        cp "$work/tune/tune.json" "$out/tune.json" ;;
    kernels) stage kernels 120 $python tools/benchmark_kernels.py --backends triton --dtypes fp32 bf16 --no-gather \
            --shapes $vmamba_shapes vim_t vim_t.1248px --out "$work/kernels" &&
        cp "$work/kernels/benchmark_kernels.json" "$out/kernels.json" ;;
    first_call) stage first_call 90 env TRITON_CACHE_DIR="$work/empty_cache" \
            $python -m vision_ssm.bench.first_call --model vmamba_tiny_s1l8 --batch 8 --amp bf16 \
            --out "$out/first_call.json" ;;
    models_bf16) stage models_bf16 150 $python tools/benchmark_models.py --device cuda --amp bf16 --batch 128 \
            --models $models --sizes 224 --out "$work/models_bf16" &&
        cp "$work/models_bf16/benchmark_models.json" "$out/models_bf16_224.json" ;;
    kernels_torch) stage kernels_torch 90 $python tools/benchmark_kernels.py --backends torch --dtypes fp32 \
            --no-gather --no-memory --repeats 1 --shapes $vmamba_shapes vim_t --out "$work/kernels_torch" &&
        cp "$work/kernels_torch/benchmark_kernels.json" "$out/kernels_torch.json" ;;
    models1248) stage models1248 120 $python tools/benchmark_models.py --device cuda --amp none --batch 16 \
            --no-train --models vim_t deit_t --sizes 512 1024 1248 --pairs vim_t:deit_t --out "$work/models1248" &&
        cp "$work/models1248/benchmark_models.json" "$out/models_1248.json" ;;
    *) echo "unknown stage $s" | tee -a "$log"; exit 2 ;;
    esac
done
cp vision_ssm/ops/selective_scan/tuned_configs.json "$out/" 2>/dev/null
rm -rf "$work"
