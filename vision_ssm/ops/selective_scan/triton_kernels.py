"""Fused selective-scan (Mamba S6) Triton kernels, forward and backward.

The launchers, the autograd Function and the launch settings are in ``triton_scan.py``; the
specification is ``reference.py``.

Work split
----------
One program per (batch, direction, block of ``BLOCK_D`` channels), with the direction fastest
in the launch order so that the K programs reading the same tokens run side by side. A program
walks its direction's scan order in tiles of ``BLOCK_T`` steps. For each tile it gathers, through
the index map, ``(BLOCK_T, BLOCK_D)`` rows of the per-token tensors (a token's channels are
adjacent in memory for the token-major layouts the backbones hand over, so a row is one or two
16-byte vectors), and scans the tile across lanes and warps with ``tl.associative_scan`` over
the affine maps ``h -> a h + b`` (a = exp(dt A), b = dt B u). The state entering the tile is
folded in as ``h_t += (prod_{s<=t} a_s) h_in``; the state leaving it is the tile's last row. So
the serial chain of a program is L / BLOCK_T tiles long, not L steps.

The state dimension N is a loop inside the tile (as in mamba_ssm's CUDA kernels): for each n
the tile is scanned once and ``C_n h`` is added to the output, so registers hold
``(BLOCK_T, BLOCK_D)`` tiles whatever N is. The states carried between tiles are a
``(BLOCK_D, N_P)`` register tile.

Forward outputs: y (stored, or added with fp32 atomics when K directions are summed into one
map), the state at the end of every tile but the last (``states``, only when a backward will
follow), the last state on request, and, when a gate z is given and a backward will follow,
the output before the gate (``ypre``, so that the backward need not rescan every n for it).

Backward: tiles in reverse order. Each tile recomputes its states from the saved state at its
start (one forward scan per n), then gets the adjoint lambda_t = C_t g_t + a_{t+1} lambda_{t+1}
from one reverse scan over triples (a_t, P, beta) that carry the step's own a to the step
before (see ``_adjoint_combine``), so no shifted copy of any tile is needed. a_t h_{t-1} is
h_t - b_t. Gradients of delta (and of u, z when each direction has its own) are stored; those
of u and z shared by the K directions are added with fp32 atomics; B and C are reduced over the
channel block and added with atomics; A, D and delta_bias are summed in registers over the
whole sequence and written as per-(batch, direction) partials.
"""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice

LOG2E = 1.4426950408889634


@triton.jit
def _affine_combine(a1, b1, a2, b2):
    # (a1, b1) comes first in scan order: h -> a2 (a1 h + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _adjoint_combine(ra, rp, rb, la, lp, lb):
    # Reverse scan for lambda_t = beta_t + a_{t+1} lambda_{t+1}. A run of steps [t..s] is
    # (a_t, P = a_{t+1}..a_s, beta) with lambda_t = beta + P a_{s+1} lambda_{s+1}.
    # (ra, rp, rb) is the later run (already combined), (la, lp, lb) the earlier one.
    s = lp * ra
    return la, s * rp, lb + s * rb


@triton.jit
def _softplus(x, FAST: tl.constexpr):
    # max(x, 0) + log1p(e^-|x|); log1p by its series below 1/64 (where log(1 + e) would lose
    # e's low bits), else from the hardware log2 (FAST; the interpreter has no fast log2)
    e = tl.exp2(-tl.abs(x) * 1.4426950408889634)
    series = e * (1.0 - e * (0.5 - e * (0.3333333333333333 - 0.25 * e)))
    if FAST:
        log1p = libdevice.fast_log2f(1.0 + e) * 0.6931471805599453
    else:
        log1p = tl.log(1.0 + e)
    return tl.maximum(x, 0.0) + tl.where(e < 0.015625, series, log1p)


@triton.jit
def _column(mat, offs_n, n):
    """Column n of a (BLOCK_D, N_P) register tile."""
    return tl.sum(tl.where(offs_n[None, :] == n, mat, 0.0), axis=1)


@triton.jit
def _with_column(mat, offs_n, n, col):
    return tl.where(offs_n[None, :] == n, col[:, None], mat)


@triton.jit
def _row(x, offs_t, row):
    """Row ``row`` of a (BLOCK_T, BLOCK_D) tile."""
    return tl.sum(tl.where((offs_t == row)[:, None], x, 0.0), axis=0)


