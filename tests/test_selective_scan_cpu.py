"""The fused C++ CPU backend against the sequential reference (float64): forward, last state and
every gradient, for every layout the operator accepts, the index maps of every built-in strategy,
N = 1 and 16, with and without the gate, fp32 and bf16, and a long sequence."""
import warnings

import pytest
import torch

from vision_ssm.ops.selective_scan import cpu_scan, resolve_backend, selective_scan

from scan_cases import CASES, check_against_ref, make_case

pytestmark = pytest.mark.skipif(not cpu_scan.available(), reason="the fused CPU kernel could not be built here")


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name):
    cfg = dict(CASES[name])
    dtype = cfg.get("dtype", torch.float32)
    kw, names = make_case(**cfg, device="cpu")
    check_against_ref(kw, names, dtype, backend="cpu")


@pytest.mark.parametrize("strategy", ["raster", "bidirectional", "cross", "oblique", "cross_oblique", "zigzag",
                                      "local", "atrous", "hilbert", "spiral"])
@pytest.mark.parametrize("N,gate", [(1, False), (16, True)])
def test_index_maps_of_every_builtin_strategy(strategy, N, gate):
    """Each strategy's K orders on a 9 x 15 grid (135 steps: three chunks of 64 in the backward),
    u shared by the directions and their outputs summed, as in SS2D; 20 channels (two tasks, the
    second partial)."""
    import scans
    index = scans.get_scan(strategy).orders(9, 15)
    kw, names = make_case(batch=2, K=index.shape[0], Ku=1, Kz=1, dim=20, L=135, N=N, has_z=gate,
                          layout="permuted", seed=len(strategy) + N, device="cpu")
    kw["index"] = index
    check_against_ref(kw, names, torch.float32, backend="cpu")


def test_groups_split_inside_a_task():
    """Channel groups of B / C smaller than a task's 16 channels (each channel's group differs)."""
    kw, names = make_case(batch=1, K=2, dim=24, L=70, N=3, G=6, index=True, merge="none", device="cpu")
    check_against_ref(kw, names, torch.float32, backend="cpu")


def test_long_sequence_stays_finite_and_matches_the_torch_path():
    """L = 65,536 with strong decays and long memory: finite, and equal to the torch backend."""
    gen = torch.Generator().manual_seed(0)
    L, D, N = 65536, 4, 2
    u = torch.randn(1, D, L, generator=gen)
    delta = torch.randn(1, D, L, generator=gen) * 3
    A = -torch.rand(D, N, generator=gen) * 4 - 1e-3
    Bm, Cm = torch.randn(1, N, L, generator=gen), torch.randn(1, N, L, generator=gen)
    args = (u, delta, A, Bm, Cm)
    y, last = selective_scan(*args, delta_softplus=True, return_last_state=True, backend="cpu")
    y_ref, last_ref = selective_scan(*args, delta_softplus=True, return_last_state=True, backend="torch")
    assert torch.isfinite(y).all() and torch.isfinite(last).all()
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(last, last_ref, rtol=1e-4, atol=1e-4)


def test_float64_is_rejected_with_the_argument_named():
    kw, _ = make_case(plain=True, dim=3, L=4, device="cpu")
    kw = {k: (v.detach().double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
          for k, v in kw.items()}
    with pytest.raises(TypeError, match="`u`"):
        selective_scan(**kw, backend="cpu")


def test_default_backend_on_cpu_is_the_fused_kernel():
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert resolve_backend("auto", torch.device("cpu"), torch.float64) == "torch"
    with pytest.raises(RuntimeError, match="backend='cpu'"):
        resolve_backend("cpu", torch.device("meta"))


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(cpu_scan, "_kernel", None)
    monkeypatch.setattr(cpu_scan, "_failure", None)

    def broken(**kwargs):
        raise OSError("no compiler")

    monkeypatch.setattr("torch.utils.cpp_extension.load", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not cpu_scan.available() and not cpu_scan.available()
    assert len(caught) == 1 and "no compiler" in str(caught[0].message)
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    kw, names = make_case(plain=True, dim=3, L=9, device="cpu")
    check_against_ref(kw, names, torch.float32, backend="cpu")  # served by the torch path
