"""The Triton backend of ``selective_scan``: launchers and the autograd Function.

Kernels: ``triton_kernels.py``. Launch settings (no autotuning): ``triton_config.py``.
Outputs and gradients of per-token tensors are allocated token-major ((..., L, C) in memory,
returned as (..., C, L) views), the layout the kernels read and write in 32-byte rows.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.utils.weak import WeakIdKeyDictionary

from . import triton_config
from .canonical import ScanArgs
from .triton_kernels import selective_scan_bwd_kernel, selective_scan_fwd_kernel

__all__ = ["selective_scan_triton"]

_F32 = torch.float32
_int32_indices = WeakIdKeyDictionary()  # int64 index map -> ((version, ptr), int32 copy)


def _check_dtypes(args: ScanArgs):
    for name, t in (("u", args.u), ("delta", args.delta), ("A", args.A), ("B", args.B),
                    ("C", args.C), ("D", args.D), ("z", args.z), ("delta_bias", args.delta_bias)):
        if t is not None and t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"selective_scan (triton): `{name}` is {t.dtype}; the Triton kernels take "
                            "float32, float16 or bfloat16 (use backend='torch' or 'ref' for float64)")


def int32_index(index: torch.Tensor) -> torch.Tensor:
    """The (K, L) index map as contiguous int32, converted once per map."""
    if index.dtype == torch.int32 and index.is_contiguous():
        return index
    if index.is_inference():
        return index.to(torch.int32).contiguous()
    key = (index._version, index.data_ptr())
    hit = _int32_indices.get(index)
    if hit is None or hit[0] != key:
        hit = (key, index.to(torch.int32).contiguous())
        _int32_indices[index] = hit
    return hit[1]


def _strides(t: Optional[torch.Tensor], n: int, shared_dim: Optional[int] = None):
    if t is None:
        return [0] * n
    s = list(t.stride())
    if shared_dim is not None and t.shape[shared_dim] == 1:
        s[shared_dim] = 0
    return s


def _token_major(shape, device, dtype, zero=False):
    """A (..., C, L) tensor stored as (..., L, C), returned as the (..., C, L) view."""
    make = torch.zeros if zero else torch.empty
    return make(*shape[:-2], shape[-1], shape[-2], device=device, dtype=dtype).transpose(-1, -2)


def _b_shared(G: int, dim: int, block_d: int) -> bool:
    """Whether every channel block lies in one group of B / C."""
    return G == 1 or (dim // G) % block_d == 0


def _grid(batch, K, dim, cfg):
    return (triton_config.grid_size(batch, K, dim, cfg),)


def _launch_fwd(u, delta, A, Bm, Cm, Dv, z, bias, index, softplus, merge, training, want_last):
    batch, Ku, dim, L = u.shape
    K, _, N = A.shape
    G = Bm.shape[2]
    dev = u.device
    dummy = torch.empty(1, device=dev, dtype=_F32)
    cfg = triton_config.choose("train" if training else "fwd", dim, L, N, u.element_size())
    y_atomic = merge == "sum" and K > 1
    if merge == "sum":
        y = _token_major((batch, dim, L), dev, _F32 if y_atomic else u.dtype, zero=y_atomic)
        y_strides = [y.stride(0), 0, y.stride(1), y.stride(2)]
    else:
        y = _token_major((batch, K, dim, L), dev, u.dtype)
        y_strides = list(y.stride())
    n_tiles = -(-L // cfg.block_t)
    states = torch.empty(batch, K, max(n_tiles - 1, 1), N, dim, device=dev, dtype=_F32) if training else dummy
    last = torch.empty(batch, K, dim, N, device=dev, dtype=_F32) if want_last else dummy
    ypre = _token_major((batch, K, dim, L), dev, u.dtype) if (training and z is not None) else dummy
    st_strides = [states.stride(0), states.stride(1), states.stride(2), states.stride(3)] if training else [0] * 4
    selective_scan_fwd_kernel[_grid(batch, K, dim, cfg)](
        u, delta, A, Bm, Cm, Dv if Dv is not None else dummy, z if z is not None else dummy,
        bias if bias is not None else dummy, index if index is not None else dummy,
        y, ypre, states, last,
        *_strides(u, 4, 1), *delta.stride(), *A.stride(), *Bm.stride(), *Cm.stride(),
        *_strides(Dv, 2), *_strides(z, 4, 1), *_strides(bias, 2),
        index.stride(0) if index is not None else 0,
        *y_strides, *(_strides(ypre, 4) if ypre is not dummy else [0] * 4), *st_strides,
        *(_strides(last, 4) if want_last else [0] * 4),
        K, dim, L, N, dim // G,
        N_P=triton_config.next_pow2(N), HAS_D=Dv is not None, HAS_Z=z is not None,
        HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus), HAS_INDEX=index is not None,
        Y_ATOMIC=y_atomic, SAVE_STATES=training, SAVE_LAST=want_last,
        B_SHARED=_b_shared(G, dim, cfg.block_d),
        BLOCK_T=cfg.block_t, BLOCK_D=cfg.block_d, FAST=not triton_config.interpreter_active(),
        num_warps=cfg.num_warps)
    if y_atomic and u.dtype != _F32:
        y = y.to(u.dtype)
    return (y, states if training else None, last if want_last else None,
            ypre if ypre is not dummy else None, cfg.block_t)


def _launch_bwd(gy, glast, u, delta, A, Bm, Cm, Dv, z, bias, index, states, ypre, block_t, softplus, merge):
    batch, Ku, dim, L = u.shape
    K, _, N = A.shape
    G = Bm.shape[2]
    dev = u.device
    dummy = torch.empty(1, device=dev, dtype=_F32)
    cfg = triton_config.choose("bwd", dim, L, N, u.element_size(), block_t=block_t)

    gu_atomic = Ku == 1 and K > 1
    gu = _token_major(u.shape, dev, _F32, zero=True) if gu_atomic else _token_major(u.shape, dev, u.dtype)
    gdelta = _token_major(delta.shape, dev, delta.dtype)
    gB = torch.zeros(Bm.shape, device=dev, dtype=_F32)
    gC = torch.zeros(Cm.shape, device=dev, dtype=_F32)
    gz_atomic = z is not None and z.shape[1] == 1 and K > 1
    if z is None:
        gz = dummy
    else:
        gz = _token_major(z.shape, dev, _F32, zero=True) if gz_atomic else _token_major(z.shape, dev, z.dtype)
    gA = torch.empty(batch, K, dim, N, device=dev, dtype=_F32)
    gD = torch.empty(batch, K, dim, device=dev, dtype=_F32) if Dv is not None else dummy
    gbias = torch.empty(batch, K, dim, device=dev, dtype=_F32) if bias is not None else dummy
    gy_strides = [gy.stride(0), 0, gy.stride(1), gy.stride(2)] if merge == "sum" else list(gy.stride())

    selective_scan_bwd_kernel[_grid(batch, K, dim, cfg)](
        u, delta, A, Bm, Cm, Dv if Dv is not None else dummy, z if z is not None else dummy,
        bias if bias is not None else dummy, index if index is not None else dummy, states,
        ypre if ypre is not None else dummy, gy, glast if glast is not None else dummy,
        gu, gdelta, gB, gC, gz, gA, gD, gbias,
        *_strides(u, 4, 1), *delta.stride(), *A.stride(), *Bm.stride(), *Cm.stride(),
        *_strides(Dv, 2), *_strides(z, 4, 1), *_strides(bias, 2),
        index.stride(0) if index is not None else 0,
        states.stride(0), states.stride(1), states.stride(2), states.stride(3),
        *_strides(ypre, 4), *gy_strides, *_strides(glast, 4),
        *_strides(gu, 4, 1), *gdelta.stride(), *gB.stride(), *gC.stride(),
        *(_strides(gz, 4, 1) if z is not None else [0] * 4),
        K, dim, L, N, dim // G,
        N_P=triton_config.next_pow2(N), HAS_D=Dv is not None, HAS_Z=z is not None,
        HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus), HAS_INDEX=index is not None,
        HAS_GLAST=glast is not None, GU_ATOMIC=gu_atomic, GZ_ATOMIC=gz_atomic,
        B_SHARED=_b_shared(G, dim, cfg.block_d),
        BLOCK_T=cfg.block_t, BLOCK_D=cfg.block_d, FAST=not triton_config.interpreter_active(),
        num_warps=cfg.num_warps)

    return {
        "u": gu.to(u.dtype),
        "delta": gdelta,
        "A": gA.sum(0).to(A.dtype),
        "B": gB.to(Bm.dtype),
        "C": gC.to(Cm.dtype),
        "D": gD.sum(0).to(Dv.dtype) if Dv is not None else None,
        "z": gz.to(z.dtype) if z is not None else None,
        "delta_bias": gbias.sum(0).to(bias.dtype) if bias is not None else None,
    }


_GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


class _SelectiveScanTritonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, index, softplus, merge, want_last, training):
        y, states, last, ypre, block_t = _launch_fwd(u, delta, A, Bm, Cm, Dv, z, bias, index, softplus,
                                                     merge, training, want_last)
        if training:
            ctx.save_for_backward(u, delta, A, Bm, Cm, Dv, z, bias, index, states, ypre)
            ctx.block_t, ctx.softplus, ctx.merge = block_t, softplus, merge
        return (y, last) if want_last else y

    @staticmethod
    def backward(ctx, gy, *rest):
        u, delta, A, Bm, Cm, Dv, z, bias, index, states, ypre = ctx.saved_tensors
        glast = rest[0] if rest else None
        grads = _launch_bwd(gy, glast, u, delta, A, Bm, Cm, Dv, z, bias, index, states, ypre,
                            ctx.block_t, ctx.softplus, ctx.merge)
        need = ctx.needs_input_grad
        out = [grads[name] if need[i] else None for i, name in enumerate(_GRAD_NAMES)]
        return (*out, None, None, None, None, None)


def selective_scan_triton(args: ScanArgs, return_last_state: bool = False):
    """Fused Triton selective scan on the canonical layout. Returns (y, last_state or None):
    y is (B, D, L) for merge="sum", (B, K, D, L) for "none", in u's dtype; last_state is
    (B, K, D, N) float32."""
    _check_dtypes(args)
    if args.u.shape[-1] == 0 or args.u.shape[0] == 0:
        raise ValueError("selective_scan (triton): empty batch or sequence")
    if args.A.shape[-1] == 0:
        raise ValueError("selective_scan (triton): `A` must have a state size N >= 1, got shape "
                         f"{tuple(args.A.shape)}")
    index = int32_index(args.index) if args.index is not None else None
    out = _SelectiveScanTritonFn.apply(args.u, args.delta, args.A, args.B, args.C, args.D,
                                       args.z, args.delta_bias, index, args.delta_softplus,
                                       args.merge, bool(return_last_state), args.backward_can_follow())
    if return_last_state:
        return out[0], out[1]
    return out, None
