"""Fused selective-scan (Mamba S6) Triton kernels: forward and backward.

Entry point: :func:`selective_scan_triton` (called by the dispatch in ``__init__.py`` with the
canonical :class:`ScanArgs`, see ``canonical.py``; ``reference.py`` is the specification).

Algorithm
---------
One program per (batch, direction, block of ``BLOCK_D`` channels).  It walks the scan order in
chunks of ``BLOCK_L`` steps.  For a chunk it gathers (through the index map, so tensors stay in
image order and are never copied) a (BLOCK_L, BLOCK_D) tile of u / delta / z and (BLOCK_L, N)
tiles of B / C, forms a_t = exp(dt_t A) and b_t = dt_t B_t u_t as (BLOCK_L, BLOCK_D, N) register
tiles and runs ``tl.associative_scan`` over the chunk with the affine combine
(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2).  L is the leading tile axis, so Triton's layout
spreads the lanes over (D, N) (consecutive channels of a token are consecutive lanes: coalesced
reads of token-major tensors) and keeps each thread's BLOCK_L steps in its registers: the scan is
a sequential loop inside each thread, with no shuffles or shared memory.  The state carried from
the previous chunk enters as h_t += (prod_{s<=t} a_s) h_carry.  The state h (BLOCK_D, N) lives in
registers; the (B, D, L, N) state tensor is never written.  The forward writes y and the fp32 state at the end of every
chunk, ``states`` (B, K, D, n_chunks, N), which is all the backward needs (and whose last
chunk is ``last_state``).

The backward walks the chunks in reverse.  For each chunk it recomputes the states from the
saved state at the end of the previous chunk (one forward associative scan) and the adjoint
lambda_t = C_t gy_t + a_{t+1} lambda_{t+1} with a reverse associative scan (a_{t+1} is obtained by
re-gathering delta one step ahead; the adjoint at the first step of the later chunk is carried
in registers).  a_t h_{t-1} is recovered as h_t - b_t, so no shifted state is needed.  Gradient
reductions: A, D and delta_bias are summed over L in registers and written as per-batch fp32
partials (summed over batch in torch, deterministic); B and C are reduced over the channel
block in registers and added into fp32 buffers with atomics (one add per D-block); u and z,
when shared by the K directions (Ku = 1), are added with fp32 atomics too.  With
``merge="sum"`` and K > 1 the forward adds the K outputs into an fp32 buffer with atomics
(summation order across directions is therefore not deterministic, ~1 ulp of fp32).

Chunk size and tuning
---------------------
On CUDA the forward kernel is ``triton.autotune``-d over (BLOCK_D, BLOCK_L, num_warps), keyed
on (D, L, N, whether states are saved) (and on tensor dtypes, as Triton always does), with
configurations pruned by a register model calibrated on sm_90a (see ``_per_thread``); timings
are cached on disk where Triton supports it.  A forward that a backward will follow uses
BLOCK_L = 16 (``_TRAIN_BLOCK_L``); the backward reuses it (the chunk states depend on it) and
autotunes (BLOCK_D, num_warps), keyed on (D, L, N, BLOCK_L).  Under ``TRITON_INTERPRET=1`` (CPU)
no autotuning happens: a single small config is launched directly.  Overrides (both backends), read at every call:

    module attributes ``BLOCK_L_OVERRIDE`` / ``BLOCK_D_OVERRIDE`` (int or None), or the
    environment variables ``VISION_SSM_SCAN_BLOCK_L`` / ``VISION_SSM_SCAN_BLOCK_D``.

Setting either disables autotuning and launches one config (tests use BLOCK_L=8 so that short
sequences span several chunks).  Block sizes must be powers of two.

Memory-traffic model (what :func:`fwd_bytes` / :func:`fwd_bwd_bytes` return)
--------------------------------------------------------------------------
Sizes in elements, ``e(x)`` = element size of tensor x, ``Ku``/``Kz`` = 1 or K, ``nch`` =
ceil(L / BLOCK_L), ``Y`` = B*D*L for ``merge="sum"``, B*K*D*L for ``"none"``.

forward, minimal bytes = reads + writes, each tensor touched exactly once:
    u      B*Ku*D*L*e(u)            delta  B*K*D*L*e(delta)
    B, C   B*K*G*N*L*e(B|C) each    z      B*Kz*D*L*e(z)           (if given)
    A      K*D*N*e(A)               D, delta_bias K*D*e(.)        (if given)
    index  K*L*8                    (if given)
    y      Y*e(u)                   (written)
    chunk states B*K*D*nch*N*4      (written; only when a backward will follow, or just the
                                    last chunk's B*K*D*N*4 with ``return_last_state``)
backward, minimal bytes:
    reads  u, delta, A, B, C, D, z, delta_bias, index, chunk states, grad_y (Y * e(y))
    writes grad of u, delta, B, C, z (their shapes, their dtypes) and grad A/D/delta_bias
    (small; counted at the parameter dtype).

What the kernels actually move on top of that (not counted: mostly L2 / cache hits):
 * a tensor shared by the K directions (u, z with Ku = 1; B/C with G < D) is read once per
   direction / per channel block; the L2 usually absorbs the repeats.
 * merge="sum", K > 1: K fp32 atomic read-modify-writes per output element (in L2), then one
   cast pass (read 4 B, write e(u)) when u is not fp32.  Same for grad u / grad z when Ku = 1
   and for grad B / grad C (atomics per D-block, then a cast to the input dtype).
 * the backward re-gathers delta (and the index) one step ahead for a_{t+1} (cache hits).
 * the per-batch fp32 partials of grad A (B*K*D*N*4), grad D and grad delta_bias.
"""
from __future__ import annotations

