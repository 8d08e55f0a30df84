"""The fused CPU backend of ``selective_scan``: a C++ kernel built at first use.

``cpu_kernel.cpp`` is compiled with ``torch.utils.cpp_extension.load`` (ninja and the system's
C++ compiler, OpenMP, ``-O3 -march=native``) into PyTorch's extension cache, once per machine and
source version; later processes load the cached library in milliseconds. When it cannot be built
(no compiler), :func:`available` is False, one warning says why, and the dispatch falls back to
the torch path.

The kernel computes in float32: bfloat16 / float16 inputs are converted on the way in and the
outputs and gradients converted back; float64 inputs go to the ``torch`` or ``ref`` backends.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Optional

import torch

from .canonical import ScanArgs

__all__ = ["selective_scan_cpu", "available", "load_kernel"]

_SOURCE = Path(__file__).with_name("cpu_kernel.cpp")
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast"]
_kernel = None
_failure: Optional[str] = None


def load_kernel():
    """The compiled extension module (built on first call), or None with one warning."""
    global _kernel, _failure
    if _kernel is not None or _failure is not None:
        return _kernel
    try:
        from torch.utils import cpp_extension
        digest = hashlib.sha256(_SOURCE.read_bytes() + " ".join(_FLAGS).encode()).hexdigest()[:12]
        _kernel = cpp_extension.load(name=f"vision_ssm_scan_cpu_{digest}", sources=[str(_SOURCE)],
                                     extra_cflags=_FLAGS, extra_ldflags=["-fopenmp"],
                                     verbose=os.environ.get("VISION_SSM_VERBOSE_BUILD") == "1")
    except Exception as err:  # noqa: BLE001 - no compiler, no ninja, a failed build: fall back
        _failure = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
        warnings.warn(f"selective_scan: the fused CPU kernel could not be built ({_failure}); "
                      "using the torch backend on the CPU", RuntimeWarning, stacklevel=3)
    return _kernel


def available() -> bool:
    return load_kernel() is not None


def _as_f32(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return t if t is None or t.dtype == torch.float32 else t.float()


_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


class _FusedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, index, softplus, merge, want_last, training):
        kernel = load_kernel()
        f = [_as_f32(t) for t in (u, delta, A, Bm, Cm, Dv, z, bias)]
        y, states, last, ypre = kernel.scan_fwd(*f, index, softplus, merge == "sum", training, want_last)
        if training:
            ctx.save_for_backward(*f, index, states, ypre if z is not None else None)
            ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, Bm, Cm, Dv, z, bias)]
            ctx.softplus, ctx.merge = softplus, merge
        y = y.to(u.dtype)
        return (y, last) if want_last else y

    @staticmethod
    def backward(ctx, gy, *rest):
        u, delta, A, Bm, Cm, Dv, z, bias, index, states, ypre = ctx.saved_tensors
        glast = rest[0] if rest and rest[0] is not None else None
        grads = load_kernel().scan_bwd(_as_f32(gy), None if glast is None else _as_f32(glast), u, delta, A, Bm,
                                       Cm, Dv, z, bias, index, states, ypre, ctx.softplus, ctx.merge == "sum")
        out = []
        for i, (g, dtype) in enumerate(zip(grads, ctx.dtypes)):
            out.append(g.to(dtype) if (dtype is not None and ctx.needs_input_grad[i]) else None)
        return (*out, None, None, None, None, None)


def selective_scan_cpu(args: ScanArgs, return_last_state: bool = False):
    """Fused CPU selective scan on the canonical layout. Returns (y, last_state or None): y is
    (B, D, L) for merge="sum", (B, K, D, L) for "none", in u's dtype; last_state (B, K, D, N)
    float32."""
    for name, t in zip(_NAMES, args.tensors()):
        if t is not None and t.dtype == torch.float64:
            raise TypeError(f"selective_scan (cpu): `{name}` is float64; the fused CPU kernel computes in "
                            "float32 (use backend='torch' or 'ref' for float64)")
    if load_kernel() is None:
        from .chunked import selective_scan_chunked
        return selective_scan_chunked(args, return_last_state)
    index = args.index.contiguous() if args.index is not None else None
    out = _FusedScan.apply(args.u, args.delta, args.A, args.B, args.C, args.D, args.z, args.delta_bias, index,
                           args.delta_softplus, args.merge, bool(return_last_state), args.backward_can_follow())
    if return_last_state:
        return out[0], out[1]
    return out, None
