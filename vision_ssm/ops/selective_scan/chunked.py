"""The fast pure-PyTorch selective scan (the CPU default).

The sequence is cut into blocks of ``block_len`` steps.  Inside a block the linear recurrence
h_t = a_t h_{t-1} + x_t is solved step by step when a step is wide (batch·directions·D·N large
enough that one op per step costs little), otherwise by a two-level scan: sub-chunks of
T ~ sqrt(block) steps scanned side by side (a Python loop over T, not over every step), then the
sub-chunk carries chained.  Only products of decays in (0, 1] appear, so nothing overflows at any length.

Per-token inputs are read channel-last, (B, Kx, L, D): a token's D channels are one contiguous
row, so each block gathers its K·B·S rows through the index map straight from a channel-last
input (a (B, H, W, C) map, or the output of a Linear) without any copy; channel-first inputs are
laid out once.  Outputs and gradients are added back row by row and returned as channel-last
views.  Only the block-boundary states (and dt) are kept: the backward recomputes each block's
states from them, walking the blocks in reverse.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .canonical import ScanArgs

DEFAULT_BLOCK_LEN = 256  # the longest block
BLOCK_ELEMENTS = 1 << 20  # a block's temporaries hold about this many values each (4 MB in fp32)
MIN_BLOCK_LEN = 4


# Steps at least this wide are scanned one by one (each op big enough to amortise its dispatch,
# and one pass instead of three); narrower ones by sub-chunks side by side.
SEQUENTIAL_MIN_WIDTH = 6144


def _sequential(a: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, reverse: bool) -> torch.Tensor:
    states = torch.empty_like(x)
    last = a.shape[0] - 1
    if not reverse:
        torch.addcmul(x[0], a[0], h0, out=states[0])
        for t in range(1, last + 1):
            torch.addcmul(x[t], a[t], states[t - 1], out=states[t])
    else:
        torch.add(x[last], h0, out=states[last])
        for t in range(last - 1, -1, -1):
            torch.addcmul(x[t], a[t + 1], states[t + 1], out=states[t])
    return states


def _two_level(a: torch.Tensor, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Forward recurrence by sub-chunks of ``sub`` steps (plus a shorter tail) scanned from zero
    side by side with the running products of a; each sub-chunk's incoming state is then added,
    scaled by those products."""
    steps, rest = int(a.shape[0]), a.shape[1:]  # int(): sizes are tensors under jit tracing
    sub = max(1, math.isqrt(steps - 1) + 1)
    full, tail = divmod(steps, sub)
    states, decay = torch.empty_like(x), torch.empty_like(a)
    parts = [tuple(t[:full * sub].view(full, sub, *rest) for t in (a, x, states, decay))]
    if tail:  # the shorter last sub-chunk, as a batch of one
        parts.append(tuple(t[full * sub:].unsqueeze(0) for t in (a, x, states, decay)))
    for pa, px, ps, pd in parts:
        ps[:, 0], pd[:, 0] = px[:, 0], pa[:, 0]
        for t in range(1, pa.shape[1]):
            torch.addcmul(px[:, t], pa[:, t], ps[:, t - 1], out=ps[:, t])
            torch.mul(pd[:, t - 1], pa[:, t], out=pd[:, t])
    ends = [(ps[c, -1], pd[c, -1]) for _, _, ps, pd in parts for c in range(ps.shape[0])]
    carries = torch.empty((len(ends),) + h0.shape, dtype=x.dtype, device=x.device)
    carry = h0
    for c, (local_end, decay_end) in enumerate(ends):
        carries[c] = carry
        carry = torch.addcmul(local_end, decay_end, carry)
    for i, (_, _, ps, pd) in enumerate(parts):
        incoming = carries[:full] if i == 0 else carries[full:]
        ps.addcmul_(pd, incoming.unsqueeze(1))
    return states


