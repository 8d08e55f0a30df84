"""The fast pure-PyTorch selective scan (the CPU default).

The sequence is cut into blocks of ``block_len`` steps.  Inside a block the linear recurrence
h_t = a_t h_{t-1} + x_t is solved by a two-level scan: sub-chunks of T ~ sqrt(block) steps scanned
side by side (a Python loop over T, never over every step), then the sub-chunk carries chained.
Only products of decays in (0, 1] appear, so nothing overflows at any length.

Per-token inputs are read channel-last, (B, Kx, L, D): a token's D channels are one contiguous
row, so each block gathers its K·B·S rows through the index map straight from a channel-last
input (a (B, H, W, C) map, or the output of a Linear) without any copy; channel-first inputs are
laid out once.  Outputs and gradients are added back row by row and returned as channel-last
views.

The forward computes dt = softplus(delta + bias) block by block and keeps it, with softplus' slope,
in scan order for the backward.  With N = 1 (VMamba) a step's state is as small as its dt, so every
step's decay and state are kept too; otherwise only the state entering each block, and the backward
recomputes a block's states from it, walking the blocks in reverse.  When the directions' outputs are
summed ungated, the skip term D u and its gradients are taken once in image order.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .canonical import ScanArgs, autocast_off

DEFAULT_BLOCK_LEN = 256  # the longest block
BLOCK_ELEMENTS = 1 << 20  # a block's temporaries hold about this many values each (4 MB in fp32)
MIN_BLOCK_LEN = 4
LOG2_E = math.log2(math.e)


def _two_level(d: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, reverse: bool = False, out=None) -> torch.Tensor:
    """States of h_t = d_t h_{t-1} + x_t from h_{-1} = h0 (reverse: h_t = d_t h_{t+1} + x_t from h_S = h0).

    Sub-chunks of ~sqrt(steps) steps are scanned from zero side by side, with the running products
    of d (a Python loop over one sub-chunk's steps); their incoming states are then chained (a loop
    over the sub-chunks) and added, scaled by those products."""
    steps, rest = int(d.shape[0]), d.shape[1:]  # int(): sizes are tensors under jit tracing
    sub = max(1, math.isqrt(steps - 1) + 1)
    full, tail = divmod(steps, sub)
    states, decay = torch.empty_like(x) if out is None else out, torch.empty_like(d)
    tensors = (d, x, states, decay)
    parts = [tuple(t[:full * sub].view(full, sub, *rest) for t in tensors)]
    if tail:  # the shorter last sub-chunk, as a batch of one
        parts.append(tuple(t[full * sub:].unsqueeze(0) for t in tensors))
    ends = []  # per sub-chunk: (its state from zero, its decay product) where it hands over
    for pd, px, ps, pp in parts:
        order = range(pd.shape[1] - 1, -1, -1) if reverse else range(pd.shape[1])
        h, p = px[:, order[0]], pd[:, order[0]]  # step 0 from zero: x and d themselves
        for t in order[1:]:
            h = torch.addcmul(px[:, t], pd[:, t], h, out=ps[:, t])
            p = torch.mul(p, pd[:, t], out=pp[:, t])
        ends += [(h[c], p[c]) for c in range(h.shape[0])]
    carries = torch.empty((len(ends),) + h0.shape, dtype=x.dtype, device=x.device)
    chain = list(reversed(range(len(ends)))) if reverse else list(range(len(ends)))
    carries[chain[0]] = h0
    for c, following in zip(chain, chain[1:]):  # the state entering each sub-chunk
        torch.addcmul(ends[c][0], ends[c][1], carries[c], out=carries[following])
    for i, (pd, px, ps, pp) in enumerate(parts):
        incoming = (carries[:full] if i == 0 else carries[full:]).unsqueeze(1)
        first = pd.shape[1] - 1 if reverse else 0
        rest_steps = slice(0, first) if reverse else slice(1, None)
        torch.addcmul(px[:, first], pd[:, first], incoming[:, 0], out=ps[:, first])
        ps[:, rest_steps].addcmul_(pp[:, rest_steps], incoming)
    return states


def linear_scan(a: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, reverse: bool = False, out=None) -> torch.Tensor:
    """All states of a linear recurrence along dim 0 (time), written into ``out`` when given.

    Forward: h_t = a_t h_{t-1} + x_t from h_{-1} = h0.  Reverse (the adjoint): h_t = a_{t+1} h_{t+1} + x_t,
    where h0 stands for the already scaled a_S h_S that enters the last step.
    """
    if not reverse:
        return _two_level(a, x, h0, out=out)
    states = torch.empty_like(x) if out is None else out
    torch.add(x[-1], h0, out=states[-1])
    if x.shape[0] > 1:
        _two_level(a[1:], x[:-1], states[-1], reverse=True, out=states[:-1])
    return states


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

    def read(self, t: torch.Tensor, out=None) -> torch.Tensor:
        """(B, Kx, L, ...) -> (S, K, B, ...) for this block's steps (Kx = 1: the same rows for every k),
        into ``out`` (contiguous, (S, K, B, ...)) when given."""
        flat, ids = self._flat(t)
        if out is not None:
            torch.index_select(flat, 0, ids, out=out.view(-1, *t.shape[3:]))
            return out.view(*self.shape, *t.shape[3:])
        return flat.index_select(0, ids).view(*self.shape, *t.shape[3:])

    def put(self, t: torch.Tensor, values: torch.Tensor):
        """Writes values (S, K, B, ...) at the block's rows of (B, K, L, ...)."""
        flat, ids = self._flat(t)
        flat.index_copy_(0, ids, values.reshape(-1, *values.shape[3:]))

    def add(self, t: torch.Tensor, values: torch.Tensor):
        """Adds values (S, K, B, ...) at the block's rows of (B, Kx, L, ...) (summing directions if Kx=1)."""
        flat, ids = self._flat(t)
        flat.index_add_(0, ids, values.reshape(-1, *values.shape[3:]))


