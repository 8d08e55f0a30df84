"""Scan strategies checked against independent definitions (plain loops, numpy reshapes,
torch flatten/transpose/flip, hand-written small cases), never against their own output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scans
from scans import ScanStrategy, get_scan, list_scans, register_scan, unregister_scan

BUILTIN = ["raster", "column", "bidirectional", "cross", "oblique", "cross_oblique", "zigzag", "local",
           "atrous", "hilbert", "spiral", "random"]
# every registered strategy with its defaults, plus option variants
CONFIGS = [(name, {}) for name in list_scans()] + [
    ("zigzag", {"variant": "zigma"}),
    ("local", {"window": 1}), ("local", {"window": 2}), ("local", {"window": 3, "directions": ("col_rev", "row")}),
    ("atrous", {"stride": 1}), ("atrous", {"stride": 3}),
    ("hilbert", {"directions": 4}), ("hilbert", {"directions": 1}), ("hilbert", {"major": "longer"}),
    ("spiral", {"directions": 4}),
]
CONTINUOUS = [c for c in CONFIGS if c[0] in ("zigzag", "spiral")
              or (c[0] == "hilbert" and c[1].get("major", "auto") == "auto")]
config_ids = [f"{n}-{o}" if o else n for n, o in CONFIGS]
sides = st.integers(1, 20)
SETTINGS = settings(max_examples=25, deadline=None)


def cells(order, W):
    order = np.asarray(order)
    return np.stack(np.divmod(order, W), axis=1)  # (L, 2) rows (i, j)


def step_lengths(order, W):
    ij = cells(order, W)
    return np.abs(np.diff(ij, axis=0))  # (L-1, 2): |di|, |dj|


def as_lists(strategy, H, W):
    return strategy.orders(H, W).tolist()


def test_builtins_registered_in_order():
    assert list_scans()[: len(BUILTIN)] == BUILTIN


# ------------------------------------------------------------------ generic properties
@pytest.mark.parametrize("name,options", CONFIGS, ids=config_ids)
@SETTINGS
@given(H=sides, W=sides)
def test_orders_are_permutations(name, options, H, W):
    s = get_scan(name, **options)
    orders = s.orders(H, W)
    assert orders.dtype == torch.int64 and orders.device.type == "cpu"
    assert tuple(orders.shape) == (s.num_directions, H * W)
    assert len(s.direction_names) == s.num_directions
    for row in orders.tolist():
        assert sorted(row) == list(range(H * W))


@pytest.mark.parametrize("name,options", CONFIGS, ids=config_ids)
@SETTINGS
@given(H=sides, W=sides)
def test_gather_scatter_merge_roundtrip(name, options, H, W):
    s = get_scan(name, **options)
    K, L = s.num_directions, H * W
    x = torch.randn(2, 3, L, dtype=torch.float64)
    xs = s.gather(x, H, W)
    order = s.orders(H, W)
    assert xs.shape == (2, K, 3, L)
    for k in range(K):  # plain indexing, direction by direction
        assert torch.equal(xs[:, k], x[:, :, order[k]])
    assert s.merge_factor == K
    assert torch.allclose(s.merge_outputs(s.scatter(xs, H, W)), s.merge_factor * x)
    assert torch.allclose(s.scan_merge(xs, H, W), K * x)
    # scatter puts step t of direction k back at position order[k, t]
    y = torch.randn(2, K, 3, L, dtype=torch.float64)
    back = s.scatter(y, H, W)
    for k in range(K):
        expected = torch.empty_like(y[:, k])
        expected[:, :, order[k]] = y[:, k]
        assert torch.equal(back[:, k], expected)
    # gather of per-direction inputs (B, K, C, L)
    per_dir = torch.randn(2, K, 3, L, dtype=torch.float64)
    gathered = s.gather(per_dir, H, W)
    for k in range(K):
        assert torch.equal(gathered[:, k], per_dir[:, k][:, :, order[k]])


def test_gather_scatter_are_differentiable():
    s = get_scan("cross")
    H, W = 3, 4
    x = torch.randn(2, 3, H * W, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 4, 3, H * W, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: s.gather(t, H, W), (x,))
    assert torch.autograd.gradcheck(lambda t: s.scatter(t, H, W), (y,))
    assert torch.autograd.gradcheck(lambda t: s.scan_merge(t, H, W), (y,))


def test_mean_merge_subclass():
    class MeanCross(scans.CrossScan):
        merge = "mean"

    s = MeanCross()
    x = torch.randn(1, 2, 12, dtype=torch.float64)
    assert s.merge_factor == 1
    assert torch.allclose(s.scan_merge(s.gather(x, 3, 4), 3, 4), x)
    y = torch.randn(1, 4, 2, 12, dtype=torch.float64)
    assert torch.allclose(s.merge_outputs(y), y.mean(1))


# ------------------------------------------------------------------ continuity
@pytest.mark.parametrize("name,options", CONTINUOUS, ids=[f"{n}-{o}" if o else n for n, o in CONTINUOUS])
@SETTINGS
@given(H=sides, W=sides)
def test_continuous_scans_step_between_4_neighbours(name, options, H, W):
    s = get_scan(name, **options)
    for row in s.orders(H, W).tolist():
        assert (step_lengths(row, W).sum(axis=1) == 1).all()


def test_hilbert_auto_is_continuous_for_every_grid():
    for H in range(1, 25):
        for W in range(1, 25):
            order = scans.gilbert_order(H, W, "auto")
            assert sorted(order.tolist()) == list(range(H * W))
            assert (step_lengths(order, W).sum(axis=1) == 1).all(), (H, W)
            assert order[0] == 0


def test_hilbert_longer_has_exactly_the_documented_diagonal_step():
    for H in range(1, 25):
        for W in range(1, 25):
            order = scans.gilbert_order(H, W, "longer")
            steps = step_lengths(order, W)
            long_side, short_side = max(H, W), min(H, W)
            expected = int(long_side % 2 == 1 and short_side % 2 == 0 and short_side >= 4)
            diagonal = (steps == 1).all(axis=1)
            assert diagonal.sum() == expected, (H, W)
            assert ((steps.sum(axis=1) == 1) | diagonal).all(), (H, W)


def classical_hilbert(n):
    """Cells (row, col) of the classical Hilbert curve on an n×n grid (n a power of two)."""
    out = []
    for d in range(n * n):
        x = y = 0
        s, t = 1, d
        while s < n:
            rx = 1 & (t // 2)
            ry = 1 & (t ^ rx)
            if ry == 0:
                if rx == 1:
                    x, y = s - 1 - x, s - 1 - y
                x, y = y, x
            x, y = x + s * rx, y + s * ry
            t //= 4
            s *= 2
        out.append(y * n + x)  # x is the column, y the row
    return out


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_hilbert_power_of_two_is_classical(n):
    for major in ("auto", "longer"):
        s = get_scan("hilbert", major=major)
        assert as_lists(s, n, n) == [classical_hilbert(n), classical_hilbert(n)[::-1]]
        assert as_lists(get_scan("hilbert", directions=1, major=major), n, n) == [classical_hilbert(n)]


def test_hilbert_four_directions_add_the_transposed_curve():
    H, W = 5, 8
    s = get_scan("hilbert", directions=4)
    o = s.orders(H, W).numpy()
    assert s.direction_names == ("curve", "curve_t", "curve_rev", "curve_t_rev")
    curve_t = scans.gilbert_order(W, H)  # on the W×H grid: position a*H + b is cell (b, a) here
    expected_t = [(q % H) * W + q // H for q in curve_t.tolist()]
    assert o[1].tolist() == expected_t
    assert o[2].tolist() == o[0].tolist()[::-1] and o[3].tolist() == expected_t[::-1]


# ------------------------------------------------------------------ per-family definitions
@SETTINGS
@given(H=sides, W=sides)
def test_cross_matches_vmamba_crossscan_and_crossmerge(H, W):
    s = get_scan("cross")
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    # VMamba CrossScan
    xs = x.new_empty(2, 4, 3, H * W)
    xs[:, 0] = x.flatten(2, 3)
    xs[:, 1] = x.transpose(2, 3).flatten(2, 3)
    xs[:, 2:4] = torch.flip(xs[:, 0:2], dims=[-1])
    assert torch.equal(s.gather(x.flatten(2), H, W), xs)
    # VMamba CrossMerge on arbitrary per-direction outputs
    ys = torch.randn(2, 4, 3, H * W, dtype=torch.float64)
    y2 = ys[:, 0:2] + ys[:, 2:4].flip(dims=[-1])
    merged = y2[:, 0] + y2[:, 1].reshape(2, 3, W, H).transpose(2, 3).reshape(2, 3, H * W)
    assert torch.allclose(s.scan_merge(ys, H, W), merged)


@SETTINGS
@given(H=sides, W=sides)
def test_raster_and_bidirectional(H, W):
    L = H * W
    assert as_lists(get_scan("raster"), H, W) == [list(range(L))]
    assert as_lists(get_scan("bidirectional"), H, W) == [list(range(L)), list(range(L))[::-1]]


@SETTINGS
@given(H=sides, W=sides)
def test_oblique_rows_sorted_by_diagonal_keys(H, W):
    o = get_scan("oblique").orders(H, W).numpy()
    for row, sign in ((o[0], 1), (o[1], -1)):
        ij = cells(row, W)
        keys = [(i + sign * j, i) for i, j in ij.tolist()]
        assert keys == sorted(keys)
    assert o[2].tolist() == o[0].tolist()[::-1] and o[3].tolist() == o[1].tolist()[::-1]
    co = get_scan("cross_oblique").orders(H, W)
    assert torch.equal(co, torch.cat([get_scan("cross").orders(H, W), get_scan("oblique").orders(H, W)]))


def test_oblique_small_case():
    # 2×3 grid: 0 1 2 / 3 4 5
    assert as_lists(get_scan("oblique"), 2, 3)[:2] == [[0, 1, 3, 2, 4, 5], [2, 1, 5, 0, 4, 3]]


def snake(H, W):
    return [i * W + (j if i % 2 == 0 else W - 1 - j) for i in range(H) for j in range(W)]


def col_snake(H, W):
    return [(i if j % 2 == 0 else H - 1 - i) * W + j for j in range(W) for i in range(H)]


@SETTINGS
@given(H=sides, W=sides)
def test_zigzag_plainmamba(H, W):
    rows, cols = snake(H, W), col_snake(H, W)
    assert as_lists(get_scan("zigzag"), H, W) == [rows, rows[::-1], cols, cols[::-1]]


def test_zigzag_small_cases():
    assert as_lists(get_scan("zigzag"), 3, 3) == [
        [0, 1, 2, 5, 4, 3, 6, 7, 8], [8, 7, 6, 3, 4, 5, 2, 1, 0],
        [0, 3, 6, 7, 4, 1, 2, 5, 8], [8, 5, 2, 1, 4, 7, 6, 3, 0]]


def zigma_paths(N, M):
    """ZigMa's zigzag_path, written for an N×M (rows×columns) grid."""
    paths = []
    for r0, c0, dr, dc in [(0, 0, 1, 1), (0, M - 1, 1, -1), (N - 1, 0, -1, 1), (N - 1, M - 1, -1, -1)]:
        lr = [(r0 + dr * i) * M + c0 + dc * (j if i % 2 == 0 else M - 1 - j) for i in range(N) for j in range(M)]
        tb = [(r0 + dr * (i if j % 2 == 0 else N - 1 - i)) * M + c0 + dc * j for j in range(M) for i in range(N)]
        paths += [lr, tb]
    return paths