def linear_scan(a: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """All states of a linear recurrence along dim 0 (time).

    Forward: h_t = a_t h_{t-1} + x_t from h_{-1} = h0.  Reverse (the adjoint): h_t = a_{t+1} h_{t+1} + x_t,
    where h0 stands for the already scaled a_S h_S that enters the last step.
    """
    if int(a[0].numel()) >= SEQUENTIAL_MIN_WIDTH:
        return _sequential(a, x, h0, reverse)
    if not reverse:
        return _two_level(a, x, h0)
    shifted = torch.cat([torch.ones_like(a[:1]), a[1:].flip(0)])
    return _two_level(shifted, x.flip(0), h0).flip(0)


def _row_strides(t: torch.Tensor):
    """Strides of t's (B, Kx, L) dims counted in rows of its trailing channel dims, or None when
    those channels are not one packed row (size-1 dims count as stride 0)."""
    row = 1
    for size, stride in zip(reversed(t.shape[3:]), reversed(t.stride()[3:])):
        if size != 1 and stride != row:
            return None
        row *= size
    strides = []
    for size, stride in zip(t.shape[:3], t.stride()[:3]):
        stride = 0 if size == 1 else stride
        if stride % row:
            return None
        strides.append(stride // row)
    return tuple(strides)


def _channel_last(t: torch.Tensor, dtype) -> torch.Tensor:
    """(B, Kx, C..., L) -> (B, Kx, L, C...) in ``dtype`` with packed channel rows: a view of t when
    its channels already are (a channel-last map, a Linear's output), else a contiguous copy."""
    t = t.movedim(-1, 2)
    if t.dtype != dtype:
        return t.to(dtype, memory_format=torch.contiguous_format)
    return t if _row_strides(t) is not None else t.contiguous()


def _from_channel_last(t: torch.Tensor) -> torch.Tensor:
    """(B, Kx, L, C...) -> (B, Kx, C..., L) view."""
    return t.movedim(2, -1)


class _Rows:
    """The rows of a block's steps in (B, Kx, L, C...) tensors with packed channel rows, in (S, K, B) order."""

    def __init__(self, pos: torch.Tensor, batch: int):  # pos (K, S)
        K, S = int(pos.shape[0]), int(pos.shape[1])  # int(): sizes are tensors under jit tracing
        self.shape = (S, K, int(batch))
        self._steps = pos.t().unsqueeze(-1)  # (S, K, 1)
        self._batch = torch.arange(int(batch), device=pos.device)
        self._direction = torch.arange(K, device=pos.device).unsqueeze(-1)  # (K, 1)
        self._ids = {}

    def _flat(self, t: torch.Tensor):
        """(rows of t as a (n, C...) view of its storage, this block's row ids in t)."""
        strides = _row_strides(t)
        if strides not in self._ids:
            sb, sk, sl = strides
            self._ids[strides] = (self._steps * sl + self._batch * sb + self._direction * sk).reshape(-1)
        span = sum((n - 1) * s for n, s in zip(t.shape[:3], strides)) + 1
        row = math.prod(t.shape[3:])
        return t.as_strided((span, *t.shape[3:]), (row, *t.stride()[3:])), self._ids[strides]

    def read(self, t: torch.Tensor) -> torch.Tensor:
        """(B, Kx, L, ...) -> (S, K, B, ...) for this block's steps (Kx = 1: the same rows for every k)."""
        flat, ids = self._flat(t)
        return flat.index_select(0, ids).view(*self.shape, *t.shape[3:])

    def put(self, t: torch.Tensor, values: torch.Tensor):
        """Writes values (S, K, B, ...) at the block's rows of (B, K, L, ...)."""
        flat, ids = self._flat(t)
        flat.index_copy_(0, ids, values.reshape(-1, *values.shape[3:]))

    def add(self, t: torch.Tensor, values: torch.Tensor, alpha: float = 1):
        """Adds alpha·values (S, K, B, ...) at the block's rows of (B, Kx, L, ...) (summing directions if Kx=1)."""
        flat, ids = self._flat(t)
        flat.index_add_(0, ids, values.reshape(-1, *values.shape[3:]), alpha=alpha)


class _Prepared:
    """Inputs in compute layout: per-token tensors channel-last, parameters broadcastable."""

    def __init__(self, args: ScanArgs, dt: torch.Tensor | None = None):
        batch, K, dim, length, N, groups = args.shape
        self.batch, self.d_state = int(batch), int(N)
        self.cdt = torch.float64 if args.u.dtype == torch.float64 else torch.float32
        self.split = (groups, dim // groups)
        cl = lambda t: None if t is None else _channel_last(t, self.cdt)  # noqa: E731
        self.u, self.z = cl(args.u), cl(args.z)  # (B, Kx, L, D)
        self.B, self.C = cl(args.B), cl(args.C)  # (B, K, L, G, N)
        self.dt = self._channel_last_dt(args) if dt is None else dt  # (B, K, L, D)
        param = lambda t, last: None if t is None else t.to(self.cdt).view(K, 1, *self.split, last)  # noqa: E731
        self.A = param(args.A, N)  # (K, 1, G, Dg, N)
        self.D = param(args.D, 1)
        self.has_bias = args.delta_bias is not None
        self.softplus = args.delta_softplus
        index = args.index if args.index is not None else torch.arange(length, device=args.u.device).expand(K, length)
        self.index = index
        self.state_shape = (K, batch, groups, dim // groups, N)

    def _channel_last_dt(self, args: ScanArgs) -> torch.Tensor:
        """dt = softplus(delta + bias) (or without either), channel-last; the bias is added while laying out."""
        if args.delta_bias is None:
            pre = _channel_last(args.delta, self.cdt)
        else:
            delta = args.delta.movedim(-1, 2)  # (B, K, L, D) view
            pre = torch.empty(delta.shape, dtype=self.cdt, device=delta.device)
            torch.add(delta, args.delta_bias.to(self.cdt).unsqueeze(1), out=pre)
        return F.softplus(pre) if args.delta_softplus else pre

    def rows(self, start: int, stop: int) -> _Rows:
        return _Rows(self.index[:, start:stop], self.batch)

    def block(self, rows: _Rows):
        """(u, dt, B, C, z) of a block, shaped (S, K, B, G, Dg, 1|N)."""
        chan = lambda t: None if t is None else rows.read(t).unflatten(-1, self.split).unsqueeze(-1)  # noqa: E731
        u, dt, z = chan(self.u), chan(self.dt), chan(self.z)
        Bm, Cm = rows.read(self.B).unsqueeze(-2), rows.read(self.C).unsqueeze(-2)
        return u, dt, Bm, Cm, z


def _decay(dt: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """a = exp(dt A), (S, K, B, G, Dg, 1) x (K, 1, G, Dg, N), in one allocation."""
    return torch.mul(dt, A).exp_()


def _sum_over_state(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_n x[..., d, n] y[..., 0, n], keeping the last dim: (..., Dg, N) x (..., 1, N) -> (..., Dg, 1)."""
    if x.shape[-1] == 1:
        return x * y
    return torch.matmul(x, y.transpose(-1, -2))


def _sum_over_channels(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_d x[..., d, 0] y[..., d, n]: (..., Dg, 1) x (..., Dg, N) -> (..., N), without the product tensor."""
    return torch.matmul(x.transpose(-1, -2), y).squeeze(-2)


def _over_steps_and_batch(t: torch.Tensor) -> torch.Tensor:
    """(S, K, B, ...) -> (K, 1, ...), the shape of per-direction parameters."""
    return t.sum(0).sum(1, keepdim=True)


def _blocks(length: int, block_len: int):
    return [(s, min(s + block_len, length)) for s in range(0, length, block_len)]


def chunked_forward(args: ScanArgs, block_len: int = DEFAULT_BLOCK_LEN, keep_states: bool = True):
    """Returns (y, last_state (B, K, D, N), block_states (nblocks, B, K, D, N), dt); y like the reference,
    dt = softplus(delta + bias) channel-last (kept for the backward); block_states is empty
    unless ``keep_states``."""
    batch, K, dim, length, N, groups = args.shape
    p = _Prepared(args)
    # merge="none": every row is written exactly once (index rows are permutations), no zero fill
    new_y = torch.zeros if args.merge == "sum" else torch.empty
    y = new_y((batch, 1 if args.merge == "sum" else K, length, dim), dtype=p.cdt, device=args.u.device)
    h = torch.zeros(p.state_shape, dtype=p.cdt, device=args.u.device)
    block_states = []
    for start, stop in _blocks(length, block_len):
        if keep_states:
            block_states.append(h)
        rows = p.rows(start, stop)
        u, dt, Bm, Cm, z = p.block(rows)
        states = linear_scan(_decay(dt, p.A), dt * u * Bm, h)
        h = states[-1]
        out = _sum_over_state(states, Cm)
        if p.D is not None:
            out = out.addcmul_(p.D, u)
        if z is not None:
            out = out.mul_(F.silu(z))
        if args.merge == "sum":
            rows.add(y, out.flatten(-3))
        else:
            rows.put(y, out.flatten(-3))
    y = _from_channel_last(y)
    y = y[:, 0] if args.merge == "sum" else y
    to_bkdn = lambda s: s.flatten(-3, -2).transpose(-3, -4)  # (.., K, B, D, N) -> (.., B, K, D, N)  # noqa: E731
    block_states = to_bkdn(torch.stack(block_states)) if keep_states else h.new_empty(0)
    return y, to_bkdn(h), block_states, p.dt


def chunked_backward(args: ScanArgs, block_states, dt, grad_y, grad_last, block_len: int = DEFAULT_BLOCK_LEN):
    """Gradients of (u, delta, A, B, C, D, z, delta_bias), in the canonical shapes and input dtypes."""
    batch, K, dim, length, N, groups = args.shape
    p = _Prepared(args, dt)
    grad_y = _channel_last(grad_y.unsqueeze(1) if args.merge == "sum" else grad_y, p.cdt)
    zeros = lambda t: None if t is None else torch.zeros(t.shape, dtype=t.dtype, device=t.device)  # noqa: E731
    g_u, g_delta, g_z, g_B, g_C = zeros(p.u), zeros(p.dt), zeros(p.z), zeros(p.B), zeros(p.C)
    g_A, g_D = zeros(p.A), zeros(p.D)
    g_bias = torch.zeros_like(p.A[..., :1]) if p.has_bias else None
    from_bkdn = lambda s: s.transpose(-3, -4).unflatten(-2, p.split)  # noqa: E731
    block_states = from_bkdn(block_states.to(p.cdt))
    lam_carry = torch.zeros(p.state_shape, dtype=p.cdt, device=args.u.device)
    if grad_last is not None:
        lam_carry += from_bkdn(grad_last.to(p.cdt))
    # softplus'(pre) = sigmoid(pre) = -expm1(-dt): the delta gradients are accumulated with that sign
    sign = -1 if p.softplus else 1
    ranges = _blocks(length, block_len)
    for i in reversed(range(len(ranges))):
        rows = p.rows(*ranges[i])
        u, dt, Bm, Cm, z = p.block(rows)
        a = _decay(dt, p.A)
        dtu = dt * u
        h0 = block_states[i]
        states = linear_scan(a, dtu * Bm, h0)
        gy = rows.read(grad_y).unflatten(-1, p.split).unsqueeze(-1)  # (S, K, B, G, Dg, 1)
        if z is not None:
            y = _sum_over_state(states, Cm)
            if p.D is not None:
                y = y.addcmul_(p.D, u)
            sig = torch.sigmoid(z)
            rows.add(g_z, (gy * y * sig * (1 + z * (1 - sig))).flatten(-3))
            gy = gy * z * sig
        if p.D is not None:
            g_D += _over_steps_and_batch(gy * u)
        rows.add(g_C, _sum_over_channels(gy, states))
        # adjoint lam_t = C_t gy_t + a_{t+1} lam_{t+1}, scanned backwards in time
        lam = linear_scan(a, gy * Cm, lam_carry, reverse=True)
        lam_B = _sum_over_state(lam, Bm)
        rows.add(g_B, _sum_over_channels(dtu, lam))
        g_u_blk = lam_B * dt
        if p.D is not None:
            g_u_blk.addcmul_(gy, p.D)
        rows.add(g_u, g_u_blk.flatten(-3))
        # dL/d(a_t) h_{t-1} (in lam's storage): lam_t a_t h_{t-1}
        g_dA = lam.mul_(a)
        lam_carry = g_dA[0].clone()
        g_dA[1:].mul_(states[:-1])
        g_dA[0].mul_(h0)
        g_A += _over_steps_and_batch(g_dA * dt)
        g_dt = lam_B.mul_(u)
        if p.d_state == 1:
            g_dt.addcmul_(g_dA, p.A)
        else:
            g_dt += (g_dA * p.A).sum(-1, keepdim=True)
        if p.softplus:
            g_dt.mul_(torch.neg(dt).expm1_())
        if g_bias is not None:
            g_bias.add_(_over_steps_and_batch(g_dt), alpha=sign)
        rows.add(g_delta, g_dt.flatten(-3), alpha=sign)
    back = lambda g: None if g is None else _from_channel_last(g)  # noqa: E731
    param = lambda g, *shape: None if g is None else g.view(*shape)  # noqa: E731
    grads = [back(g_u), back(g_delta), param(g_A, K, dim, N), back(g_B), back(g_C),
             param(g_D, K, dim), back(g_z), param(g_bias, K, dim)]
    return [None if g is None else g.to(t.dtype) for g, t in zip(grads, args.tensors())]


class _ChunkedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, index, softplus, merge, block_len):
        args = ScanArgs(u, delta, A, B, C, D, z, delta_bias, softplus, index, merge)
        with torch.autocast(u.device.type, enabled=False):  # fp32 state and sums whatever the autocast
            y, last, block_states, dt = chunked_forward(args, block_len, keep_states=any(ctx.needs_input_grad))
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, index, block_states, dt)
        ctx.options = (softplus, merge, block_len)
        ctx.mark_non_differentiable(block_states)
        return y.to(u.dtype), last, block_states

    @staticmethod
    def backward(ctx, grad_y, grad_last, _):
        *tensors, index, block_states, dt = ctx.saved_tensors
        softplus, merge, block_len = ctx.options
        args = ScanArgs(*tensors, softplus, index, merge)
        with torch.autocast(args.u.device.type, enabled=False):
            grads = chunked_backward(args, block_states, dt, grad_y, grad_last, block_len)
        return (*grads, None, None, None, None)


def auto_block_len(args: ScanArgs) -> int:
    """Steps per block: as many as keep a block's (steps, K, B, D, N) temporaries near BLOCK_ELEMENTS
    values (cache-sized, and reused by the allocator instead of fresh pages), within the bounds."""
    batch, K, dim, _, N, _ = args.shape
    width = int(batch) * int(K) * int(dim) * int(N)
    return min(DEFAULT_BLOCK_LEN, max(MIN_BLOCK_LEN, BLOCK_ELEMENTS // width))


def selective_scan_chunked(args: ScanArgs, return_last_state: bool = False, block_len: int | None = None):
    block_len = block_len or auto_block_len(args)
    y, last, _ = _ChunkedScan.apply(*args.tensors(), args.index, args.delta_softplus, args.merge, block_len)
    return y, (last if return_last_state else None)
