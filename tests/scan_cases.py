"""Selective-scan test cases shared by the backend tests: inputs in every layout the operator
accepts, and a check of a backend's forward and every gradient against the float64 reference."""
import torch

from vision_ssm.ops.selective_scan import selective_scan

TOL = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}
GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def _per_token(shape_lead, dim_sizes, L, dtype, layout, gen, scale=1.0, offset=0.0, uniform=False, device=DEVICE):
    """A tensor of logical shape (*shape_lead, *dim_sizes, L); 'permuted' stores L before the
    channel dims (a channels-last view)."""
    if layout == "permuted":
        storage = (*shape_lead, L, *dim_sizes)
        x = torch.rand(storage, generator=gen) if uniform else torch.randn(storage, generator=gen)
        nd = len(shape_lead)
        perm = list(range(nd)) + [nd + 1 + i for i in range(len(dim_sizes))] + [nd]
        x = x.permute(perm)
    else:
        full = (*shape_lead, *dim_sizes, L)
        x = torch.rand(full, generator=gen) if uniform else torch.randn(full, generator=gen)
    x = (x * scale + offset).to(dtype)
    return x.to(device)


def make_case(batch=2, K=1, dim=5, L=19, N=4, G=1, Ku=None, Kz=None, has_D=True, has_z=True,
              has_bias=True, softplus=True, dtype=torch.float32, index=False, merge="sum",
              plain=False, layout="contiguous", seed=0, device=DEVICE):
    """Returns (kwargs for selective_scan, names of the differentiable tensors)."""
    gen = torch.Generator().manual_seed(seed)
    Ku = K if Ku is None else Ku
    Kz = Ku if Kz is None else Kz
    f32 = torch.float32
    if plain:
        assert K == 1 and not index
        lead, lead_k = (batch,), ()
    else:
        lead, lead_k = (batch, K), (K,)
    u = _per_token((batch,) if (plain or Ku == 1) else (batch, Ku), (dim,), L, dtype, layout, gen, device=device)
    delta = _per_token(lead, (dim,), L, dtype, layout, gen, scale=0.5, uniform=True, device=device)
    bc_dims = (N,) if G == 1 else (G, N)
    Bm = _per_token(lead, bc_dims, L, dtype, layout, gen, device=device)
    Cm = _per_token(lead, bc_dims, L, dtype, layout, gen, device=device)
    A = (-0.5 * torch.rand((*lead_k, dim, N), generator=gen)).to(f32).to(device)
    kw = dict(u=u, delta=delta, A=A, B=Bm, C=Cm, delta_softplus=softplus, merge=merge)
    if has_D:
        kw["D"] = torch.randn((*lead_k, dim), generator=gen).to(f32).to(device)
    if has_z:
        kw["z"] = _per_token((batch,) if (plain or Kz == 1) else (batch, Kz), (dim,), L, dtype, layout, gen, device=device)
    if has_bias:
        kw["delta_bias"] = (0.1 * torch.rand((*lead_k, dim), generator=gen)).to(f32).to(device)
    if index:
        kw["index"] = torch.stack([torch.randperm(L, generator=gen) for _ in range(K)]).to(device)
    names = [n for n in GRAD_NAMES if n in kw]
    for n in names:
        kw[n] = kw[n].detach().requires_grad_()
    return kw, names


# Gradients of the per-channel parameters are sums over batch and length: an entry that cancels to
# a small value keeps the rounding of its large terms, so it is held to rtol of 1% of the tensor's
# largest entry (seen on CUDA at L = 1030: |err| 1.2 on an entry far below the max of 2.7e5).
SUMMED_GRADS = ("grad A", "grad D", "grad delta_bias")