class _Prepared:
    """Inputs in compute layout: per-token tensors channel-last, parameters broadcastable."""

    def __init__(self, args: ScanArgs):
        batch, K, dim, length, N, groups = args.shape
        self.batch, self.d_state = int(batch), int(N)
        self.cdt = torch.float64 if args.u.dtype == torch.float64 else torch.float32
        self.split = (groups, dim // groups)
        cl = lambda t: None if t is None else _channel_last(t, self.cdt)  # noqa: E731
        self.u, self.z = cl(args.u), cl(args.z)  # (B, Kx, L, D)
        self.B, self.C = cl(args.B), cl(args.C)  # (B, K, L, G, N)
        self._delta, self._delta_cl = args.delta, None  # laid out on first use (the backward reads dt instead)
        param = lambda t, last: None if t is None else t.to(self.cdt).view(K, 1, *self.split, last)  # noqa: E731
        self.A = param(args.A, N)  # (K, 1, G, Dg, N)
        self.A_log2 = self.A * LOG2_E  # decays are taken as exp2(dt A log2 e)
        self.D = param(args.D, 1)
        self.delta_bias = param(args.delta_bias, 1)
        self.softplus = args.delta_softplus
        index = args.index if args.index is not None else torch.arange(length, device=args.u.device).expand(K, length)
        self.index = index
        self.state_shape = (K, batch, groups, dim // groups, N)
        self.steps_shape = (int(length), *self.state_shape[:-1])  # per-step tensors in scan order, N appended

    def skip_in_image_order(self, args: ScanArgs) -> bool:
        """Whether the skip term D u is taken once in image order rather than per direction: when the
        directions' outputs are summed ungated, sum_k D_k u_k at a position is the same in any order
        (and in the backward every direction's output gradient is grad_y itself)."""
        return self.D is not None and args.merge == "sum" and self.z is None

    def skip_per_input(self) -> torch.Tensor:
        """sum of D_k over the directions that read each of u's Ku inputs (k % Ku), (Ku, 1, D)."""
        K, Ku = self.D.shape[0], self.u.shape[1]
        return self.D.view(K // Ku, Ku, 1, -1).sum(0)

    def rows(self, steps: range) -> _Rows:
        return _Rows(self.index[:, steps.start:steps.stop], self.batch)

    def channels(self, rows: _Rows, t: torch.Tensor | None, out=None):
        """A block's rows of a channel-last (B, Kx, L, D) tensor, (S, K, B, G, Dg, 1)."""
        return None if t is None else rows.read(t, out).unflatten(-1, self.split).unsqueeze(-1)

    def block(self, rows: _Rows):
        """(u, B, C, z) of a block, shaped (S, K, B, G, Dg, 1|N)."""
        u, z = self.channels(rows, self.u), self.channels(rows, self.z)
        Bm, Cm = rows.read(self.B).unsqueeze(-2), rows.read(self.C).unsqueeze(-2)
        return u, Bm, Cm, z

    def step_sizes(self, rows: _Rows, dt_out=None, slope_out=None):
        """dt = softplus(delta + bias) at a block's steps (or without either), written into dt_out when
        given, and softplus' slope sigmoid(delta + bias) into slope_out; shaped (S, K, B, G, Dg, 1)."""
        if self._delta_cl is None:
            self._delta_cl = _channel_last(self._delta, self.cdt)
        pre = self.channels(rows, self._delta_cl, dt_out)
        if self.delta_bias is not None:
            pre += self.delta_bias
        if not self.softplus:
            return pre
        if slope_out is not None:
            torch.sigmoid(pre, out=slope_out)
        # F.softplus (beta 1, threshold 20) in place: pre is this block's own tensor
        return torch.ops.aten.softplus.out(pre, 1, 20, out=pre)


def keeps_steps(args: ScanArgs) -> bool:
    """Whether a training forward keeps every step's decay and state for the backward: when the
    state is no wider than the channels (N = 1), each costs one dt's memory and saves recomputing both."""
    return int(args.shape[4]) == 1


def _decay(dt: torch.Tensor, A_log2: torch.Tensor, out=None) -> torch.Tensor:
    """a = exp(dt A) = exp2(dt A log2 e) from A_log2 = A log2 e, (S, K, B, G, Dg, 1) x (K, 1, G, Dg, N),
    in one allocation (or ``out``): PyTorch's CPU exp2 takes about half the time of its exp."""
    return torch.mul(dt, A_log2, out=out).exp2_()


def _sum_over_state(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_n x[..., d, n] y[..., 0, n], keeping the last dim: (..., Dg, N) x (..., 1, N) -> (..., Dg, 1)."""
    if x.shape[-1] == 1:
        return x * y
    return torch.matmul(x, y.transpose(-1, -2))


def _sum_over_channels(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_d x[..., d, 0] y[..., d, n]: (..., Dg, 1) x (..., Dg, N) -> (..., N) (a matmul for N > 1)."""
    if y.shape[-1] == 1:  # a batched dot product: cheaper than a matmul of 1-wide matrices
        return torch.linalg.vecdot(x.squeeze(-1), y.squeeze(-1)).unsqueeze(-1)
    return torch.matmul(x.transpose(-1, -2), y).squeeze(-2)


def _over_steps_and_batch(t: torch.Tensor) -> torch.Tensor:
    """(S, K, B, ...) -> (K, 1, ...), the shape of per-direction parameters."""
    return t.sum(0).sum(1, keepdim=True)


def _blocks(length: int, block_len: int) -> list[range]:
    return [range(s, min(s + block_len, length)) for s in range(0, length, block_len)]


def auto_block_len(args: ScanArgs) -> int:
    """Steps per block: as many as keep a block's (steps, K, B, D, N) temporaries near BLOCK_ELEMENTS
    values (cache-sized, and reused by the allocator instead of fresh pages), within the bounds."""
    batch, K, dim, _, N, _ = args.shape
    width = int(batch) * int(K) * int(dim) * int(N)
    return min(DEFAULT_BLOCK_LEN, max(MIN_BLOCK_LEN, BLOCK_ELEMENTS // width))


def chunked_forward(args: ScanArgs, block_len: int, training: bool = True):
    """Returns (y, last_state (B, K, D, N), history); y like the reference.  ``history`` is what the
    backward needs, in scan order: (dt, softplus' slope or None, decays or None, states), with every
    step's decay and state when ``keeps_steps`` and otherwise the state entering each block; None
    unless ``training``."""
    batch, K, dim, length, N, groups = args.shape
    p = _Prepared(args)
    skip_in_image_order = p.skip_in_image_order(args)
    if skip_in_image_order:  # the directions' outputs are added to sum_k D_k u_k
        y = p.u * p.skip_per_input()
        y = y if y.shape[1] == 1 else y.sum(1, keepdim=True)
    else:  # merge="none": every row is written exactly once (index rows are permutations), no zero fill
        new_y = torch.zeros if args.merge == "sum" else torch.empty
        y = new_y((batch, 1 if args.merge == "sum" else K, length, dim), dtype=p.cdt, device=args.u.device)
    new = lambda *shape: torch.empty(shape, dtype=p.cdt, device=y.device)  # noqa: E731
    keep = training and keeps_steps(args)
    blocks = _blocks(length, block_len)
    dts, slopes = (new(*p.steps_shape, 1) if t else None for t in (training, training and p.softplus))
    decays = every_state = entering = None
    if keep:
        decays, every_state = new(*p.steps_shape, N), new(*p.steps_shape, N)
    elif training:
        entering = new(len(blocks), *p.state_shape)  # the state entering each block
    h = torch.zeros(p.state_shape, dtype=p.cdt, device=y.device)
    for i, steps in enumerate(blocks):
        at = lambda t: None if t is None else t[steps.start:steps.stop]  # noqa: E731
        if entering is not None:
            entering[i] = h
        rows = p.rows(steps)
        u, Bm, Cm, z = p.block(rows)
        dt = p.step_sizes(rows, at(dts), at(slopes))
        states = linear_scan(_decay(dt, p.A_log2, out=at(decays)), dt * u * Bm, h, out=at(every_state))
        h = states[-1]
        out = _sum_over_state(states, Cm)
        if p.D is not None and not skip_in_image_order:
            out = out.addcmul_(p.D, u)
        if z is not None:
            out = out.mul_(F.silu(z))
        if args.merge == "sum":
            rows.add(y, out.flatten(-3))
        else:
            rows.put(y, out.flatten(-3))
    y = _from_channel_last(y)
    y = y[:, 0] if args.merge == "sum" else y
    last = h.flatten(-3, -2).transpose(0, 1)  # (K, B, D, N) -> (B, K, D, N)
    return y, last, (dts, slopes, decays, every_state if keep else entering) if training else None


def chunked_backward(args: ScanArgs, block_len: int, history, grad_y, grad_last):
    """Gradients of (u, delta, A, B, C, D, z, delta_bias), in the canonical shapes and input dtypes."""
    batch, K, dim, length, N, groups = args.shape
    p = _Prepared(args)
    grad_y = _channel_last(grad_y.unsqueeze(1) if args.merge == "sum" else grad_y, p.cdt)
    zeros = lambda t: None if t is None else torch.zeros(t.shape, dtype=t.dtype, device=t.device)  # noqa: E731
    skip_in_image_order = p.skip_in_image_order(args)
    # the skip term's share of g_u, when taken in image order, is where g_u starts
    g_u = grad_y * p.skip_per_input() if skip_in_image_order else zeros(p.u)
    g_z, g_B, g_C = zeros(p.z), zeros(p.B), zeros(p.C)
    g_delta = torch.zeros((batch, K, length, dim), dtype=p.cdt, device=g_u.device)
    g_A, g_D, g_bias = zeros(p.A), zeros(p.D), zeros(p.delta_bias)
    dts, slopes, decays, states_kept = history  # see chunked_forward
    lam_carry = torch.zeros(p.state_shape, dtype=p.cdt, device=args.u.device)
    if grad_last is not None:
        lam_carry += grad_last.to(p.cdt).transpose(0, 1).unflatten(-2, p.split)
    if skip_in_image_order:
        g_D += (grad_y * p.u).sum(0).sum(1).repeat(K // p.u.shape[1], 1).view(g_D.shape)
    blocks = _blocks(length, block_len)
    for i in reversed(range(len(blocks))):
        steps = blocks[i]
        rows = p.rows(steps)
        u, Bm, Cm, z = p.block(rows)
        dt = dts[steps.start:steps.stop]
        dtu = dt * u
        if decays is not None:
            a, states = decays[steps.start:steps.stop], states_kept[steps.start:steps.stop]
            h0 = states_kept[steps.start - 1] if steps.start else torch.zeros_like(states[0])
        else:
            a, h0 = _decay(dt, p.A_log2), states_kept[i]
            states = linear_scan(a, dtu * Bm, h0)
        gy = p.channels(rows, grad_y)  # (S, K, B, G, Dg, 1)
        if z is not None:
            y = _sum_over_state(states, Cm)
            if p.D is not None:
                y = y.addcmul_(p.D, u)
            sig = torch.sigmoid(z)
            rows.add(g_z, (gy * y * sig * (1 + z * (1 - sig))).flatten(-3))
            gy = gy * z * sig
        if p.D is not None and not skip_in_image_order:
            g_D += _over_steps_and_batch(gy * u)
        rows.add(g_C, _sum_over_channels(gy, states))
        # adjoint lam_t = C_t gy_t + a_{t+1} lam_{t+1}, scanned backwards in time
        lam = linear_scan(a, gy * Cm, lam_carry, reverse=True)
        lam_B = _sum_over_state(lam, Bm)
        rows.add(g_B, _sum_over_channels(dtu, lam))
        g_u_blk = lam_B * dt
        if p.D is not None and not skip_in_image_order:
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
        if slopes is not None:
            g_dt.mul_(slopes[steps.start:steps.stop])
        if g_bias is not None:
            g_bias += _over_steps_and_batch(g_dt)
        rows.add(g_delta, g_dt.flatten(-3))
    back = lambda g: None if g is None else _from_channel_last(g)  # noqa: E731
    param = lambda g, *shape: None if g is None else g.view(*shape)  # noqa: E731
    grads = [back(g_u), back(g_delta), param(g_A, K, dim, N), back(g_B), back(g_C),
             param(g_D, K, dim), back(g_z), param(g_bias, K, dim)]
    return [None if g is None else g.to(t.dtype) for g, t in zip(grads, args.tensors())]


class _ChunkedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, index, softplus, merge, block_len, training):
        args = ScanArgs(u, delta, A, B, C, D, z, delta_bias, softplus, index, merge)
        with autocast_off(u.device):  # fp32 state and sums whatever the autocast
            y, last, history = chunked_forward(args, block_len, training)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, index, *(history or [None] * 4))
        ctx.options = (softplus, merge, block_len)
        return y.to(u.dtype), last

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        saved = ctx.saved_tensors  # unpacked once (activation checkpointing allows no more)
        *tensors, index = saved[:9]
        softplus, merge, block_len = ctx.options
        args = ScanArgs(*tensors, softplus, index, merge)
        with autocast_off(args.u.device):
            grads = chunked_backward(args, block_len, saved[9:], grad_y, grad_last)
        return (*grads, None, None, None, None, None)


def selective_scan_chunked(args: ScanArgs, return_last_state: bool = False, block_len: int | None = None):
    y, last = _ChunkedScan.apply(*args.tensors(), args.index, args.delta_softplus, args.merge,
                                 block_len or auto_block_len(args), args.backward_can_follow())
    return y, (last if return_last_state else None)
