"""The fused Triton selective scan against the sequential reference (float64), forward and
every gradient.  Without CUDA the kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1,
set below before triton is imported), so shapes are tiny; tiles are forced to 8 steps and 4
channels (on CUDA too) so that sequences span several tiles and channels several programs."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from vision_ssm.ops.selective_scan import selective_scan  # noqa: E402
from vision_ssm.ops.selective_scan.canonical import ScanArgs, canonicalize  # noqa: E402
from vision_ssm.ops.selective_scan.reference import selective_scan_ref  # noqa: E402

from scan_cases import CASES, GRAD_NAMES, _close, check_against_ref, make_case  # noqa: E402

tk = importlib.import_module("vision_ssm.ops.selective_scan.triton_kernels")
tc = importlib.import_module("vision_ssm.ops.selective_scan.triton_config")
ts = importlib.import_module("vision_ssm.ops.selective_scan.triton_scan")

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cuda" if CUDA else "cpu"
if not CUDA and not INTERPRET:
    pytest.skip("needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)



# ----------------------------------------------------------------------------------------------
# Interpreter speed-up.  Triton's interpreter evaluates a scan with a user combine function one
# *element* at a time (a Python call per element); this replacement walks the scan axis and
# applies the same combine function to whole slices, in the same order, which is the same
# computation for element-wise combine functions.  `test_fast_interpreter_scan_is_exact`
# checks it against the stock implementation.
# ----------------------------------------------------------------------------------------------

def _sliced_generic_scan(self, inputs):
    datas = [arg.handle.data for arg in inputs]
    axis = self.axis
    length = datas[0].shape[axis]

    def at(i):
        return (slice(None),) * axis + (i,)

    outs = [np.empty_like(d) for d in datas]
    acc = [d[at(0)] for d in datas]
    for o, a in zip(outs, acc):
        o[at(0)] = a
    for i in range(1, length):
        acc_t = tuple(self.to_tensor(np.asarray(a), x.dtype) for a, x in zip(acc, inputs))
        cur_t = tuple(self.to_tensor(np.asarray(d[at(i)]), x.dtype) for d, x in zip(datas, inputs))
        ret = self.combine_fn.fn(*acc_t, *cur_t)
        ret = ret if isinstance(ret, tuple) else (ret,)
        acc = [r.handle.data if isinstance(r, tl.core.tensor) else np.asarray(r) for r in ret]
        acc = [np.broadcast_to(a.reshape(o[at(i)].shape) if a.size == o[at(i)].size else a,
                               o[at(i)].shape) for a, o in zip(acc, outs)]
        for o, a in zip(outs, acc):
            o[at(i)] = a
    return [self.to_tensor(o, x.dtype) for o, x in zip(outs, inputs)]


try:
    from triton.runtime import interpreter as _interp
    _STOCK_SCAN = _interp.ScanOps.generic_scan
except (ImportError, AttributeError):  # a Triton without this internal: keep the slow path
    _interp, _STOCK_SCAN = None, None


@pytest.fixture(autouse=True)
def _small_tiles(monkeypatch):
    monkeypatch.setattr(tc, "BLOCK_T_OVERRIDE", 8)
    monkeypatch.setattr(tc, "BLOCK_D_OVERRIDE", 4)
    monkeypatch.setattr(tc, "NUM_WARPS_OVERRIDE", 1)
    if INTERPRET and _STOCK_SCAN is not None:
        monkeypatch.setattr(_interp.ScanOps, "generic_scan", _sliced_generic_scan)
    yield


# ----------------------------------------------------------------------------------------------
# Forward + backward against the reference
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name):
    cfg = dict(CASES[name])
    dtype = cfg.get("dtype", torch.float32)
    kw, names = make_case(**cfg)
    check_against_ref(kw, names, dtype)


def test_bhwc_feature_map_view():
    """A (B, H, W, C) map passed as ``x.flatten(1, 2).transpose(1, 2)`` (plain mode)."""
    gen = torch.Generator().manual_seed(3)
    batch, H, W, dim, N = 1, 3, 5, 6, 4
    L = H * W

    def bhwc():
        return torch.randn(batch, H, W, dim, generator=gen).to(DEVICE).flatten(1, 2).transpose(1, 2)

    u, z = bhwc(), bhwc()
    delta = (0.5 * torch.rand(batch, H, W, dim, generator=gen)).to(DEVICE).flatten(1, 2).transpose(1, 2)
    Bm = torch.randn(batch, L, N, generator=gen).to(DEVICE).transpose(1, 2)
    Cm = torch.randn(batch, L, N, generator=gen).to(DEVICE).transpose(1, 2)
    assert not u.is_contiguous()
    kw = dict(u=u, delta=delta, A=-0.5 * torch.rand(dim, N, generator=gen).to(DEVICE), B=Bm, C=Cm,
              D=torch.randn(dim, generator=gen).to(DEVICE), z=z,
              delta_bias=0.1 * torch.rand(dim, generator=gen).to(DEVICE), delta_softplus=True)
    names = [n for n in GRAD_NAMES if n in kw]
    for n in names:
        kw[n] = kw[n].detach().requires_grad_()
    check_against_ref(kw, names, torch.float32)


def test_grads_without_last_state_and_partial_requires_grad():
    kw, names = make_case(K=2, Ku=1, index=True, dim=4, L=11)
    for n in ("A", "C", "D"):
        kw[n] = kw[n].detach()
    names = [n for n in names if n not in ("A", "C", "D")]
    check_against_ref(kw, names, torch.float32, return_last_state=False)


def test_inference_mode_no_chunk_states():
    """Under no_grad the forward stores only the last state; results are unchanged."""
    kw, names = make_case(K=3, Ku=1, index=True, merge="none", dim=5, L=17)
    with torch.no_grad():
        y, last = selective_scan(**kw, return_last_state=True, backend="triton")
        y2 = selective_scan(**kw, return_last_state=False, backend="triton")
    ref_kw = {k: (v.detach().double() if k in names else v) for k, v in kw.items()}
    y_ref, last_ref = selective_scan(**ref_kw, return_last_state=True, backend="ref")
    _close(y, y_ref, torch.float32, "y")
    _close(y2, y_ref, torch.float32, "y (no last state)")
    _close(last, last_ref, torch.float32, "last_state")


def test_tile_states_are_the_boundary_states():
    """The saved (B, K, n_tiles - 1, N, D) states equal the reference state after each tile but the
    last, and the last state the one after the whole sequence."""
    kw, _ = make_case(K=2, Ku=1, index=True, dim=5, L=19, has_z=False)
    args, _ = canonicalize(*(kw[n].detach() for n in ("u", "delta", "A", "B", "C", "D")), None,
                           kw["delta_bias"].detach(), True, kw["index"], "sum")
    _, states, last, ypre, block_t = ts._launch_fwd(args.u, args.delta, args.A, args.B, args.C, args.D,
                                                    None, args.delta_bias, ts.int32_index(args.index), True,
                                                    "sum", True, True)
    assert block_t == 8 and states.shape == (2, 2, 2, 4, 5) and ypre is None
    for c, stop in enumerate((8, 16, 19)):  # the first `stop` steps of every direction
        ref_state = []
        for k in range(2):
            p = args.index[k, :stop]
            sub = ScanArgs(args.u[..., p].double(), args.delta[:, k:k + 1, :, p].double(),
                           args.A[k:k + 1].double(), args.B[:, k:k + 1, ..., p].double(),
                           args.C[:, k:k + 1, ..., p].double(), args.D[k:k + 1].double(), None,
                           args.delta_bias[k:k + 1].double(), True, None, "none")
            ref_state.append(selective_scan_ref(sub, True)[1])
        ref_state = torch.cat(ref_state, dim=1)  # (B, K, D, N)
        if c < 2:
            _close(states[:, :, c].transpose(-1, -2), ref_state, torch.float32, f"tile state {c}")
    _close(last, ref_state, torch.float32, "last_state")


@pytest.mark.parametrize("strategy", ["raster", "bidirectional", "cross", "oblique", "cross_oblique", "zigzag",
                                      "local", "atrous", "hilbert", "spiral"])
def test_index_maps_of_every_builtin_strategy(strategy):
    """Each built-in strategy's K orders on a 3 x 5 grid (15 steps: two tiles of 8, the second
    partial), u shared by the directions and their outputs summed, as in SS2D."""
    import scans
    index = scans.get_scan(strategy).orders(3, 5)
    K = index.shape[0]
    kw, names = make_case(batch=1, K=K, Ku=1, Kz=1, dim=4, L=15, N=2, has_z=strategy == "cross",
                          seed=len(strategy))
    kw["index"] = index.to(DEVICE)
    check_against_ref(kw, names, torch.float32)


def test_float64_is_rejected_clearly():
    kw, _ = make_case(plain=True, dim=3, L=4)
    kw = {k: (v.detach().double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
          for k, v in kw.items()}
    with pytest.raises(TypeError, match="float64"):
        selective_scan(**kw, backend="triton")


def test_block_override_must_be_power_of_two(monkeypatch):
    monkeypatch.setattr(tc, "BLOCK_T_OVERRIDE", 12)
    kw, _ = make_case(plain=True, dim=3, L=4)
    with pytest.raises(ValueError, match="VISION_SSM_SCAN_BLOCK_T"):
        selective_scan(**kw, backend="triton")


def test_env_override(monkeypatch):
    for name in ("BLOCK_T_OVERRIDE", "BLOCK_D_OVERRIDE", "NUM_WARPS_OVERRIDE"):
        monkeypatch.setattr(tc, name, None)
    monkeypatch.setenv("VISION_SSM_SCAN_BLOCK_T", "4")
    monkeypatch.setenv("VISION_SSM_SCAN_NUM_WARPS", "2")
    assert tc.choose("fwd", 8, 19, 16, 4)[::2] == (4, 2)
    monkeypatch.setenv("VISION_SSM_SCAN_BLOCK_D", "six")
    with pytest.raises(ValueError, match="VISION_SSM_SCAN_BLOCK_D"):
        tc.choose("fwd", 8, 19, 16, 4)


def test_settings_do_not_depend_on_the_length(monkeypatch):
    """Lengths of a tile or more share one setting (one compiled kernel per image size class);
    shorter sequences get the tile clipped to them, channels to the channel count; a backward
    takes its forward's tile."""
    for name in ("BLOCK_T_OVERRIDE", "BLOCK_D_OVERRIDE", "NUM_WARPS_OVERRIDE"):
        monkeypatch.setattr(tc, name, None)
    monkeypatch.setattr(tc, "interpreter_active", lambda: False)
    for pass_ in tc.PASSES:
        for N in (1, 16):
            for size in (2, 4):
                base = tc.base_config(pass_, N, size)
                assert {tc.choose(pass_, 768, L, N, size) for L in (base.block_t, 3136, 6085, 12345)} == {base}
                short = tc.choose(pass_, 3, 5, N, size)
                assert short.block_t == tc.MIN_BLOCK_T and short.block_d == 4
    assert tc.choose("bwd", 96, 3136, 1, 4, block_t=32).block_t == 32
    with pytest.raises(ValueError, match="pass"):
        tc.choose("backward", 96, 3136, 1, 4)