def _close(actual, expected, dtype, what):
    rtol, atol = TOL[dtype]
    a = actual.detach().double()
    e = expected.detach().double()
    assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    err = (a - e).abs()
    scale = e.abs()
    if what in SUMMED_GRADS and e.numel():
        scale = scale.clamp_min(0.01 * scale.max())
    bound = atol + rtol * scale
    assert torch.isfinite(a).all(), f"{what}: non-finite values"
    worst = (err - bound).max().item()
    assert worst <= 0, (f"{what}: max |err| {err.max().item():.3e} exceeds atol {atol} + rtol {rtol}"
                        f" (max |ref| {e.abs().max().item():.3e})")


def check_against_ref(kw, names, dtype, return_last_state=True, grads=True, seed=1, backend="triton"):
    """Triton forward (+ backward) vs the float64 reference on the same input values."""
    y, last = selective_scan(**kw, return_last_state=True, backend=backend)
    ref_kw = {k: (v.detach().double().requires_grad_() if k in names else v) for k, v in kw.items()}
    y_ref, last_ref = selective_scan(**ref_kw, return_last_state=True, backend="ref")
    assert y.dtype == kw["u"].dtype
    assert last.dtype == torch.float32
    _close(y, y_ref, dtype, "y")
    _close(last, last_ref, torch.float32 if dtype == torch.float32 else dtype, "last_state")
    if not grads:
        return
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(y.shape, generator=gen).to(y.dtype).to(y.device)
    loss = (y * g).sum()
    loss_ref = (y_ref * g.double()).sum()
    if return_last_state:
        gl = torch.randn(last.shape, generator=gen).to(last.device)
        loss = loss + (last * gl).sum()
        loss_ref = loss_ref + (last_ref * gl.double()).sum()
    tensors = [kw[n] for n in names]
    got = torch.autograd.grad(loss, tensors)
    want = torch.autograd.grad(loss_ref, [ref_kw[n] for n in names])
    for n, t, a, e in zip(names, tensors, got, want):
        assert a.dtype == t.dtype and a.shape == t.shape, n
        _close(a, e, dtype, f"grad {n}")


CASES = {
    # plain (mamba_ssm) layout
    "plain_all_options": dict(plain=True),
    "plain_L1": dict(plain=True, batch=2, dim=3, L=1),
    "plain_N1": dict(plain=True, dim=6, L=21, N=1, has_z=False),
    "plain_N16_groups_split_block": dict(plain=True, batch=1, dim=6, L=13, N=16, G=3),
    "grouped_shared_block": dict(K=1, dim=8, L=17, G=2),
    "bare_no_D_z_bias_softplus": dict(plain=True, has_D=False, has_z=False, has_bias=False,
                                      softplus=False, L=16),
    "bias_no_softplus": dict(plain=True, batch=1, softplus=False, has_z=False, L=10),
    "bf16": dict(plain=True, dtype=torch.bfloat16, L=23, N=8),
    "fp16": dict(plain=True, batch=1, dtype=torch.float16, L=12),
    # K directions, index maps, shared u / z, merges
    "index_K2_sum_shared_u_z": dict(K=2, Ku=1, Kz=1, index=True, dim=5, L=18),
    "index_K3_none_per_direction": dict(K=3, index=True, merge="none", dim=4, L=15),
    "index_K4_sum_u_per_dir_z_shared_groups": dict(batch=1, K=4, Kz=1, G=2, dim=4, L=11, index=True),
    "K2_identity_none_shared_u": dict(K=2, Ku=1, merge="none", dim=6, L=9),
    "index_K2_none_shared_u_N16": dict(batch=1, K=2, Ku=1, index=True, merge="none", dim=4, L=10, N=16),
    "index_K4_bf16_sum_shared_u": dict(batch=1, K=4, Ku=1, index=True, dim=4, L=13, dtype=torch.bfloat16),
    # strided (channels-last) views
    "permuted_views_index_K2": dict(K=2, Ku=1, index=True, dim=6, L=14, layout="permuted", G=2),
    "permuted_views_plain": dict(plain=True, layout="permuted", dim=5, L=12),
}


