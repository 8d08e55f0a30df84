"""The selective scan as a plain sequential loop over time: the specification.

Works on the canonical layout built by ``vision_ssm.ops.selective_scan`` (see ``canonical.py``)
in whatever dtype it is given (float64 included); autograd supplies the gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .canonical import ScanArgs


def selective_scan_ref(args: ScanArgs, return_last_state: bool = False):
    """Sequential S6 scan.  Returns (y, last_state); y is (B, D, L) when merged, else (B, K, D, L)."""
    u, delta, A, Bm, Cm = args.u, args.delta, args.A, args.B, args.C
    batch, _, dim, length = u.shape
    K, _, N = A.shape
    G = Bm.shape[2]
    compute_dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    acc = lambda t: None if t is None else t.to(compute_dtype)  # noqa: E731
    A = acc(A)
    Dskip, bias = acc(args.D), acc(args.delta_bias)
    steps = torch.arange(length, device=u.device)
    order = args.index if args.index is not None else steps.expand(K, length)

    outs = []
    states = []
    for k in range(K):
        pos = order[k]
        uk = acc(u[:, k % u.shape[1]])[..., pos]  # (B, D, L) in scan order
        dk = acc(delta[:, k])[..., pos]
        if bias is not None:
            dk = dk + bias[k][:, None]
        if args.delta_softplus:
            dk = F.softplus(dk)
        Bk = acc(Bm[:, k])[..., pos].repeat_interleave(dim // G, dim=1)  # (B, D, N, L)
        Ck = acc(Cm[:, k])[..., pos].repeat_interleave(dim // G, dim=1)
        h = u.new_zeros(batch, dim, N, dtype=compute_dtype)
        ys = []
        for t in range(length):
            dt = dk[:, :, t, None]  # (B, D, 1)
            h = torch.exp(dt * A[k]) * h + dt * Bk[..., t] * uk[:, :, t, None]
            ys.append((h * Ck[..., t]).sum(-1))
        # (B, D, L) in scan order; with L = 0 an empty slice of u keeps y in the graph
        y = torch.stack(ys, dim=-1) if ys else uk[..., :0]
        if Dskip is not None:
            y = y + Dskip[k][:, None] * uk
        if args.z is not None:
            zk = acc(args.z[:, k % args.z.shape[1]])[..., pos]
            y = y * F.silu(zk)
        y_image = torch.zeros_like(y).index_copy(-1, pos, y)  # back to image positions
        outs.append(y_image)
        states.append(h)
    y = torch.stack(outs, dim=1)  # (B, K, D, L)
    if args.merge == "sum":
        y = y.sum(1)
    last_state = torch.stack(states, dim=1) if return_last_state else None
    return y.to(u.dtype), last_state
