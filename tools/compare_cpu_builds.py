#!/usr/bin/env python
"""The choice behind the fused CPU backend: its C++ kernel against a numba kernel of the same
loop (forward), side by side in one process, with each one's first-call (build / JIT) time.

    python tools/compare_cpu_builds.py --out outputs/cpu_builds      # needs `pip install numba`

The numba kernel walks the same (batch, 16-channel block) tasks, with the state in a small array
and the channel loop vectorised (``fastmath``, ``parallel`` over tasks); the C++ one is
``vision_ssm/ops/selective_scan/cpu_kernel.cpp``. Writes a JSON file.
"""
import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from vision_ssm.bench import kernels
from vision_ssm.bench.measure import device_name, time_call
from vision_ssm.cli import recorded_command
from vision_ssm.ops.selective_scan import selective_scan
from vision_ssm.ops.selective_scan.canonical import canonicalize


def numba_forward():
    """A numba forward kernel on the canonical layout, fp32, token-major rows (compiled lazily)."""
    import numba

    @numba.njit(parallel=True, fastmath=True, cache=False)
    def forward(u, delta, A, Bm, Cm, Dv, bias, index, y, merge_sum):  # u (B, Ku, L, D), delta (B, K, L, D)
        batch, K, L, D = delta.shape
        N = A.shape[2]
        DB = 16
        nblocks = (D + DB - 1) // DB
        for task in numba.prange(batch * nblocks):
            b = task // nblocks
            d0 = (task % nblocks) * DB
            nd = min(DB, D - d0)
            h = np.zeros((N, DB), np.float32)
            dt = np.zeros(DB, np.float32)
            dtu = np.zeros(DB, np.float32)
            yv = np.zeros(DB, np.float32)
            for k in range(K):
                ku = k if u.shape[1] > 1 else 0
                h[:, :] = 0.0
                for t in range(L):
                    p = index[k, t]
                    for j in range(nd):
                        x = delta[b, k, p, d0 + j] + bias[k, d0 + j]
                        s = max(x, 0.0) + np.log1p(np.exp(-abs(x)))
                        dt[j] = s
                        dtu[j] = s * u[b, ku, p, d0 + j]
                        yv[j] = Dv[k, d0 + j] * u[b, ku, p, d0 + j]
                    for n in range(N):
                        bn = Bm[b, k, p, n]
                        cn = Cm[b, k, p, n]
                        for j in range(nd):
                            h[n, j] = np.exp(dt[j] * A[k, d0 + j, n]) * h[n, j] + dtu[j] * bn
                            yv[j] += h[n, j] * cn
                    kk = 0 if merge_sum else k
                    for j in range(nd):
                        if merge_sum:
                            y[b, kk, p, d0 + j] += yv[j]
                        else:
                            y[b, kk, p, d0 + j] = yv[j]
        return y

    return forward


def _numba_args(inputs):
    args, _ = canonicalize(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], inputs["D"], None,
                           inputs["delta_bias"], True, inputs["index"], "sum" if inputs["index"] is not None else "none")
    tm = lambda t: t.movedim(-1, -2).contiguous().numpy()  # noqa: E731 - (.., D, L) -> (.., L, D)
    K, L = args.delta.shape[1], args.delta.shape[-1]
    index = (args.index if args.index is not None else torch.arange(L).expand(K, L)).contiguous().numpy()
    Bm = args.B[:, :, 0].movedim(-1, -2).contiguous().numpy()  # (B, K, L, N), one group
    Cm = args.C[:, :, 0].movedim(-1, -2).contiguous().numpy()
    merge_sum = args.merge == "sum"
    y = np.zeros((args.u.shape[0], 1 if merge_sum else K, L, args.A.shape[1]), np.float32)
    return (tm(args.u), tm(args.delta), args.A.numpy(), Bm, Cm, args.D.numpy(), args.delta_bias.numpy(),
            index, y, merge_sum)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="outputs/cpu_builds")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows, cpu = [], torch.device("cpu")

    import os
    import tempfile
    os.environ["TORCH_EXTENSIONS_DIR"] = tempfile.mkdtemp()  # an empty build cache: the first build
    t0 = time.perf_counter()
    from vision_ssm.ops.selective_scan import cpu_scan
    cpu_scan.load_kernel()
    cxx_load_s = time.perf_counter() - t0
    forward = numba_forward()
    first_numba_s = None
    for shape in kernels.default_shapes(args.batch):
        inputs = kernels.make_inputs(shape, cpu)
        inputs["z"] = None  # the numba loop has no gate: both run ungated
        nb = _numba_args(inputs)
        if first_numba_s is None:
            t0 = time.perf_counter()
            forward(*nb)
            first_numba_s = time.perf_counter() - t0
        else:
            forward(*nb)  # nb[-2] holds this shape's output for the check below
        numba_s = time_call(lambda: forward(*nb[:-2], np.zeros_like(nb[-2]), nb[-1]), cpu, repeats=args.repeats)
        fused = lambda: selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"],  # noqa: E731
                                       D=inputs["D"], delta_bias=inputs["delta_bias"], delta_softplus=True,
                                       index=inputs["index"], merge="sum" if inputs["index"] is not None else "none",
                                       backend="cpu")
        with torch.no_grad():
            cxx_s = time_call(fused, cpu, repeats=args.repeats)
            y = fused()
        y_numba = torch.from_numpy(nb[-2]).movedim(-2, -1)
        y_numba = y_numba[:, 0] if y.dim() == 3 else y_numba
        rows.append(dict(shape=shape.name, cxx_fwd_ms=cxx_s * 1e3, numba_fwd_ms=numba_s * 1e3,
                         numba_over_cxx=numba_s / cxx_s,
                         max_rel_diff=((y - y_numba).abs().max() / y.abs().max()).item()))
        print(rows[-1], flush=True)
    import numba
    result = dict(rows=rows, cxx_first_build_s=cxx_load_s, numba_first_call_s=first_numba_s,
                  numba=numba.__version__, torch=torch.__version__, date=date.today().isoformat(),
                  device=device_name(cpu), batch=args.batch,
                  command=recorded_command("compare_cpu_builds", argv))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_cpu_builds.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return result


if __name__ == "__main__":
    main()