import inspect
import os
from typing import Optional

import torch

import triton
import triton.language as tl

from .canonical import ScanArgs

__all__ = ["selective_scan_triton", "fwd_bytes", "fwd_bwd_bytes", "BLOCK_L_OVERRIDE",
           "BLOCK_D_OVERRIDE", "interpreter_active"]

# Test / debugging overrides (see module docstring).  None: autotune on CUDA, small default
# under the interpreter.
BLOCK_L_OVERRIDE: Optional[int] = None
BLOCK_D_OVERRIDE: Optional[int] = None

_LOG2E = 1.4426950408889634


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------

@triton.jit
def _affine_combine(a1, b1, a2, b2):
    # (a1, b1) is the earlier segment (in scan direction), (a2, b2) the later one:
    # x -> a2 (a1 x + b1) + b2.
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), with log1p done accurately for tiny arguments.
    e = tl.exp(-tl.abs(x))
    l1p = tl.where(e < 1e-4, e * (1.0 - 0.5 * e), tl.log(1.0 + e))
    return tl.maximum(x, 0.0) + l1p


@triton.jit
def _load_dt(ptrs, mask, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """(delta + bias, dt) as fp32 (BLOCK_L, BLOCK_D) tiles from a tile of pointers; dt is 0
    where masked (a masked step carries the state unchanged)."""
    raw = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw = raw + bias[None, :]
    if SOFTPLUS:
        dt = _softplus(raw)
    else:
        dt = raw
    dt = tl.where(mask, dt, 0.0)
    return raw, dt


@triton.jit
def _load_bc(ptr, base, g_scalar, g_rows, s_g, offs_n, s_n, pos, s_l, nmask, tmask, dmask,
             B_SHARED: tl.constexpr):
    """B or C tile in fp32: (BLOCK_L, 1, N_P) when the channel block is in one group, else
    (BLOCK_L, BLOCK_D, N_P) gathered per channel."""
    if B_SHARED:
        off = base + g_scalar * s_g + pos[:, None] * s_l + offs_n[None, :] * s_n
        x = tl.load(ptr + off, mask=tmask[:, None] & nmask[None, :], other=0.0).to(tl.float32)
        x = x[:, None, :]
    else:
        off = (base + pos[:, None, None] * s_l + g_rows[None, :, None] * s_g
               + offs_n[None, None, :] * s_n)
        m = tmask[:, None, None] & dmask[None, :, None] & nmask[None, None, :]
        x = tl.load(ptr + off, mask=m, other=0.0).to(tl.float32)
    return x


@triton.jit
def _ssm_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, idx_ptr, y_ptr, st_ptr,
    s_ub, s_uk, s_ud, s_ul,
    s_db, s_dk, s_dd, s_dl,
    s_Ak, s_Ad, s_An,
    s_Bb, s_Bk, s_Bg, s_Bn, s_Bl,
    s_Cb, s_Ck, s_Cg, s_Cn, s_Cl,
    s_Dk, s_Dd,
    s_zb, s_zk, s_zd, s_zl,
    s_bk, s_bd,
    s_ik, s_il,
    s_yb, s_yk, s_yd, s_yl,
    s_sb, s_sk, s_sd, s_sc, s_sn,
    K, DIM, SEQLEN, DSTATE, NGROUPS, DPG,
    N_P: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_INDEX: tl.constexpr, Y_ATOMIC: tl.constexpr, STORE_ALL: tl.constexpr,
    STORE_LAST: tl.constexpr, B_SHARED: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_bk = tl.program_id(0)
    pid_d = tl.program_id(1)
    b = (pid_bk // K).to(tl.int64)
    k = (pid_bk % K).to(tl.int64)

    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = offs_d < DIM
    d64 = offs_d.to(tl.int64)
    offs_n = tl.arange(0, N_P)
    nmask = offs_n < DSTATE
    offs_l = tl.arange(0, BLOCK_L)
    last_row = (offs_l == BLOCK_L - 1)[:, None, None]

    A = tl.load(A_ptr + k * s_Ak + d64[:, None] * s_Ad + offs_n[None, :] * s_An,
                mask=dmask[:, None] & nmask[None, :], other=0.0).to(tl.float32)
    A2 = (A * 1.4426950408889634)[None, :, :]  # exp(dt A) = exp2(dt A log2 e)
    if HAS_D:
        Dv = tl.load(D_ptr + k * s_Dk + d64 * s_Dd, mask=dmask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k * s_bk + d64 * s_bd, mask=dmask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_scalar = ((pid_d * BLOCK_D) // DPG).to(tl.int64)
    g_rows = (tl.minimum(offs_d, DIM - 1) // DPG).to(tl.int64)

    u_base = b * s_ub + k * s_uk
    d_base = b * s_db + k * s_dk
    B_base = b * s_Bb + k * s_Bk
    C_base = b * s_Cb + k * s_Ck
    z_base = b * s_zb + k * s_zk
    y_base = b * s_yb + k * s_yk
    st_base = b * s_sb + k * s_sk + d64[:, None] * s_sd + offs_n[None, :] * s_sn
    st_mask = dmask[:, None] & nmask[None, :]

    h = tl.zeros([BLOCK_D, N_P], dtype=tl.float32)
    n_chunks = tl.cdiv(SEQLEN, BLOCK_L)
    for c in range(0, n_chunks):
        t = c * BLOCK_L + offs_l
        tmask = t < SEQLEN
        if HAS_INDEX:
            pos = tl.load(idx_ptr + k * s_ik + t * s_il, mask=tmask, other=0).to(tl.int64)
        else:
            pos = t.to(tl.int64)
        m2 = tmask[:, None] & dmask[None, :]
        u = tl.load(u_ptr + u_base + pos[:, None] * s_ul + d64[None, :] * s_ud,
                    mask=m2, other=0.0).to(tl.float32)
        raw, dt = _load_dt(delta_ptr + d_base + pos[:, None] * s_dl + d64[None, :] * s_dd, m2,
                           bias, HAS_BIAS, SOFTPLUS)
        Bt = _load_bc(B_ptr, B_base, g_scalar, g_rows, s_Bg, offs_n, s_Bn, pos, s_Bl,
                      nmask, tmask, dmask, B_SHARED)
        Ct = _load_bc(C_ptr, C_base, g_scalar, g_rows, s_Cg, offs_n, s_Cn, pos, s_Cl,
                      nmask, tmask, dmask, B_SHARED)
        dt3 = dt[:, :, None]
        a = tl.exp2(dt3 * A2)
        bu = dt3 * Bt * u[:, :, None]
        acum, hs = tl.associative_scan((a, bu), axis=0, combine_fn=_affine_combine)
        hs = hs + acum * h[None, :, :]
        y = tl.sum(hs * Ct, axis=2)
        h = tl.sum(tl.where(last_row, hs, 0.0), axis=0)
        if STORE_ALL:
            tl.store(st_ptr + st_base + c * s_sc, h, mask=st_mask)
        elif STORE_LAST:
            tl.store(st_ptr + st_base, h, mask=st_mask & (c == n_chunks - 1))
        if HAS_D:
            y = y + Dv[None, :] * u
        if HAS_Z:
            z = tl.load(z_ptr + z_base + pos[:, None] * s_zl + d64[None, :] * s_zd,
                        mask=m2, other=0.0).to(tl.float32)
            y = y * (z * tl.sigmoid(z))
        y_off = y_base + pos[:, None] * s_yl + d64[None, :] * s_yd
        if Y_ATOMIC:
            tl.atomic_add(y_ptr + y_off, y, mask=m2, sem="relaxed")
        else:
            tl.store(y_ptr + y_off, y, mask=m2)


@triton.jit
def _ssm_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, idx_ptr, st_ptr,
    gy_ptr, gl_ptr,
    gu_ptr, gdelta_ptr, gB_ptr, gC_ptr, gz_ptr, gA_ptr, gD_ptr, gbias_ptr,
    s_ub, s_uk, s_ud, s_ul,
    s_db, s_dk, s_dd, s_dl,
    s_Ak, s_Ad, s_An,
    s_Bb, s_Bk, s_Bg, s_Bn, s_Bl,
    s_Cb, s_Ck, s_Cg, s_Cn, s_Cl,
    s_Dk, s_Dd,
    s_zb, s_zk, s_zd, s_zl,
    s_bk, s_bd,
    s_ik, s_il,
    s_sb, s_sk, s_sd, s_sc, s_sn,
    s_gyb, s_gyk, s_gyd, s_gyl,
    s_glb, s_glk, s_gld, s_gln,
    s_gub, s_guk, s_gud, s_gul,
    s_gdb, s_gdk, s_gdd, s_gdl,
    s_gBb, s_gBk, s_gBg, s_gBn, s_gBl,
    s_gCb, s_gCk, s_gCg, s_gCn, s_gCl,
    s_gzb, s_gzk, s_gzd, s_gzl,
    K, DIM, SEQLEN, DSTATE, NGROUPS, DPG,
    N_P: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_INDEX: tl.constexpr, HAS_GLAST: tl.constexpr, GU_ATOMIC: tl.constexpr,
    GZ_ATOMIC: tl.constexpr, B_SHARED: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_bk = tl.program_id(0)
    pid_d = tl.program_id(1)
    b = (pid_bk // K).to(tl.int64)
    k = (pid_bk % K).to(tl.int64)

    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = offs_d < DIM
    d64 = offs_d.to(tl.int64)
    offs_n = tl.arange(0, N_P)
    nmask = offs_n < DSTATE
    offs_l = tl.arange(0, BLOCK_L)
    first_row = (offs_l == 0)[:, None, None]
    last_row = (offs_l == BLOCK_L - 1)[:, None, None]
    dn_mask = dmask[:, None] & nmask[None, :]

    A = tl.load(A_ptr + k * s_Ak + d64[:, None] * s_Ad + offs_n[None, :] * s_An,
                mask=dn_mask, other=0.0).to(tl.float32)
    A3 = A[None, :, :]
    A2 = (A * 1.4426950408889634)[None, :, :]
    if HAS_D:
        Dv = tl.load(D_ptr + k * s_Dk + d64 * s_Dd, mask=dmask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k * s_bk + d64 * s_bd, mask=dmask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_scalar = ((pid_d * BLOCK_D) // DPG).to(tl.int64)
    g_rows = (tl.minimum(offs_d, DIM - 1) // DPG).to(tl.int64)

    u_base = b * s_ub + k * s_uk
    d_base = b * s_db + k * s_dk
    B_base = b * s_Bb + k * s_Bk
    C_base = b * s_Cb + k * s_Ck
    z_base = b * s_zb + k * s_zk
    gy_base = b * s_gyb + k * s_gyk
    gu_base = b * s_gub + k * s_guk
    gd_base = b * s_gdb + k * s_gdk
    gB_base = b * s_gBb + k * s_gBk
    gC_base = b * s_gCb + k * s_gCk
    gz_base = b * s_gzb + k * s_gzk
    st_base = b * s_sb + k * s_sk + d64[:, None] * s_sd + offs_n[None, :] * s_sn

    # Adjoint of the state at the first step of the chunk processed before (the next one in
    # time); starts as the gradient of the last state.
    if HAS_GLAST:
        lam = tl.load(gl_ptr + b * s_glb + k * s_glk + d64[:, None] * s_gld + offs_n[None, :] * s_gln,
                      mask=dn_mask, other=0.0).to(tl.float32)
    else:
        lam = tl.zeros([BLOCK_D, N_P], dtype=tl.float32)
    gA_acc = tl.zeros([BLOCK_D, N_P], dtype=tl.float32)
    gD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    gb_acc = tl.zeros([BLOCK_D], dtype=tl.float32)

    n_chunks = tl.cdiv(SEQLEN, BLOCK_L)
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        t = c * BLOCK_L + offs_l
        tmask = t < SEQLEN
        if HAS_INDEX:
            pos = tl.load(idx_ptr + k * s_ik + t * s_il, mask=tmask, other=0).to(tl.int64)
        else:
            pos = t.to(tl.int64)
        m2 = tmask[:, None] & dmask[None, :]
        u = tl.load(u_ptr + u_base + pos[:, None] * s_ul + d64[None, :] * s_ud,
                    mask=m2, other=0.0).to(tl.float32)
        raw, dt = _load_dt(delta_ptr + d_base + pos[:, None] * s_dl + d64[None, :] * s_dd, m2,
                           bias, HAS_BIAS, SOFTPLUS)
        Bt = _load_bc(B_ptr, B_base, g_scalar, g_rows, s_Bg, offs_n, s_Bn, pos, s_Bl,
                      nmask, tmask, dmask, B_SHARED)
        Ct = _load_bc(C_ptr, C_base, g_scalar, g_rows, s_Cg, offs_n, s_Cn, pos, s_Cl,
                      nmask, tmask, dmask, B_SHARED)

        # Recompute the states of this chunk from the state at the end of the previous one.
        h0 = tl.load(st_ptr + st_base + (c - 1) * s_sc, mask=dn_mask & (c > 0), other=0.0)
        dt3 = dt[:, :, None]
        u3 = u[:, :, None]
        a = tl.exp2(dt3 * A2)
        bu = dt3 * Bt * u3
        acum, hs = tl.associative_scan((a, bu), axis=0, combine_fn=_affine_combine)
        hs = hs + acum * h0[None, :, :]

        g = tl.load(gy_ptr + gy_base + pos[:, None] * s_gyl + d64[None, :] * s_gyd,
                    mask=m2, other=0.0).to(tl.float32)
        if HAS_Z:
            y_pre = tl.sum(hs * Ct, axis=2)
            if HAS_D:
                y_pre = y_pre + Dv[None, :] * u
            z = tl.load(z_ptr + z_base + pos[:, None] * s_zl + d64[None, :] * s_zd,
                        mask=m2, other=0.0).to(tl.float32)
            sz = tl.sigmoid(z)
            gz = g * y_pre * sz * (1.0 + z * (1.0 - sz))
            gy = g * z * sz
            gz_off = gz_base + pos[:, None] * s_gzl + d64[None, :] * s_gzd
            if GZ_ATOMIC:
                tl.atomic_add(gz_ptr + gz_off, gz, mask=m2, sem="relaxed")
            else:
                tl.store(gz_ptr + gz_off, gz, mask=m2)
        else:
            gy = g

        # a_{t+1}: re-gather delta one step ahead (1 past the end: the adjoint of the last state
        # enters there with coefficient 1).
        t1 = t + 1
        tmask1 = t1 < SEQLEN
        if HAS_INDEX:
            pos1 = tl.load(idx_ptr + k * s_ik + t1 * s_il, mask=tmask1, other=0).to(tl.int64)
        else:
            pos1 = t1.to(tl.int64)
        _raw1, dt1 = _load_dt(delta_ptr + d_base + pos1[:, None] * s_dl + d64[None, :] * s_dd,
                              tmask1[:, None] & dmask[None, :], bias, HAS_BIAS, SOFTPLUS)
        a1 = tl.where(tmask1[:, None, None], tl.exp2(dt1[:, :, None] * A2), 1.0)
        cg = Ct * gy[:, :, None] + tl.where(last_row, a1 * lam[None, :, :], 0.0)
        _p, lam_t = tl.associative_scan((a1, cg), axis=0, combine_fn=_affine_combine, reverse=True)
        lam = tl.sum(tl.where(first_row, lam_t, 0.0), axis=0)

        ah = hs - bu  # a_t h_{t-1}
        gdt = tl.sum(lam_t * (Bt * u3 + A3 * ah), axis=2)
        gA_acc += tl.sum(lam_t * ah * dt3, axis=0)
        gu = tl.sum(lam_t * Bt, axis=2) * dt
        if HAS_D:
            gu += gy * Dv[None, :]
            gD_acc += tl.sum(gy * u, axis=0)
        gu_off = gu_base + pos[:, None] * s_gul + d64[None, :] * s_gud
        if GU_ATOMIC:
            tl.atomic_add(gu_ptr + gu_off, gu, mask=m2, sem="relaxed")
        else:
            tl.store(gu_ptr + gu_off, gu, mask=m2)

        gB3 = lam_t * (dt * u)[:, :, None]
        gC3 = hs * gy[:, :, None]
        if B_SHARED:
            gB2 = tl.sum(gB3, axis=1)
            gC2 = tl.sum(gC3, axis=1)
            bc_mask = tmask[:, None] & nmask[None, :]
            gB_off = gB_base + g_scalar * s_gBg + pos[:, None] * s_gBl + offs_n[None, :] * s_gBn
            gC_off = gC_base + g_scalar * s_gCg + pos[:, None] * s_gCl + offs_n[None, :] * s_gCn
            tl.atomic_add(gB_ptr + gB_off, gB2, mask=bc_mask, sem="relaxed")
            tl.atomic_add(gC_ptr + gC_off, gC2, mask=bc_mask, sem="relaxed")
        else:
            bc_mask3 = tmask[:, None, None] & dmask[None, :, None] & nmask[None, None, :]
            gB_off = (gB_base + pos[:, None, None] * s_gBl + g_rows[None, :, None] * s_gBg
                      + offs_n[None, None, :] * s_gBn)
            gC_off = (gC_base + pos[:, None, None] * s_gCl + g_rows[None, :, None] * s_gCg
                      + offs_n[None, None, :] * s_gCn)
            tl.atomic_add(gB_ptr + gB_off, gB3, mask=bc_mask3, sem="relaxed")
            tl.atomic_add(gC_ptr + gC_off, gC3, mask=bc_mask3, sem="relaxed")

        if SOFTPLUS:
            gdelta = gdt * tl.sigmoid(raw)
        else:
            gdelta = gdt
        gdelta = tl.where(m2, gdelta, 0.0)
        gb_acc += tl.sum(gdelta, axis=0)
        tl.store(gdelta_ptr + gd_base + pos[:, None] * s_gdl + d64[None, :] * s_gdd, gdelta, mask=m2)

    # Per-(batch, direction) partials, contiguous (B, K, D, N) / (B, K, D).
    row = (b * K + k) * DIM + d64
    tl.store(gA_ptr + row[:, None] * DSTATE + offs_n[None, :], gA_acc, mask=dn_mask)
    if HAS_D:
        tl.store(gD_ptr + row, gD_acc, mask=dmask)
    if HAS_BIAS:
        tl.store(gbias_ptr + row, gb_acc, mask=dmask)
# ----------------------------------------------------------------------------------------------
# Configuration: autotuning on CUDA, one small config under the interpreter / with overrides
# ----------------------------------------------------------------------------------------------

def interpreter_active() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _next_pow2(x: int) -> int:
    return 1 if x <= 1 else 1 << (int(x) - 1).bit_length()


def _override(name: str, module_value: Optional[int]) -> Optional[int]:
    value = module_value
    if value is None:
        env = os.environ.get(name)
        value = int(env) if env else None
    if value is not None and (value < 1 or value & (value - 1)):
        raise ValueError(f"selective_scan (triton): {name} must be a power of two, got {value}")
    return value


# Register model for pruning autotune configs.  The scan runs along L inside each thread, so a
# thread holds BLOCK_L values of its share of every (BLOCK_L, BLOCK_D, N_P) tile and of every
# (BLOCK_L, BLOCK_D) one (see ``_per_thread``).  Calibrated with ptxas -v for sm_90a (all options
# on, N = 1 and 16): the forward is spill-free up to 64 tile and 32 row values per thread and
# spills beyond; the backward up to 16 tile values.
_FWD_MAX_TILE, _FWD_MAX_ROW, _BWD_MAX_TILE = 64, 32, 16
# A forward that a backward will follow saves the state every _TRAIN_BLOCK_L steps, the chunk
# length the backward walks (the largest it takes without spilling).
_TRAIN_BLOCK_L = 16
# (BLOCK_D, num_warps): D-blocks that fill the lanes for N_P = 16 (first four) and N_P = 1.
_LANE_SHAPES = [(8, 4), (16, 4), (32, 4), (64, 8), (32, 1), (64, 2), (128, 4), (256, 8)]

_FWD_CONFIGS = [triton.Config({"BLOCK_D": bd, "BLOCK_L": bl}, num_warps=w)
                for bd, w in _LANE_SHAPES for bl in (8, 16, 32)]
_BWD_CONFIGS = [triton.Config({"BLOCK_D": bd}, num_warps=w) for bd, w in _LANE_SHAPES + [(16, 8), (4, 2)]]


def _per_thread(block_d, n_p, block_l, num_warps):
    """fp32 values per thread of a (BLOCK_L, BLOCK_D, N_P) tile and of a (BLOCK_L, BLOCK_D) one."""
    lanes = 32 * num_warps
    return block_l * block_d * n_p / lanes, block_l * block_d / lanes


def _fits(c, D, n_p, block_l, max_tile, max_row=None):
    """Spill-free, and no lane left idle unless the block already spans all D channels."""
    bd, w = c.kwargs["BLOCK_D"], c.num_warps
    tile, row = _per_thread(bd, n_p, block_l, w)
    fills = bd * n_p >= 32 * w or bd >= _next_pow2(D)
    return (tile <= max_tile and (max_row is None or row <= max_row) and fills
            and bd <= max(8, _next_pow2(D)))


def _lightest(configs, n_p, block_l=None):
    return [min(configs, key=lambda c: _per_thread(c.kwargs["BLOCK_D"], n_p, block_l or c.kwargs["BLOCK_L"],
                                                   c.num_warps))]


def _prune_fwd(configs, named_args, **kwargs):
    D, L, N = named_args["DIM"], named_args["SEQLEN"], named_args["DSTATE"]
    if kwargs.get("STORE_ALL", named_args.get("STORE_ALL", False)):  # the backward's chunk
        configs = [c for c in configs if c.kwargs["BLOCK_L"] == _TRAIN_BLOCK_L]
    n_p = _next_pow2(N)
    ok = [c for c in configs
          if _fits(c, D, n_p, c.kwargs["BLOCK_L"], _FWD_MAX_TILE, _FWD_MAX_ROW)
          and c.kwargs["BLOCK_L"] <= max(8, _next_pow2(L))]
    return ok or _lightest(configs, n_p)  # always keep the lightest config


def _prune_bwd(configs, named_args, **kwargs):
    D, N = named_args["DIM"], named_args["DSTATE"]
    block_l = kwargs["BLOCK_L"]
    n_p = _next_pow2(N)
    ok = [c for c in configs if _fits(c, D, n_p, block_l, _BWD_MAX_TILE)]
    return ok or _lightest(configs, n_p, block_l)


def _b_shared(nargs):
    return nargs["NGROUPS"] == 1 or nargs["DPG"] % nargs["BLOCK_D"] == 0


# Autotune timings are cached on disk (Triton's cache directory) where this Triton can do so.
_CACHE_TUNING = ({"cache_results": True}
                 if "cache_results" in inspect.signature(triton.autotune).parameters else {})

_fwd_heur = triton.heuristics({"B_SHARED": _b_shared})(_ssm_fwd_kernel)
_bwd_heur = triton.heuristics({"B_SHARED": _b_shared})(_ssm_bwd_kernel)
_fwd_tuned = triton.autotune(
    configs=_FWD_CONFIGS, key=["DIM", "SEQLEN", "DSTATE", "STORE_ALL"], reset_to_zero=["y_ptr"],
    prune_configs_by={"early_config_prune": _prune_fwd}, **_CACHE_TUNING)(_fwd_heur)
_bwd_tuned = triton.autotune(
    configs=_BWD_CONFIGS, key=["DIM", "SEQLEN", "DSTATE", "BLOCK_L"],
    reset_to_zero=["gu_ptr", "gB_ptr", "gC_ptr", "gz_ptr"],
    prune_configs_by={"early_config_prune": _prune_bwd}, **_CACHE_TUNING)(_bwd_heur)


def _saved_chunk(D: int, L: int, N: int) -> int:
    """BLOCK_L of a forward that saves chunk states: the fixed config's, else _TRAIN_BLOCK_L."""
    fixed = _fixed_config(D, L, N)
    return fixed[1] if fixed else _TRAIN_BLOCK_L


def _fixed_config(D: int, L: int, N: int, block_l: Optional[int] = None):
    """(BLOCK_D, BLOCK_L, num_warps) when not autotuning, or None to autotune."""
    bl = _override("VISION_SSM_SCAN_BLOCK_L", BLOCK_L_OVERRIDE)
    bd = _override("VISION_SSM_SCAN_BLOCK_D", BLOCK_D_OVERRIDE)
    if interpreter_active():
        bl = bl or min(16, _next_pow2(L))
        bd = bd or min(4, _next_pow2(D))
        return bd, (block_l or bl), 1
    if bl is None and bd is None:
        return None
    n_p = _next_pow2(N)
    bl = block_l or bl or _TRAIN_BLOCK_L
    if bd is None:  # the largest block the backward takes without spilling (forward is lighter)
        bd = 1
        while bd < 256 and bd < D and _per_thread(2 * bd, n_p, bl, 4)[0] <= _BWD_MAX_TILE:
            bd *= 2
    return bd, bl, 4


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------

def _check_dtypes(args: ScanArgs):
    for name, t in (("u", args.u), ("delta", args.delta), ("A", args.A), ("B", args.B),
                    ("C", args.C), ("D", args.D), ("z", args.z), ("delta_bias", args.delta_bias)):
        if t is not None and t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"selective_scan (triton): `{name}` is {t.dtype}; the Triton kernels take "
                            "float32, float16 or bfloat16 (use backend='torch' or 'ref' for float64)")


def _strides(t: Optional[torch.Tensor], n: int, shared_dim: Optional[int] = None):
    if t is None:
        return [0] * n
    s = list(t.stride())
    if shared_dim is not None and t.shape[shared_dim] == 1:
        s[shared_dim] = 0
    return s


def _token_major(shape, device, dtype, zero=False):
    """A (..., C, L) tensor stored as (..., L, C): a token's channels are the adjacent lanes the
    kernels write (coalesced stores and atomics); returned as the (..., C, L) view."""
    make = torch.zeros if zero else torch.empty
    return make(*shape[:-2], shape[-1], shape[-2], device=device, dtype=dtype).transpose(-1, -2)


def _launch_fwd(u, delta, A, Bm, Cm, Dv, z, bias, index, softplus, merge, store_all, store_last):
    batch, Ku, dim, L = u.shape
    K, _, N = A.shape
    G = Bm.shape[2]
    dev = u.device
    dummy = torch.empty(1, device=dev, dtype=torch.float32)
    y_atomic = merge == "sum" and K > 1
    if merge == "sum":
        y = _token_major((batch, dim, L), dev, torch.float32 if y_atomic else u.dtype, zero=y_atomic)
        y_strides = [y.stride(0), 0, y.stride(1), y.stride(2)]
    else:
        y = _token_major((batch, K, dim, L), dev, u.dtype)
        y_strides = list(y.stride())

    fixed = _fixed_config(dim, L, N)
    n_slots = triton.cdiv(L, _saved_chunk(dim, L, N)) if store_all else 1
    states = torch.empty(batch, K, dim, n_slots, N, device=dev, dtype=torch.float32) \
        if (store_all or store_last) else dummy

    idx = index if index is not None else dummy
    s_idx = list(index.stride()) if index is not None else [0, 0]
    st_strides = list(states.stride()) if states.dim() == 5 else [0] * 5
    args = [u, delta, A, Bm, Cm, Dv if Dv is not None else dummy, z if z is not None else dummy,
            bias if bias is not None else dummy, idx, y, states,
            *_strides(u, 4, 1), *delta.stride(), *A.stride(), *Bm.stride(), *Cm.stride(),
            *_strides(Dv, 2), *_strides(z, 4, 1), *_strides(bias, 2), *s_idx, *y_strides,
            *st_strides, K, dim, L, N, G, dim // G]
    meta = dict(N_P=_next_pow2(N), HAS_D=Dv is not None, HAS_Z=z is not None,
                HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus), HAS_INDEX=index is not None,
                Y_ATOMIC=y_atomic, STORE_ALL=store_all, STORE_LAST=store_last)
    if fixed is not None:
        bd, bl, w = fixed
        grid = (batch * K, triton.cdiv(dim, bd))
        _fwd_heur[grid](*args, **meta, BLOCK_D=bd, BLOCK_L=bl, num_warps=w)
        block_l = bl
    else:
        grid = lambda meta_: (batch * K, triton.cdiv(dim, meta_["BLOCK_D"]))  # noqa: E731
        _fwd_tuned[grid](*args, **meta)
        block_l = _fwd_tuned.best_config.kwargs["BLOCK_L"]
    if y_atomic and u.dtype != torch.float32:
        y = y.to(u.dtype)
    if store_last:
        last = states[:, :, :, (triton.cdiv(L, block_l) - 1) if store_all else 0, :].contiguous()
    else:
        last = None
    return y, (states if store_all else None), last, block_l


def _launch_bwd(gy, glast, u, delta, A, Bm, Cm, Dv, z, bias, index, states, block_l, softplus, merge):
    batch, Ku, dim, L = u.shape
    K, _, N = A.shape
    G = Bm.shape[2]
    dev = u.device
    f32 = torch.float32
    dummy = torch.empty(1, device=dev, dtype=f32)

    gu_atomic = Ku == 1 and K > 1
    gu = _token_major(u.shape, dev, f32, zero=True) if gu_atomic else torch.empty_like(u)
    gdelta = torch.empty_like(delta)
    gB = torch.zeros(Bm.shape, device=dev, dtype=f32)
    gC = torch.zeros(Cm.shape, device=dev, dtype=f32)
    gz_atomic = z is not None and z.shape[1] == 1 and K > 1
    if z is None:
        gz = dummy
    else:
        gz = _token_major(z.shape, dev, f32, zero=True) if gz_atomic else torch.empty_like(z)
    gA = torch.empty(batch, K, dim, N, device=dev, dtype=f32)
    gD = torch.empty(batch, K, dim, device=dev, dtype=f32) if Dv is not None else dummy
    gbias = torch.empty(batch, K, dim, device=dev, dtype=f32) if bias is not None else dummy

    if merge == "sum":
        gy_strides = [gy.stride(0), 0, gy.stride(1), gy.stride(2)]
    else:
        gy_strides = list(gy.stride())
    idx = index if index is not None else dummy
    s_idx = list(index.stride()) if index is not None else [0, 0]
    args = [u, delta, A, Bm, Cm, Dv if Dv is not None else dummy, z if z is not None else dummy,
            bias if bias is not None else dummy, idx, states, gy,
            glast if glast is not None else dummy,
            gu, gdelta, gB, gC, gz, gA, gD, gbias,
            *_strides(u, 4, 1), *delta.stride(), *A.stride(), *Bm.stride(), *Cm.stride(),
            *_strides(Dv, 2), *_strides(z, 4, 1), *_strides(bias, 2), *s_idx,
            *states.stride(), *gy_strides, *_strides(glast, 4),
            *_strides(gu, 4, 1), *gdelta.stride(), *gB.stride(), *gC.stride(),
            *(_strides(gz, 4, 1) if z is not None else [0] * 4),
            K, dim, L, N, G, dim // G]
    meta = dict(N_P=_next_pow2(N), HAS_D=Dv is not None, HAS_Z=z is not None,
                HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus), HAS_INDEX=index is not None,
                HAS_GLAST=glast is not None, GU_ATOMIC=gu_atomic, GZ_ATOMIC=gz_atomic)
    fixed = _fixed_config(dim, L, N, block_l=block_l)
    if fixed is not None:
        bd, bl, w = fixed
        grid = (batch * K, triton.cdiv(dim, bd))
        _bwd_heur[grid](*args, **meta, BLOCK_D=bd, BLOCK_L=bl, num_warps=w)
    else:
        grid = lambda meta_: (batch * K, triton.cdiv(dim, meta_["BLOCK_D"]))  # noqa: E731
        _bwd_tuned[grid](*args, **meta, BLOCK_L=block_l)

    grads = {
        "u": gu.to(u.dtype) if gu_atomic else gu,
        "delta": gdelta,
        "A": gA.sum(0).to(A.dtype),
        "B": gB.to(Bm.dtype),
        "C": gC.to(Cm.dtype),
        "D": gD.sum(0).to(Dv.dtype) if Dv is not None else None,
        "z": (gz.to(z.dtype) if gz_atomic else gz) if z is not None else None,
        "delta_bias": gbias.sum(0).to(bias.dtype) if bias is not None else None,
    }
    return grads


class _SelectiveScanTritonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, index, softplus, merge, return_last_state,
                store_all):
        y, states, last, block_l = _launch_fwd(u, delta, A, Bm, Cm, Dv, z, bias, index, softplus,
                                               merge, store_all, bool(return_last_state))
        if store_all:
            ctx.save_for_backward(u, delta, A, Bm, Cm, Dv, z, bias, index, states)
            ctx.block_l = block_l
            ctx.softplus = softplus
            ctx.merge = merge
        if last is not None:
            return y, last
        return y

    @staticmethod
    def backward(ctx, gy, *rest):
        u, delta, A, Bm, Cm, Dv, z, bias, index, states = ctx.saved_tensors
        glast = rest[0] if rest else None
        grads = _launch_bwd(gy, glast, u, delta, A, Bm, Cm, Dv, z, bias, index, states,
                            ctx.block_l, ctx.softplus, ctx.merge)
        need = ctx.needs_input_grad
        out = [grads[name] if need[i] else None
               for i, name in enumerate(("u", "delta", "A", "B", "C", "D", "z", "delta_bias"))]
        return (*out, None, None, None, None, None)


def selective_scan_triton(args: ScanArgs, return_last_state: bool = False):
    """Fused Triton selective scan on the canonical layout.  Returns (y, last_state or None):
    y is (B, D, L) for merge="sum", (B, K, D, L) for "none", in u's dtype; last_state is
    (B, K, D, N) float32."""
    _check_dtypes(args)
    if args.u.shape[-1] == 0 or args.u.shape[0] == 0:
        raise ValueError("selective_scan (triton): empty batch or sequence")
    needs_grad = args.backward_can_follow()
    out = _SelectiveScanTritonFn.apply(args.u, args.delta, args.A, args.B, args.C, args.D,
                                       args.z, args.delta_bias, args.index, args.delta_softplus,
                                       args.merge, bool(return_last_state), needs_grad)
    if return_last_state:
        return out[0], out[1]
    return out, None


# ----------------------------------------------------------------------------------------------
# Memory-traffic model
# ----------------------------------------------------------------------------------------------

def _numel_bytes(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def _chunk_size(D: int, L: int, N: int, block_l: Optional[int]) -> int:
    """Explicit ``block_l``, else the chunk a forward that saves states uses for this shape."""
    return block_l if block_l is not None else _saved_chunk(D, L, N)


def fwd_bytes(args: ScanArgs, return_last_state: bool = False, save_states: bool = True,
              block_l: Optional[int] = None) -> int:
    """Minimal DRAM bytes of the forward (see the module docstring): every input read once,
    y written once in u's dtype, plus the fp32 chunk states (``save_states``: a backward will
    follow; chunk size ``block_l``, by default the one such a forward uses) or only the last
    state."""
    batch, K, dim, L, N, G = args.shape
    total = sum(_numel_bytes(t) for t in args.tensors())
    if args.index is not None:
        total += K * L * 8
    y_numel = batch * dim * L * (K if args.merge == "none" else 1)
    total += y_numel * args.u.element_size()
    if save_states:
        total += batch * K * dim * triton.cdiv(L, _chunk_size(dim, L, N, block_l)) * N * 4
    elif return_last_state:
        total += batch * K * dim * N * 4
    return total


def bwd_bytes(args: ScanArgs, block_l: Optional[int] = None) -> int:
    """Minimal DRAM bytes of the backward: inputs, chunk states and grad_y read once; the
    gradients of every tensor input written once in its dtype."""
    batch, K, dim, L, N, G = args.shape
    inputs = sum(_numel_bytes(t) for t in args.tensors())
    total = 2 * inputs  # read every input, write its gradient (same shape and dtype)
    if args.index is not None:
        total += K * L * 8
    total += batch * K * dim * triton.cdiv(L, _chunk_size(dim, L, N, block_l)) * N * 4
    y_numel = batch * dim * L * (K if args.merge == "none" else 1)
    total += y_numel * args.u.element_size()
    return total


def fwd_bwd_bytes(args: ScanArgs, block_l: Optional[int] = None) -> int:
    """Minimal bytes of a training step of the op: forward (saving chunk states) + backward."""
    return fwd_bytes(args, save_states=True, block_l=block_l) + bwd_bytes(args, block_l=block_l)