@SETTINGS
@given(H=sides, W=sides)
def test_zigzag_zigma(H, W):
    s = get_scan("zigzag", variant="zigma")
    assert s.num_directions == 8
    assert as_lists(s, H, W) == zigma_paths(H, W)


def local_rows_reshape(H, W, w):
    return np.arange(H * W).reshape(H // w, w, W // w, w).transpose(0, 2, 1, 3).reshape(-1).tolist()


def local_cols_reshape(H, W, w):
    # window column, window row, column in window, row in window
    return np.arange(H * W).reshape(H // w, w, W // w, w).transpose(2, 0, 3, 1).reshape(-1).tolist()


@pytest.mark.parametrize("w", [1, 2, 3, 7])
@SETTINGS
@given(hw=st.integers(1, 4), ww=st.integers(1, 4))
def test_local_multiples_match_reshape(w, hw, ww):
    H, W = hw * w, ww * w
    row, col = local_rows_reshape(H, W, w), local_cols_reshape(H, W, w)
    assert as_lists(get_scan("local", window=w), H, W) == [row, col, row[::-1], col[::-1]]


def test_local_clipped_windows_hand_written():
    # 3×5 grid, window 2:  0 1 2 3 4 / 5 6 7 8 9 / 10 11 12 13 14
    row = [0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14]
    col = [0, 5, 1, 6, 10, 11, 2, 7, 3, 8, 12, 13, 4, 9, 14]
    assert as_lists(get_scan("local", window=2), 3, 5) == [row, col, row[::-1], col[::-1]]
    # 5×3 grid, window 2:  0 1 2 / 3 4 5 / 6 7 8 / 9 10 11 / 12 13 14
    row = [0, 1, 3, 4, 2, 5, 6, 7, 9, 10, 8, 11, 12, 13, 14]
    col = [0, 3, 1, 4, 6, 9, 7, 10, 12, 13, 2, 5, 8, 11, 14]
    assert as_lists(get_scan("local", window=2, directions=("row", "col")), 5, 3) == [row, col]


def test_local_window_larger_than_grid_is_clipped():
    H, W = 3, 4
    raster = list(range(12))
    colmajor = np.arange(12).reshape(H, W).T.reshape(-1).tolist()
    assert as_lists(get_scan("local", window=7), H, W) == [raster, colmajor, raster[::-1], colmajor[::-1]]
    # clipped along one side only: window 3 on a 2×6 grid = two 2×3 windows
    assert as_lists(get_scan("local", window=3, directions=("row",)), 2, 6) == [[0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]]


def test_local_directions_option():
    s = get_scan("local", window=2, directions=("col_rev", "row"))
    assert s.direction_names == ("col_rev", "row") and s.num_directions == 2
    full = get_scan("local", window=2).orders(4, 4)
    assert torch.equal(s.orders(4, 4), full[[3, 0]])


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
@SETTINGS
@given(H=sides, W=sides)
def test_atrous_subgrids(stride, H, W):
    grid = torch.arange(H * W).reshape(H, W)
    row = torch.cat([grid[a::stride, b::stride].flatten() for a in range(stride) for b in range(stride)])
    col = torch.cat([grid.T[b::stride, a::stride].flatten() for b in range(stride) for a in range(stride)])
    o = get_scan("atrous", stride=stride).orders(H, W)
    assert torch.equal(o, torch.stack([row, col, row.flip(0), col.flip(0)]))
    counts = torch.zeros(H * W, dtype=torch.long)
    for k in range(4):
        counts.zero_().index_add_(0, o[k], torch.ones(H * W, dtype=torch.long))
        assert (counts == 1).all()  # every position exactly once


def test_atrous_small_case_and_efficientvmamba_segments():
    assert as_lists(get_scan("atrous"), 3, 3)[0] == [0, 2, 6, 8, 1, 7, 3, 5, 4]
    H, W = 6, 4
    o = get_scan("atrous").orders(H, W)
    grid = torch.arange(H * W).reshape(H, W)
    q = H * W // 4
    # EfficientVMamba ES2D's four sequences are contiguous segments of our row / col orders
    assert torch.equal(o[0, :q], grid[::2, ::2].flatten())
    assert torch.equal(o[0, q:2 * q], grid[::2, 1::2].flatten())
    assert torch.equal(o[1, q:2 * q], grid.T[::2, 1::2].flatten())
    assert torch.equal(o[1, 3 * q:], grid.T[1::2, 1::2].flatten())


def spiral_walk(H, W, first_move):
    """Walk from (0, 0), turning (clockwise for first_move right, counter-clockwise for down)
    whenever the next cell is outside the grid or already visited."""
    turns = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    if first_move == "down":
        turns = [(1, 0), (0, 1), (-1, 0), (0, -1)]
    seen, out, (i, j), d = set(), [], (0, 0), 0
    for _ in range(H * W):
        out.append(i * W + j)
        seen.add((i, j))
        for _ in range(4):
            ni, nj = i + turns[d][0], j + turns[d][1]
            if 0 <= ni < H and 0 <= nj < W and (ni, nj) not in seen:
                break
            d = (d + 1) % 4
        i, j = ni, nj
    return out


@SETTINGS
@given(H=sides, W=sides)
def test_spiral_matches_walk(H, W):
    cw, ccw = spiral_walk(H, W, "right"), spiral_walk(H, W, "down")
    assert as_lists(get_scan("spiral"), H, W) == [cw, cw[::-1]]
    s4 = get_scan("spiral", directions=4)
    assert s4.direction_names == ("cw_in", "ccw_in", "cw_in_rev", "ccw_in_rev")
    assert as_lists(s4, H, W) == [cw, ccw, cw[::-1], ccw[::-1]]


def test_spiral_small_case():
    # 3×4: 0 1 2 3 / 4 5 6 7 / 8 9 10 11
    assert as_lists(get_scan("spiral"), 3, 4)[0] == [0, 1, 2, 3, 7, 11, 10, 9, 8, 4, 5, 6]
    assert as_lists(get_scan("spiral", directions=4), 3, 4)[1] == [0, 4, 8, 9, 10, 11, 7, 3, 2, 1, 5, 6]


@pytest.mark.parametrize("name,options", CONFIGS, ids=config_ids)
def test_degenerate_grids(name, options):
    s = get_scan(name, **options)
    for H, W in ((1, 1), (1, 7), (7, 1)):
        for row in as_lists(s, H, W):
            assert sorted(row) == list(range(H * W))
    assert as_lists(s, 1, 1) == [[0]] * s.num_directions


# ------------------------------------------------------------------ caching and validation
def test_orders_are_cached_per_grid_and_device():
    s = get_scan("cross")
    a = s.orders(5, 6)
    assert s.orders(5, 6) is a
    assert s.orders(5, 6, "cpu") is a and s.orders(5, 6, torch.device("cpu")) is a
    assert s.orders(6, 5) is not a
    assert s.inverse_orders(5, 6) is s.inverse_orders(5, 6, "cpu")
    inv = s.inverse_orders(5, 6)
    for k in range(4):
        assert torch.equal(a[k][inv[k]], torch.arange(30))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_orders_cached_on_cuda():
    s = get_scan("hilbert")
    g = s.orders(4, 6, "cuda")
    assert g.is_cuda and s.orders(4, 6, "cuda") is g
    assert torch.equal(g.cpu(), s.orders(4, 6))


def test_grid_and_input_validation():
    s = get_scan("cross")
    with pytest.raises(ValueError, match="`H`"):
        s.orders(0, 3)
    with pytest.raises(TypeError, match="`W`"):
        s.orders(3, 2.5)
    with pytest.raises(ValueError, match="H\\*W=12"):
        s.gather(torch.zeros(1, 2, 11), 3, 4)
    with pytest.raises(ValueError, match="K=4"):
        s.scatter(torch.zeros(1, 3, 2, 12), 3, 4)
    with pytest.raises(ValueError, match="K=4"):
        s.merge_outputs(torch.zeros(1, 2, 2, 12))


def test_description():
    s = get_scan("local", window=3)
    assert s.num_directions == 4  # known without a grid
    assert s.name == "local" and s.options == {"window": 3, "directions": ("row", "col", "row_rev", "col_rev")}
    assert "local" in repr(s) and "window=3" in repr(s)
    for name in list_scans():
        s = get_scan(name)
        assert s.name == name and all(isinstance(d, str) and d for d in s.direction_names)
        assert len(set(s.direction_names)) == s.num_directions


@pytest.mark.parametrize("name,options,option", [
    ("local", {"window": 0}, "window"), ("local", {"window": 2.5}, "window"), ("local", {"window": True}, "window"),
    ("local", {"directions": ("row", "diag")}, "directions"), ("local", {"directions": ()}, "directions"),
    ("local", {"directions": "row"}, "directions"),
    ("atrous", {"stride": 0}, "stride"), ("atrous", {"stride": "2"}, "stride"),
    ("zigzag", {"variant": "snake"}, "variant"),
    ("hilbert", {"directions": 3}, "directions"), ("hilbert", {"major": "shorter"}, "major"),
    ("spiral", {"directions": 8}, "directions"),
    ("cross", {"window": 3}, "window"), ("local", {"windw": 3}, "windw"),
])
def test_bad_options_name_the_option(name, options, option):
    with pytest.raises((TypeError, ValueError), match=option) as info:
        get_scan(name, **options)
    assert name in str(info.value)


# ------------------------------------------------------------------ registry
def test_third_party_strategy_readme_example():
    try:
        @scans.register_scan("column_major")
        class ColumnMajor(scans.ScanStrategy):
            direction_names = ("col",)          # K = 1

            def build_orders(self, H, W):       # one permutation of range(H*W) per direction
                return [np.arange(H * W).reshape(H, W).T.reshape(-1)]

        strategy = scans.get_scan("column_major")
        assert isinstance(strategy, ColumnMajor) and strategy.name == "column_major"
        assert "column_major" in list_scans()
        assert as_lists(strategy, 2, 3) == [[0, 3, 1, 4, 2, 5]]
        x = torch.randn(1, 2, 6)
        assert torch.allclose(strategy.scan_merge(strategy.gather(x, 2, 3), 2, 3), x)
        with pytest.raises(ValueError, match="column_major.*already registered"):
            scans.register_scan("column_major")(ColumnMajor)
    finally:
        unregister_scan("column_major")
    assert "column_major" not in list_scans()


def test_factory_registration_and_bad_orders():
    class Twice(ScanStrategy):
        def __init__(self, k=2):
            super().__init__(k=k)
            self.direction_names = tuple(f"row{i}" for i in range(k))

        def build_orders(self, H, W):
            return [np.arange(H * W)] * self.num_directions

    class Broken(ScanStrategy):
        direction_names = ("bad",)

        def build_orders(self, H, W):
            return [np.zeros(H * W, dtype=np.int64)]

    class Fractional(ScanStrategy):  # a permutation once truncated: must not pass
        direction_names = ("half",)

        def build_orders(self, H, W):
            return [np.arange(H * W) + 0.5]

    try:
        register_scan("twice")(lambda k=2: Twice(k))
        register_scan("broken")(Broken)
        register_scan("fractional")(Fractional)
        with pytest.raises(ValueError, match=r"order 0 \(half\).*must hold integer positions, got dtype float64"):
            get_scan("fractional").orders(2, 2)
        s = get_scan("twice", k=3)
        assert s.num_directions == 3 and s.name == "twice"
        with pytest.raises(ValueError, match="twice.*'j'.*k"):
            get_scan("twice", j=1)
        with pytest.raises(ValueError, match="not a permutation"):
            get_scan("broken").orders(2, 2)
    finally:
        unregister_scan("twice")
        unregister_scan("broken")
        unregister_scan("fractional")


def test_registry_errors():
    with pytest.raises(ValueError) as info:
        get_scan("no_such_scan")
    for name in BUILTIN:
        assert name in str(info.value)
    with pytest.raises(TypeError):
        register_scan("not_a_strategy")(int)
    with pytest.raises(TypeError):
        register_scan("")
    assert "not_a_strategy" not in list_scans()


def test_get_scan_accepts_a_built_strategy():
    s = get_scan("atrous", stride=3)
    assert get_scan(s) is s
    with pytest.raises(ValueError, match="already built"):
        get_scan(s, stride=2)


def test_strategy_without_init_takes_no_options():
    class ColumnMajor(ScanStrategy):
        direction_names = ("col",)

        def build_orders(self, H, W):
            return [np.arange(H * W).reshape(H, W).T.reshape(-1)]

    class Declared(ColumnMajor):  # options declared explicitly, even as **options, are accepted
        def __init__(self, **options):
            super().__init__(**options)

    class MyLocal(scans.LocalScan):  # inherits LocalScan's declared options
        pass

    try:
        register_scan("column_major")(ColumnMajor)
        register_scan("declared")(Declared)
        register_scan("my_local")(MyLocal)
        with pytest.raises(ValueError, match=r"scan 'column_major' has no option 'window', 'foo'; "
                                             r"its options are: \(none\)"):
            get_scan("column_major", window=7, foo="bar")
        with pytest.raises(TypeError, match="ColumnMajor takes no options, got 'window'"):
            ColumnMajor(window=7)
        assert get_scan("column_major").options == {}
        assert get_scan("declared", tag=1).options == {"tag": 1}
        assert get_scan("my_local", window=3).window == 3
        with pytest.raises(ValueError, match="scan 'my_local' has no option 'windw'"):
            get_scan("my_local", windw=3)
    finally:
        for name in ("column_major", "declared", "my_local"):
            unregister_scan(name)


def test_factory_error_that_needs_more_arguments_is_kept_as_cause():
    class StrictError(ValueError):
        def __init__(self, option, value):
            super().__init__(f"bad {option}={value}")

    def strict(size=1):
        raise StrictError("size", size)

    try:
        register_scan("strict")(strict)
        with pytest.raises(ValueError, match="scan 'strict': bad size=3") as info:
            get_scan("strict", size=3)
        assert isinstance(info.value.__cause__, StrictError)
    finally:
        unregister_scan("strict")


@pytest.mark.parametrize("H,W,error,option", [
    (-2, 3, ValueError, "H"), (0, 3, ValueError, "H"), (3, 0, ValueError, "W"),
    (2.5, 3, TypeError, "H"), (3, True, TypeError, "W"),
])
def test_gilbert_order_validates_the_grid(H, W, error, option):
    with pytest.raises(error, match=f"`{option}` must be an int >= 1"):
        scans.gilbert_order(H, W)


def test_local_directions_from_an_iterator():
    s = scans.LocalScan(window=2, directions=(d for d in ["col", "row"]))
    assert s.direction_names == ("col", "row") and s.options["directions"] == ("col", "row")
    assert torch.equal(s.orders(4, 4), get_scan("local", window=2).orders(4, 4)[[1, 0]])
    with pytest.raises(TypeError, match="`directions` must be a sequence of names"):
        scans.LocalScan(directions=4)


def test_each_registered_name_reports_itself():
    class Unnamed(ScanStrategy):
        direction_names = ("row",)

        def build_orders(self, H, W):
            return [np.arange(H * W)]

    try:
        register_scan("cross_alias")(scans.CrossScan)
        register_scan("first")(Unnamed)
        register_scan("second")(Unnamed)
        assert get_scan("cross_alias").name == "cross_alias"
        assert get_scan("cross").name == "cross" and scans.CrossScan().name == "cross"
        assert get_scan("first").name == "first" and get_scan("second").name == "second"
        assert Unnamed().name == "first"  # the class keeps the name of its first registration
        assert "cross_alias" in repr(get_scan("cross_alias"))
    finally:
        for name in ("cross_alias", "first", "second"):
            unregister_scan(name)


def test_an_order_that_is_not_one_dimensional_is_rejected_not_flattened():
    class GridShaped(ScanStrategy):
        direction_names = ("grid",)

        def build_orders(self, H, W):
            return [np.arange(H * W).reshape(H, W)]  # a permutation once flattened: still an error

    with pytest.raises(ValueError, match=r"order 0 \(grid\).*must be 1-D with H\*W=6 positions, got shape \(2, 3\)"):
        GridShaped().orders(2, 3)
