"""The selective-scan operator (Mamba's S6) shared by every backbone and scan strategy.

Four implementations behind one dispatch:
    ``ref``     the sequential loop over time (the specification, float64-capable);
    ``torch``   a chunked pure-PyTorch scan with a hand-written backward;
    ``cpu``     a fused C++ kernel, forward and backward, built at first use (the CPU default);
    ``triton``  fused Triton kernels, forward and backward (the CUDA default).
"""
from __future__ import annotations

import os

import torch

from .canonical import ScanArgs, canonicalize

BACKENDS = ("ref", "torch", "cpu", "triton")


def triton_available(device: torch.device) -> bool:
    """True when the Triton kernels can run on ``device`` (CUDA, or the CPU interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """The backend that runs: ``auto`` picks Triton on CUDA and the fused kernel on the CPU
    (the torch path for float64, which the fused kernels do not compute in)."""
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"selective_scan: `backend` must be one of {('auto',) + BACKENDS}, got {backend!r}")
    if backend == "auto":
        if device.type == "cuda":
            return "triton" if triton_available(device) else "torch"
        from .cpu_scan import available
        fused_ok = device.type == "cpu" and dtype != torch.float64
        return "cpu" if fused_ok and available() else "torch"
    if backend == "cpu" and device.type != "cpu":
        raise RuntimeError(f"selective_scan: backend='cpu' needs CPU tensors (tensors are on {device})")
    if backend == "triton" and not triton_available(device):
        raise RuntimeError(
            f"selective_scan: backend='triton' needs a CUDA device or TRITON_INTERPRET=1 on the CPU "
            f"(tensors are on {device})")
    return backend


def _run(args: ScanArgs, return_last_state: bool, backend: str):
    if backend == "ref" or args.delta.numel() == 0:  # empty (e.g. a batch of 0): the loop shapes the results
        from .reference import selective_scan_ref
        return selective_scan_ref(args, return_last_state)
    if backend == "torch":
        from .chunked import selective_scan_chunked
        return selective_scan_chunked(args, return_last_state)
    if backend == "cpu":
        from .cpu_scan import selective_scan_cpu
        return selective_scan_cpu(args, return_last_state)
    from .triton_scan import selective_scan_triton
    return selective_scan_triton(args, return_last_state)


@torch.compiler.disable  # one opaque call for torch.compile: checks and kernels stay out of the graph
def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend="auto", *, index=None, merge="sum"):
    """Selective scan: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,  y_t = C_t h_t + D u_t,  y *= silu(z).

    Plain mode (``A`` is (D, N)), as in mamba_ssm:
        u, delta, z (B, D, L); B, C (B, N, L) or grouped (B, G, N, L); D, delta_bias (D,).
        Returns y (B, D, L) [and the last state (B, D, N) in float32].
    Direction mode (``A`` is (K, D, N)): K scans with their own parameters over shared tokens.
        u, z (B, D, L) shared or (B, K, D, L); delta (B, K, D, L); B, C (B, K, N, L) or
        (B, K, G, N, L); D, delta_bias (K, D); ``index`` (K, L) with one permutation of the
        L token positions per direction (None: positions in order).  Every per-token tensor
        stays in image order: step t of direction k reads position index[k, t] and its output
        is written back there, so no reordered copy is ever made.  ``merge="sum"`` adds the K
        outputs (B, D, L); ``merge="none"`` returns them per direction (B, K, D, L).  The last
        state is (B, K, D, N).
    Strides are free: a (B, C, H, W) map passes as ``x.flatten(2)``, a (B, H, W, C) map as
    ``x.flatten(1, 2).transpose(1, 2)``.  The torch path reads tensors whose channels are packed
    per token (a channel-last map, a Linear's (B, L, C) output passed as ``.transpose(-1, -2)``)
    in place and lays channel-first ones out once.  State and accumulation are float32 (float64 for
    float64 inputs with ``backend="ref"`` or ``"torch"``); y has u's dtype.
    """
    args, plain = canonicalize(u, delta, A, B, C, D, z, delta_bias, delta_softplus, index, merge)
    y, last_state = _run(args, return_last_state, resolve_backend(backend, args.u.device, args.u.dtype))
    if plain:
        y = y if y.dim() == 3 else y.squeeze(1)
        last_state = None if last_state is None else last_state.squeeze(1)
    return (y, last_state) if return_last_state else y


__all__ = ["selective_scan", "BACKENDS", "ScanArgs", "resolve_backend", "triton_available"]
