"""The selective scan in index mode, fed a strategy's orders, equals an explicit per-direction
pipeline written with plain torch indexing: gather -> plain-mode reference scan -> inverse
permutation -> sum, in value and in gradient."""
from __future__ import annotations

import importlib.util
import zlib

import pytest
import torch

from scans import get_scan, list_scans
from vision_ssm.ops import selective_scan

BACKENDS = ["ref"]
if importlib.util.find_spec("vision_ssm.ops.selective_scan.chunked") is not None:
    BACKENDS.append("torch")
TOL = {"ref": dict(rtol=1e-10, atol=1e-12), "torch": dict(rtol=1e-8, atol=1e-10)}

CONFIGS = [(name, {}) for name in list_scans()] + [
    ("local", {"window": 2}), ("zigzag", {"variant": "zigma"}), ("atrous", {"stride": 3}),
    ("hilbert", {"directions": 4}), ("spiral", {"directions": 4}),
]
GRIDS = [(3, 4), (5, 2)]
Bsz, Dm, N = 2, 3, 2


def make_inputs(K, L, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    return {
        "u": r(Bsz, Dm, L),
        "delta": r(Bsz, K, Dm, L) * 0.5,
        "A": -torch.rand(K, Dm, N, generator=g, dtype=torch.float64) - 0.2,
        "B": r(Bsz, K, N, L),
        "C": r(Bsz, K, N, L),
        "D": r(K, Dm),
        "delta_bias": r(K, Dm) * 0.3,
    }


def explicit(inputs, order):
    """Per direction: plain-mode reference scan over the gathered sequence, scattered back."""
    ys = []
    for k in range(order.shape[0]):
        idx = order[k]
        inv = torch.argsort(idx)
        y = selective_scan(inputs["u"][:, :, idx], inputs["delta"][:, k][:, :, idx], inputs["A"][k],
                           inputs["B"][:, k][:, :, idx], inputs["C"][:, k][:, :, idx], D=inputs["D"][k],
                           delta_bias=inputs["delta_bias"][k], delta_softplus=True, backend="ref")
        ys.append(y[:, :, inv])  # back to image order
    return torch.stack(ys, dim=1)  # (B, K, D, L)


def indexed(inputs, strategy, H, W, backend, merge):
    return selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], D=inputs["D"],
                          delta_bias=inputs["delta_bias"], delta_softplus=True,
                          index=strategy.orders(H, W, inputs["u"].device), merge=merge, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,W", GRIDS)
@pytest.mark.parametrize("name,options", CONFIGS, ids=[f"{n}-{o}" if o else n for n, o in CONFIGS])
def test_index_mode_matches_explicit_gather_scan_scatter(name, options, H, W, backend):
    strategy = get_scan(name, **options)
    K, L = strategy.num_directions, H * W
    order = strategy.orders(H, W)
    inputs = make_inputs(K, L, seed=zlib.crc32(f"{name}{options}{H}{W}".encode()))
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    leaves_ref = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}

    y = indexed(leaves, strategy, H, W, backend, merge="sum")
    y_dirs_ref = explicit(leaves_ref, order)
    y_ref = y_dirs_ref.sum(1)
    assert y.shape == (Bsz, Dm, L)
    torch.testing.assert_close(y, y_ref, **TOL[backend])

    grad_out = torch.randn(Bsz, Dm, L, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    grads = torch.autograd.grad(y, list(leaves.values()), grad_out)
    grads_ref = torch.autograd.grad(y_ref, list(leaves_ref.values()), grad_out)
    for key, g, g_ref in zip(leaves, grads, grads_ref):
        torch.testing.assert_close(g, g_ref, **TOL[backend], msg=lambda m, key=key: f"grad of {key}: {m}")

    with torch.no_grad():
        y_none = indexed(inputs, strategy, H, W, backend, merge="none")
        torch.testing.assert_close(y_none, y_dirs_ref.detach(), **TOL[backend])
        # the strategy's own torch-side pipeline agrees too: gather, scan in order, scan_merge
        xs = strategy.gather(inputs["u"], H, W)
        in_order = lambda t: strategy.gather(t, H, W)  # noqa: E731  (B, K, *, L) per direction
        ys = torch.stack([
            selective_scan(xs[:, k], in_order(inputs["delta"])[:, k], inputs["A"][k], in_order(inputs["B"])[:, k],
                           in_order(inputs["C"])[:, k], D=inputs["D"][k], delta_bias=inputs["delta_bias"][k],
                           delta_softplus=True, backend="ref")
            for k in range(K)], dim=1)
        torch.testing.assert_close(strategy.scan_merge(ys, H, W), y_ref.detach(), **TOL["ref"])