@triton.jit
def _program(K, DIM, BLOCK_D: tl.constexpr):
    """(batch, direction, first channel) of this program; the direction varies fastest."""
    pid = tl.program_id(0)
    k = pid % K
    rest = pid // K
    n_dblocks = tl.cdiv(DIM, BLOCK_D)
    return (rest // n_dblocks).to(tl.int64), k.to(tl.int64), (rest % n_dblocks) * BLOCK_D


@triton.jit
def _positions(idx_ptr, k, s_ik, t, tmask, HAS_INDEX: tl.constexpr):
    if HAS_INDEX:
        pos = tl.load(idx_ptr + k * s_ik + t, mask=tmask, other=0).to(tl.int64)
    else:
        pos = t.to(tl.int64)
    return pos


@triton.jit
def _dt(raw, m2, bias, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, FAST: tl.constexpr):
    """dt from the raw delta tile (fp32); 0 on masked steps, which then carry the state."""
    if HAS_BIAS:
        raw = raw + bias[None, :]
    if SOFTPLUS:
        dt = _softplus(raw, FAST)
    else:
        dt = raw
    return tl.where(m2, dt, 0.0)


@triton.jit
def _rows(base, s_l, pos, m2):
    return tl.load(base + pos[:, None] * s_l, mask=m2, other=0.0).to(tl.float32)


@triton.jit
def _fwd_rows(u_base, s_ul, d_base, s_dl, z_base, s_zl, B_ptr, B_base, s_Bn, s_Bl, s_Bg,
              C_ptr, C_base, s_Cn, s_Cl, s_Cg, pos, tmask, dmask, g_rows,
              HAS_Z: tl.constexpr, BC: tl.constexpr, B_SHARED: tl.constexpr, BLOCK_T: tl.constexpr):
    """The forward's per-token rows of one tile: u, delta, z, and B, C when N = 1 (``BC``)."""
    m2 = tmask[:, None] & dmask[None, :]
    u = _rows(u_base, s_ul, pos, m2)
    raw = _rows(d_base, s_dl, pos, m2)
    if HAS_Z:
        z = _rows(z_base, s_zl, pos, m2)
    else:
        z = u
    if BC:
        Bc = _load_bc(B_ptr, B_base, 0, s_Bn, s_Bl, s_Bg, pos, g_rows, tmask, m2, B_SHARED)
        Cc = _load_bc(C_ptr, C_base, 0, s_Cn, s_Cl, s_Cg, pos, g_rows, tmask, m2, B_SHARED)
    else:
        Bc = tl.zeros([BLOCK_T, 1], dtype=tl.float32)
        Cc = Bc
    return u, raw, z, Bc, Cc


@triton.jit
def _tile_positions(idx_ptr, k, s_ik, first, offs_t, SEQLEN, HAS_INDEX: tl.constexpr):
    t = first + offs_t
    tmask = (t >= 0) & (t < SEQLEN)
    return tmask, _positions(idx_ptr, k, s_ik, t, tmask, HAS_INDEX)


@triton.jit
def _bwd_rows(u_base, s_ul, d_base, s_dl, gy_base, s_gyl, z_base, s_zl, p_base, s_pl, B_ptr, B_base, s_Bn,
              s_Bl, s_Bg, C_ptr, C_base, s_Cn, s_Cl, s_Cg, pos, tmask, dmask, g_rows,
              HAS_Z: tl.constexpr, BC: tl.constexpr, B_SHARED: tl.constexpr, BLOCK_T: tl.constexpr):
    """The backward's per-token rows of one tile: u, delta, grad y, z and y before the gate, and
    B, C when N = 1 (``BC``)."""
    u, raw, z, Bc, Cc = _fwd_rows(u_base, s_ul, d_base, s_dl, z_base, s_zl, B_ptr, B_base, s_Bn, s_Bl, s_Bg,
                                  C_ptr, C_base, s_Cn, s_Cl, s_Cg, pos, tmask, dmask, g_rows,
                                  HAS_Z, BC, B_SHARED, BLOCK_T)
    m2 = tmask[:, None] & dmask[None, :]
    g = _rows(gy_base, s_gyl, pos, m2)
    if HAS_Z:
        y_pre = _rows(p_base, s_pl, pos, m2)
    else:
        y_pre = g
    return u, raw, g, z, y_pre, Bc, Cc


@triton.jit
def _load_bc(ptr, base, n, s_n, s_l, s_g, pos, g_rows, tmask, m2, B_SHARED: tl.constexpr):
    """Column n of B or C on the tile's steps: (BLOCK_T, 1) when the channel block is in one
    group (``base`` then includes the group), else (BLOCK_T, BLOCK_D)."""
    if B_SHARED:
        x = tl.load(ptr + base + n * s_n + pos[:, None] * s_l, mask=tmask[:, None], other=0.0).to(tl.float32)
    else:
        off = base + n * s_n + pos[:, None] * s_l + g_rows[None, :] * s_g
        x = tl.load(ptr + off, mask=m2, other=0.0).to(tl.float32)
    return x


@triton.jit
def _add_bc_grad(ptr, base, n, s_n, s_l, s_g, pos, g_rows, tmask, m2, val, B_SHARED: tl.constexpr):
    """Adds a (BLOCK_T, BLOCK_D) gradient of B or C (reduced over the block's channels when
    they share one group) into an fp32 buffer."""
    if B_SHARED:
        tl.atomic_add(ptr + base + n * s_n + pos * s_l, tl.sum(val, axis=1), mask=tmask, sem="relaxed")
    else:
        off = base + n * s_n + pos[:, None] * s_l + g_rows[None, :] * s_g
        tl.atomic_add(ptr + off, val, mask=m2, sem="relaxed")


@triton.jit
def _put_rows(ptr, off, val, m2, ATOMIC: tl.constexpr):
    if ATOMIC:
        tl.atomic_add(ptr + off, val, mask=m2, sem="relaxed")
    else:
        tl.store(ptr + off, val.to(ptr.dtype.element_ty), mask=m2)


@triton.jit(do_not_specialize=["SEQLEN", "s_ik"])
def selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, idx_ptr,
    y_ptr, ypre_ptr, st_ptr, last_ptr,
    s_ub, s_uk, s_ud, s_ul,
    s_db, s_dk, s_dd, s_dl,
    s_Ak, s_Ad, s_An,
    s_Bb, s_Bk, s_Bg, s_Bn, s_Bl,
    s_Cb, s_Ck, s_Cg, s_Cn, s_Cl,
    s_Dk, s_Dd,
    s_zb, s_zk, s_zd, s_zl,
    s_bk, s_bd,
    s_ik,
    s_yb, s_yk, s_yd, s_yl,
    s_pb, s_pk, s_pd, s_pl,
    s_sb, s_sk, s_sc, s_sn,
    s_lb, s_lk, s_ld, s_ln,
    K, DIM, SEQLEN, DSTATE, DPG,
    N_P: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_INDEX: tl.constexpr, Y_ATOMIC: tl.constexpr, SAVE_STATES: tl.constexpr,
    SAVE_LAST: tl.constexpr, B_SHARED: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, FAST: tl.constexpr,
):
    b, k, d0 = _program(K, DIM, BLOCK_D)
    zero = b * 0  # an int64 zero: loop counters added to it index in 64 bits
    offs_d = d0 + tl.arange(0, BLOCK_D)
    dmask = offs_d < DIM
    d64 = offs_d.to(tl.int64)
    offs_n = tl.arange(0, N_P)
    offs_t = tl.arange(0, BLOCK_T)

    A_row = A_ptr + k * s_Ak + d64 * s_Ad
    if HAS_D:
        Dv = tl.load(D_ptr + k * s_Dk + d64 * s_Dd, mask=dmask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k * s_bk + d64 * s_bd, mask=dmask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_rows = (tl.minimum(offs_d, DIM - 1) // DPG).to(tl.int64)
    g_block = (d0 // DPG).to(tl.int64)

    u_base = u_ptr + b * s_ub + k * s_uk + d64[None, :] * s_ud
    d_base = delta_ptr + b * s_db + k * s_dk + d64[None, :] * s_dd
    z_base = z_ptr + b * s_zb + k * s_zk + d64[None, :] * s_zd
    B_base = b * s_Bb + k * s_Bk
    C_base = b * s_Cb + k * s_Ck
    if B_SHARED:
        B_base += g_block * s_Bg
        C_base += g_block * s_Cg
    y_base = b * s_yb + k * s_yk + d64[None, :] * s_yd
    p_base = ypre_ptr + b * s_pb + k * s_pk + d64[None, :] * s_pd
    st_base = st_ptr + b * s_sb + k * s_sk + d64

    h = tl.zeros([BLOCK_D, N_P], dtype=tl.float32)
    n_tiles = tl.cdiv(SEQLEN, BLOCK_T)
    # software pipeline: while tile c is scanned, the rows of tile c + 1 and the index of tile
    # c + 2 are in flight
    tmask, pos = _tile_positions(idx_ptr, k, s_ik, 0, offs_t, SEQLEN, HAS_INDEX)
    tmask1, pos1 = _tile_positions(idx_ptr, k, s_ik, BLOCK_T, offs_t, SEQLEN, HAS_INDEX)
    u, raw, z, B0, C0 = _fwd_rows(u_base, s_ul, d_base, s_dl, z_base, s_zl, B_ptr, B_base, s_Bn, s_Bl, s_Bg,
                                  C_ptr, C_base, s_Cn, s_Cl, s_Cg, pos, tmask, dmask, g_rows,
                                  HAS_Z, N_P == 1, B_SHARED, BLOCK_T)
    for c in range(0, n_tiles):
        m2 = tmask[:, None] & dmask[None, :]
        tmask2, pos2 = _tile_positions(idx_ptr, k, s_ik, (c + 2) * BLOCK_T, offs_t, SEQLEN, HAS_INDEX)
        u1, raw1, z1, B1, C1 = _fwd_rows(u_base, s_ul, d_base, s_dl, z_base, s_zl, B_ptr, B_base, s_Bn, s_Bl,
                                         s_Bg, C_ptr, C_base, s_Cn, s_Cl, s_Cg, pos1, tmask1, dmask, g_rows,
                                         HAS_Z, N_P == 1, B_SHARED, BLOCK_T)
        dt = _dt(raw, m2, bias, HAS_BIAS, SOFTPLUS, FAST)
        dtu = dt * u
        if HAS_D:
            y = u * Dv[None, :]
        else:
            y = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
        carry_out = (c + 1 < n_tiles) | SAVE_LAST
        for n32 in range(0, DSTATE):
            n = n32 + zero
            A2 = tl.load(A_row + n * s_An, mask=dmask, other=0.0).to(tl.float32) * 1.4426950408889634
            if N_P == 1:
                Bn = B0
                Cn = C0
            else:
                Bn = _load_bc(B_ptr, B_base, n, s_Bn, s_Bl, s_Bg, pos, g_rows, tmask, m2, B_SHARED)
                Cn = _load_bc(C_ptr, C_base, n, s_Cn, s_Cl, s_Cg, pos, g_rows, tmask, m2, B_SHARED)
            a = tl.exp2(dt * A2[None, :])
            acum, hs = tl.associative_scan((a, dtu * Bn), axis=0, combine_fn=_affine_combine)
            hs = hs + acum * _column(h, offs_n, n)[None, :]
            y += hs * Cn
            if carry_out:
                h_end = _row(hs, offs_t, BLOCK_T - 1)
                h = _with_column(h, offs_n, n, h_end)
                if SAVE_STATES:
                    tl.store(st_base + (c + zero) * s_sc + n * s_sn, h_end, mask=dmask & (c + 1 < n_tiles))
        if HAS_Z:
            if SAVE_STATES:
                tl.store(p_base + pos[:, None] * s_pl, y.to(ypre_ptr.dtype.element_ty), mask=m2)
            y = y * (z * tl.sigmoid(z))
        _put_rows(y_ptr, y_base + pos[:, None] * s_yl, y, m2, Y_ATOMIC)
        tmask, pos, u, raw, z, B0, C0 = tmask1, pos1, u1, raw1, z1, B1, C1
        tmask1, pos1 = tmask2, pos2
    if SAVE_LAST:
        tl.store(last_ptr + b * s_lb + k * s_lk + d64[:, None] * s_ld + offs_n[None, :] * s_ln, h,
                 mask=dmask[:, None] & (offs_n[None, :] < DSTATE))


@triton.jit(do_not_specialize=["SEQLEN", "s_ik"])
def selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, idx_ptr, st_ptr, ypre_ptr,
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
    s_ik,
    s_sb, s_sk, s_sc, s_sn,
    s_pb, s_pk, s_pd, s_pl,
    s_gyb, s_gyk, s_gyd, s_gyl,
    s_glb, s_glk, s_gld, s_gln,
    s_gub, s_guk, s_gud, s_gul,
    s_gdb, s_gdk, s_gdd, s_gdl,
    s_gBb, s_gBk, s_gBg, s_gBn, s_gBl,
    s_gCb, s_gCk, s_gCg, s_gCn, s_gCl,
    s_gzb, s_gzk, s_gzd, s_gzl,
    K, DIM, SEQLEN, DSTATE, DPG,
    N_P: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_INDEX: tl.constexpr, HAS_GLAST: tl.constexpr, GU_ATOMIC: tl.constexpr,
    GZ_ATOMIC: tl.constexpr, B_SHARED: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, FAST: tl.constexpr,
):
    b, k, d0 = _program(K, DIM, BLOCK_D)
    zero = b * 0  # an int64 zero: loop counters added to it index in 64 bits
    offs_d = d0 + tl.arange(0, BLOCK_D)
    dmask = offs_d < DIM
    d64 = offs_d.to(tl.int64)
    offs_n = tl.arange(0, N_P)
    offs_t = tl.arange(0, BLOCK_T)
    dn_mask = dmask[:, None] & (offs_n[None, :] < DSTATE)

    A_row = A_ptr + k * s_Ak + d64 * s_Ad
    if HAS_D:
        Dv = tl.load(D_ptr + k * s_Dk + d64 * s_Dd, mask=dmask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k * s_bk + d64 * s_bd, mask=dmask, other=0.0).to(tl.float32)
    else:
        bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    g_rows = (tl.minimum(offs_d, DIM - 1) // DPG).to(tl.int64)
    g_block = (d0 // DPG).to(tl.int64)

    u_base = u_ptr + b * s_ub + k * s_uk + d64[None, :] * s_ud
    d_base = delta_ptr + b * s_db + k * s_dk + d64[None, :] * s_dd
    z_base = z_ptr + b * s_zb + k * s_zk + d64[None, :] * s_zd
    p_base = ypre_ptr + b * s_pb + k * s_pk + d64[None, :] * s_pd
    gy_base = gy_ptr + b * s_gyb + k * s_gyk + d64[None, :] * s_gyd
    gu_base = b * s_gub + k * s_guk + d64[None, :] * s_gud
    gd_base = gdelta_ptr + b * s_gdb + k * s_gdk + d64[None, :] * s_gdd
    gz_base = b * s_gzb + k * s_gzk + d64[None, :] * s_gzd
    B_base = b * s_Bb + k * s_Bk
    C_base = b * s_Cb + k * s_Ck
    gB_base = b * s_gBb + k * s_gBk
    gC_base = b * s_gCb + k * s_gCk
    if B_SHARED:
        B_base += g_block * s_Bg
        C_base += g_block * s_Cg
        gB_base += g_block * s_gBg
        gC_base += g_block * s_gCg
    st_base = st_ptr + b * s_sb + k * s_sk + d64

    # a_{t+1} lambda_{t+1} for the step after the tile (the first step of the tile done before);
    # past the end it is the gradient of the last state
    if HAS_GLAST:
        mu = tl.load(gl_ptr + b * s_glb + k * s_glk + d64[:, None] * s_gld + offs_n[None, :] * s_gln,
                     mask=dn_mask, other=0.0).to(tl.float32)
    else:
        mu = tl.zeros([BLOCK_D, N_P], dtype=tl.float32)
    gA_acc = tl.zeros([BLOCK_D, N_P], dtype=tl.float32)
    gD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    gb_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    ones = tl.full([BLOCK_T, BLOCK_D], 1.0, dtype=tl.float32)

    n_tiles = tl.cdiv(SEQLEN, BLOCK_T)
    # tiles in reverse order, software-pipelined like the forward
    last = (n_tiles - 1) * BLOCK_T
    tmask, pos = _tile_positions(idx_ptr, k, s_ik, last, offs_t, SEQLEN, HAS_INDEX)
    tmask1, pos1 = _tile_positions(idx_ptr, k, s_ik, last - BLOCK_T, offs_t, SEQLEN, HAS_INDEX)
    u, raw, g, z, y_pre, B0, C0 = _bwd_rows(u_base, s_ul, d_base, s_dl, gy_base, s_gyl, z_base, s_zl, p_base,
                                            s_pl, B_ptr, B_base, s_Bn, s_Bl, s_Bg, C_ptr, C_base, s_Cn, s_Cl,
                                            s_Cg, pos, tmask, dmask, g_rows, HAS_Z, N_P == 1, B_SHARED, BLOCK_T)
    for cc in range(0, n_tiles):
        c = n_tiles - 1 - cc
        m2 = tmask[:, None] & dmask[None, :]
        rows = pos[:, None]
        tmask2, pos2 = _tile_positions(idx_ptr, k, s_ik, (c - 2) * BLOCK_T, offs_t, SEQLEN, HAS_INDEX)
        u1, raw1, g1, z1, y_pre1, B1, C1 = _bwd_rows(u_base, s_ul, d_base, s_dl, gy_base, s_gyl, z_base, s_zl,
                                                     p_base, s_pl, B_ptr, B_base, s_Bn, s_Bl, s_Bg, C_ptr, C_base,
                                                     s_Cn, s_Cl, s_Cg, pos1, tmask1, dmask, g_rows, HAS_Z,
                                                     N_P == 1, B_SHARED, BLOCK_T)
        if HAS_BIAS:
            raw = raw + bias[None, :]
        dt = _dt(raw, m2, bias, False, SOFTPLUS, FAST)
        if HAS_Z:
            sz = tl.sigmoid(z)
            _put_rows(gz_ptr, gz_base + rows * s_gzl, g * y_pre * sz * (1.0 + z * (1.0 - sz)), m2, GZ_ATOMIC)
            g = g * z * sz
        dtu = dt * u
        if HAS_D:
            gu = g * Dv[None, :]
            gD_acc += tl.sum(g * u, axis=0)
        else:
            gu = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
        gdt = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
        for n32 in range(0, DSTATE):
            n = n32 + zero
            An = tl.load(A_row + n * s_An, mask=dmask, other=0.0).to(tl.float32)
            if N_P == 1:
                Bn = B0
                Cn = C0
            else:
                Bn = _load_bc(B_ptr, B_base, n, s_Bn, s_Bl, s_Bg, pos, g_rows, tmask, m2, B_SHARED)
                Cn = _load_bc(C_ptr, C_base, n, s_Cn, s_Cl, s_Cg, pos, g_rows, tmask, m2, B_SHARED)
            a = tl.exp2(dt * (An * 1.4426950408889634)[None, :])
            bu = dtu * Bn
            # states of the tile, from the saved state at its start
            h0 = tl.load(st_base + (c - 1 + zero) * s_sc + n * s_sn, mask=dmask & (c > 0), other=0.0)
            acum, hs = tl.associative_scan((a, bu), axis=0, combine_fn=_affine_combine)
            hs = hs + acum * h0[None, :]
            # adjoint: lambda_t = C_t g_t + a_{t+1} lambda_{t+1}
            _a, P, beta = tl.associative_scan((a, ones, Cn * g), axis=0, combine_fn=_adjoint_combine,
                                              reverse=True)
            lam = beta + P * _column(mu, offs_n, n)[None, :]
            if c > 0:
                mu = _with_column(mu, offs_n, n, _row(a * lam, offs_t, 0))
            ah = hs - bu  # a_t h_{t-1}
            gdt += lam * (Bn * u + An[None, :] * ah)
            gu += lam * Bn * dt
            gA_acc = _with_column(gA_acc, offs_n, n,
                                  _column(gA_acc, offs_n, n) + tl.sum(lam * ah * dt, axis=0))
            _add_bc_grad(gB_ptr, gB_base, n, s_gBn, s_gBl, s_gBg, pos, g_rows, tmask, m2, lam * dtu, B_SHARED)
            _add_bc_grad(gC_ptr, gC_base, n, s_gCn, s_gCl, s_gCg, pos, g_rows, tmask, m2, hs * g, B_SHARED)
        if SOFTPLUS:
            gdt = gdt * tl.sigmoid(raw)
        gdt = tl.where(m2, gdt, 0.0)
        gb_acc += tl.sum(gdt, axis=0)
        tl.store(gd_base + rows * s_gdl, gdt.to(gdelta_ptr.dtype.element_ty), mask=m2)
        _put_rows(gu_ptr, gu_base + rows * s_gul, gu, m2, GU_ATOMIC)
        tmask, pos, u, raw, g, z, y_pre, B0, C0 = tmask1, pos1, u1, raw1, g1, z1, y_pre1, B1, C1
        tmask1, pos1 = tmask2, pos2

    # per-(batch, direction) partials, contiguous (B, K, D, N) and (B, K, D)
    row = (b * K + k) * DIM + d64
    tl.store(gA_ptr + row[:, None] * DSTATE + offs_n[None, :], gA_acc, mask=dn_mask)
    if HAS_D:
        tl.store(gD_ptr + row, gD_acc, mask=dmask)
    if HAS_BIAS:
        tl.store(gbias_ptr + row, gb_acc, mask=dmask)