def test_tuned_table_is_read(tmp_path, monkeypatch):
    table = tmp_path / "tuned.json"
    table.write_text(json.dumps({"configs": {"fwd": {"n1": {"4": {"block_t": 64, "block_d": 16, "num_warps": 2}}}}}))
    monkeypatch.setattr(tc, "TABLE_PATH", table)
    assert tc.base_config("fwd", 1, 4) == (64, 16, 2)
    assert tc.base_config("fwd", 16, 4) == tc.default_config("fwd", 16, 4)  # not in the table
    table.write_text(json.dumps({"configs": {"forward": {}}}))
    tc.load_table.cache_clear()
    with pytest.raises(ValueError, match="forward"):
        tc.base_config("fwd", 1, 4)
    tc.load_table.cache_clear()


def test_launch_plan_geometry():
    """Grid, serial tiles and bytes per program for VMamba-T stage 1 at batch 32."""
    from vision_ssm.bench import kernels as bench_kernels
    shape = bench_kernels.default_shapes(32)[0]
    rows = bench_kernels.launch_plan([shape], ("fp32",), "NVIDIA H200")
    by_pass = {r["pass_"]: r for r in rows}
    for pass_, row in by_pass.items():
        assert row["sms"] == 132
        assert row["programs"] == 32 * 4 * -(-96 // row["block_d"])
        assert row["serial_tiles"] == -(-3136 // row["block_t"])
        assert row["programs_per_sm"] == pytest.approx(row["programs"] / 132)
    fwd_bytes = (32 * 96 * 3136 * (1 + 4 + 1) + 2 * 32 * 4 * 3136) * 4  # u, delta (4 directions), y; B, C
    assert by_pass["fwd"]["bytes_per_program"] * by_pass["fwd"]["programs"] == pytest.approx(fwd_bytes)
    assert by_pass["bwd"]["block_t"] == by_pass["train"]["block_t"]


def test_fast_interpreter_scan_is_exact():
    """The sliced interpreter scan used by this file gives the stock interpreter's results."""
    if not INTERPRET or _STOCK_SCAN is None:
        pytest.skip("interpreter-only helper")

    @triton.jit
    def scan_kernel(a_ptr, b_ptr, o_ptr, REV: tl.constexpr):
        d = tl.arange(0, 2)[:, None, None]
        n = tl.arange(0, 4)[None, :, None]
        t = tl.arange(0, 8)[None, None, :]
        off = d * 32 + n * 8 + t
        a = tl.load(a_ptr + off)
        b = tl.load(b_ptr + off)
        _, h = tl.associative_scan((a, b), axis=2, combine_fn=tk._affine_combine, reverse=REV)
        tl.store(o_ptr + off, h)

    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 4, 8, generator=gen), torch.randn(2, 4, 8, generator=gen)
    for rev in (False, True):
        fast, stock = torch.empty_like(a), torch.empty_like(a)
        scan_kernel[(1,)](a, b, fast, rev)
        _interp.ScanOps.generic_scan = _STOCK_SCAN
        try:
            scan_kernel[(1,)](a, b, stock, rev)
        finally:
            _interp.ScanOps.generic_scan = _sliced_generic_scan
        assert torch.equal(fast, stock)
        h, ref = torch.zeros(2, 4), torch.empty_like(a)
        for i in (range(7, -1, -1) if rev else range(8)):
            h = a[..., i] * h + b[..., i]
            ref[..., i] = h
        torch.testing.assert_close(fast, ref)


def test_dispatch_default_and_interpreter_block_sizes(monkeypatch):
    """With no override, the interpreter runs a single small setting (16 steps, 4 channels)."""
    for name in ("BLOCK_T_OVERRIDE", "BLOCK_D_OVERRIDE", "NUM_WARPS_OVERRIDE"):
        monkeypatch.setattr(tc, name, None)
    if not INTERPRET:
        pytest.skip("interpreter defaults")
    assert tc.choose("fwd", 5, 40, 16, 4) == (16, 4, 1)
    kw, names = make_case(plain=True, batch=1, dim=5, L=20, has_z=False)
    check_against_ref(kw, names, torch.float32)


# ----------------------------------------------------------------------------------------------
# CUDA only: compiled kernels with their shipped launch settings, realistic shapes
# ----------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (compiled Triton kernels)")


def _default_settings(monkeypatch):
    for name in ("BLOCK_T_OVERRIDE", "BLOCK_D_OVERRIDE", "NUM_WARPS_OVERRIDE"):
        monkeypatch.setattr(tc, name, None)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("N", [1, 16])
def test_cuda_default_settings_vs_reference(monkeypatch, dtype, N):
    _default_settings(monkeypatch)
    kw, names = make_case(batch=2, K=4, Ku=1, Kz=1, index=True, dim=96, L=197, N=N, dtype=dtype,
                          layout="permuted", seed=5)
    check_against_ref(kw, names, dtype)


@needs_cuda
@pytest.mark.cuda
def test_cuda_plain_long_sequence(monkeypatch):
    _default_settings(monkeypatch)
    kw, names = make_case(plain=True, batch=2, dim=64, L=1030, N=16, seed=7)
    check_against_ref(kw, names, torch.float32)


@needs_cuda
@pytest.mark.cuda
def test_cuda_grouped_mixed(monkeypatch):
    _default_settings(monkeypatch)
    kw, names = make_case(batch=1, K=2, dim=48, L=300, N=16, G=4, index=True, merge="none",
                          dtype=torch.bfloat16, seed=9)
    check_against_ref(kw, names, torch.bfloat16)


# ----------------------------------------------------------------------------------------------
# Random configurations (seeded, a handful of examples: the interpreter is slow)
# ----------------------------------------------------------------------------------------------

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @st.composite
    def scan_configs(draw):
        K = draw(st.integers(1, 4))
        G = draw(st.sampled_from([1, 2]))
        cfg = dict(
            batch=draw(st.integers(1, 2)), K=K, G=G,
            dim=G * draw(st.integers(1, 4)), L=draw(st.integers(1, 30)),
            N=draw(st.sampled_from([1, 2, 4, 16])),
            Ku=draw(st.sampled_from([1, K])), Kz=draw(st.sampled_from([1, K])),
            has_D=draw(st.booleans()), has_z=draw(st.booleans()), has_bias=draw(st.booleans()),
            softplus=draw(st.booleans()), index=draw(st.booleans()),
            merge=draw(st.sampled_from(["sum", "none"])),
            layout=draw(st.sampled_from(["contiguous", "permuted"])),
            dtype=draw(st.sampled_from([torch.float32, torch.bfloat16])),
            seed=draw(st.integers(0, 2 ** 16)))
        if cfg["N"] == 16:  # keep the interpreter time in check
            cfg.update(batch=1, L=min(cfg["L"], 16))
        return cfg

    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cfg=scan_configs())
    def test_random_configurations(cfg):
        kw, names = make_case(**cfg)
        check_against_ref(kw, names, cfg["dtype"])
