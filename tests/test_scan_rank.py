"""The scan-ranking probe suite: generated tasks checked by independent means, the control scans,
the statistics against hand-computed values, and the probes' causal structure."""
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

import scans
from vision_ssm.bench import scan_rank, stats
from vision_ssm.data import probes

EIGHT = np.ones((3, 3), int)


# ------------------------------------------------------------------------------------ tasks
@pytest.mark.parametrize("tier", probes.TIERS)
def test_lines_label_is_the_number_of_segments(tier):
    data = probes.lines(200, seed=3, tier=tier)
    assert data.images.shape == (200, 1, 16, 16) and set(np.unique(data.images)) <= {0.0, 1.0}
    assert np.bincount(data.labels).tolist() == [100, 100]
    assert np.bincount(data.group).tolist() == ([200] if tier == "easy" else [50] * 4)
    for img, label, group in zip(data.images[:, 0], data.labels, data.group):
        comp, n = ndimage.label(img > 0, structure=EIGHT)
        sizes = np.bincount(comp.ravel())[1:]
        segments = np.nonzero(sizes >= 2)[0] + 1
        assert len(segments) == 1 + label                       # a gap splits the line in two
        dots = (sizes == 1).sum()
        assert dots == 0 if tier != "default" else 1 <= dots <= 6
        cells = np.argwhere(np.isin(comp, segments))
        di, dj = probes._STEPS[probes.ORIENTATIONS[group]]
        rel = cells - cells[0]
        t = rel[:, 0] if di else rel[:, 1] * dj                 # position along the line
        assert np.array_equal(rel, np.outer(t, [di, dj]))       # every lit cell on one straight line


def test_lines_lit_unlit_lit_along_the_line_only_at_the_gap():
    """Distractors keep 3 cells (Chebyshev) from every other lit cell, so the local pattern that
    marks a gap along the line's direction occurs only in broken lines."""
    data = probes.lines(400, seed=5)
    for img, label, group in zip(data.images[:, 0] > 0, data.labels, data.group):
        di, dj = probes._STEPS[probes.ORIENTATIONS[group]]
        found = 0
        for i, j in np.argwhere(img):
            i2, j2 = i + 2 * di, j + 2 * dj
            if 0 <= i2 < 16 and 0 <= j2 < 16 and img[i2, j2] and not img[i + di, j + dj]:
                found += 1
        assert found == label
        comp, _ = ndimage.label(img, structure=EIGHT)
        sizes = np.bincount(comp.ravel())
        for i, j in np.argwhere(img & (sizes[comp] == 1)):          # each distractor dot
            window = img[max(i - 2, 0):i + 3, max(j - 2, 0):j + 3]
            assert window.sum() == 1


def test_lines_distractors_are_isolated_and_pixel_count_is_uninformative():
    data = probes.lines(2000, seed=0)
    lit = data.images.sum((1, 2, 3))
    # the classes' lit-pixel counts overlap widely: a counter cannot solve the task
    lo, hi = np.percentile(lit[data.labels == 0], [10, 90])
    inside = ((lit[data.labels == 1] >= lo) & (lit[data.labels == 1] <= hi)).mean()
    assert inside > 0.6


def test_cluttered_digits_easy_tier_holds_the_labelled_digit():
    bank, targets = probes._digit_bank()
    data = probes.cluttered_digits(20, seed=1, size=20, tier="easy", split="val")
    for img, label in zip(data.images[:, 0], data.labels):
        hits = [(i, j) for i in range(13) for j in range(13)
                if any(np.array_equal(img[i:i + 8, j:j + 8], bank[k]) for k in np.nonzero(targets == label)[0])]
        assert hits, "the labelled digit is not on the canvas"
        assert img.sum() == pytest.approx(img[hits[0][0]:hits[0][0] + 8, hits[0][1]:hits[0][1] + 8].sum())


def test_digit_splits_use_disjoint_images():
    bank, _ = probes._digit_bank()
    index = {bank[k].tobytes(): k for k in range(len(bank))}
    train = probes.cluttered_digits(300, seed=0, size=12, tier="easy", split="train")
    val = probes.cluttered_digits(300, seed=0, size=12, tier="easy", split="val")

    def used(data):
        found = set()
        for img in data.images[:, 0]:
            for i in range(5):
                for j in range(5):
                    k = index.get(img[i:i + 8, j:j + 8].tobytes())
                    if k is not None:
                        found.add(k)
        return found
    assert used(train) and used(val) and not used(train) & used(val)


@pytest.mark.parametrize("tier", probes.TIERS)
def test_dots_label_counts_isolated_dots(tier):
    data = probes.count_dots(300, seed=2, tier=tier)
    for img, label in zip(data.images[:, 0], data.labels):
        comp, n = ndimage.label(img > 0, structure=EIGHT)
        assert n == img.sum()                                    # every dot isolated
        assert label == int(n > 7)


@pytest.mark.parametrize("tier", probes.TIERS)
def test_pathfinder_probe_is_the_generated_pathfinder(tier):
    from vision_ssm.data.pathfinder import generate_pathfinder, make_spec
    data = probes.pathfinder(8, seed=5, size=32, tier=tier)
    raw = generate_pathfinder(make_spec(32, "medium" if tier == "default" else "easy"), 5, 0, 8)
    assert data.images.shape == (8, 1, 32, 32) and data.images.dtype == np.float32
    np.testing.assert_array_equal(data.images[:, 0] * 255, raw["images"])
    np.testing.assert_array_equal(data.labels, raw["labels"])
    assert np.bincount(data.labels).tolist() == [4, 4]


def test_probe_data_errors_name_the_argument():
    with pytest.raises(ValueError, match="`task`"):
        probes.make_probe_data("pathfinder-x", 4, 0, 16)
    with pytest.raises(ValueError, match="`tier`"):
        probes.lines(4, 0, tier="hard")
    with pytest.raises(ValueError, match="`size`"):
        probes.lines(4, 0, size=8)
    with pytest.raises(ValueError, match="`orientations`"):
        probes.lines(4, 0, orientations=("sideways",))


def test_train_and_val_splits_differ_and_repeat():
    a = probes.make_probe_data("lines", 50, 0, 16)
    b = probes.make_probe_data("lines", 50, 0, 16)
    v = probes.make_probe_data("lines", 50, 0, 16, split="val")
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, v.images)


# ------------------------------------------------------------------------------------ control scans
def test_column_scan_walks_down_each_column():
    order = scans.get_scan("column").orders(3, 4)[0].tolist()
    assert order == [i * 4 + j for j in range(4) for i in range(3)]


def test_random_scan_is_a_seeded_permutation():
    a = scans.get_scan("random").orders(8, 8)
    b = scans.get_scan("random", seed=0).orders(8, 8)
    c = scans.get_scan("random", seed=1, directions=2).orders(8, 8)
    assert torch.equal(a, b) and c.shape == (2, 64)
    assert sorted(a[0].tolist()) == list(range(64)) and not torch.equal(a[0], c[0])
    # neighbours are far apart: the mean step distance of a raster is ~1, of a permutation ~W/1.5
    rows, cols = a[0] // 8, a[0] % 8
    assert (rows.diff().abs() + cols.diff().abs()).float().mean() > 3
    with pytest.raises(ValueError, match="`directions`"):
        scans.get_scan("random", directions=0)


# ------------------------------------------------------------------------------------ statistics
def test_holm_matches_hand_computation():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_mean_ci_is_the_t_interval():
    mean, half = stats.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))


def test_paired_tests_find_a_consistent_shift_and_friedman_agrees():
    rng = np.random.default_rng(0)
    base = rng.normal(0.7, 0.05, 6)
    scores = {"raster": base, "better": base + 0.03 + rng.normal(0, 0.002, 6), "same": base + np.array([0.01, -0.01, 0.004, -0.004, 0.002, -0.002])}
    tests = stats.paired_tests(scores, "raster")
    assert tests["better"]["p_holm"] < 0.01 and tests["better"]["diff"] == pytest.approx(0.03, abs=0.003)
    assert tests["same"]["p_holm"] > 0.05
    assert stats.friedman(scores)["p"] < 0.05
    assert stats.friedman({k: [0.5] * 4 for k in "abc"})["p"] == 1.0
    with pytest.raises(ValueError, match="`scores`"):
        stats.paired_tests({"raster": [1, 2], "x": [1]}, "raster")
    with pytest.raises(ValueError, match="`baseline`"):
        stats.paired_tests({"a": [1, 2]}, "raster")


def test_verdicts_judge_the_controls():
    seeds = [0, 1, 2, 3, 4]
    rng = np.random.default_rng(1)
    runs = []
    for seed in seeds:
        for scan, h, v in (("raster", 0.95, 0.70), ("column", 0.70, 0.95), ("random", 0.55, 0.55)):
            jitter = rng.normal(0, 0.01, 2)
            runs.append(dict(task="lines", scan=scan, seed=seed, val_acc=(h + v) / 2,
                             val_by_group={"horizontal": h + jitter[0], "vertical": v + jitter[1]}))
            runs.append(dict(task="dots", scan=scan, seed=seed, val_acc=0.8 + rng.normal(0, 0.01),
                             val_by_group={"all": 0.8}))
    result = dict(scans=["raster", "column", "random"], seeds=seeds, tasks=["lines", "dots"], runs=runs)
    verdicts = {v["claim"]: v for v in scan_rank.summarize(result)["verdicts"]}
    assert all(v["holds"] for v in verdicts.values())


def test_pathfinder_reports_solved_seeds_out_of_total():
    accs = {"raster": [0.95, 0.50, 0.91], "random": [0.50, 0.52, 0.49]}
    runs = [dict(task="pathfinder", scan=scan, seed=seed, val_acc=a, val_by_group={"all": a})
            for scan, values in accs.items() for seed, a in enumerate(values)]
    result = dict(scans=list(accs), seeds=[0, 1, 2], tasks=["pathfinder"], runs=runs)
    entry = scan_rank.summarize(result)["pathfinder"]
    assert entry["solved"] == {"raster": 2, "random": 0}          # val >= 90%
    from vision_ssm.bench import scan_rank_report
    table = "\n".join(scan_rank_report._task_table("pathfinder", entry, list(accs)))
    assert "| 2 of 3 |" in table and "| 0 of 3 |" in table


# ------------------------------------------------------------------------------------ probes
@pytest.mark.parametrize("kind", scan_rank.PROBES)
def test_ssm_dynamics_train_without_weight_decay(kind):
    model = scan_rank.build_probe(kind, "bidirectional", 2, 8)
    groups = scan_rank.param_groups(model, 1e-3, 5e-4, 0.05)
    ssm = {id(p) for p in groups[2]["params"]}
    names = [n for n, p in model.named_parameters() if id(p) in ssm]
    assert groups[2]["weight_decay"] == 0 and groups[2]["lr"] == 5e-4
    expected = 3 * 2 * (2 if kind == "vim" else 1)  # A_log, D, dt bias per direction (Vim) / stacked (VMamba)
    assert len(names) == expected, names
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize("kind", scan_rank.PROBES)
def test_shared_trunk_copies_one_direction_into_all(kind):
    models = scan_rank.shared_trunk_models(["raster", "cross"], kind, img_size=8)
    raster = dict(models["raster"].named_parameters())
    for name, p in models["cross"].named_parameters():
        ref = raster.get(scan_rank._direction0_name(name))
        assert ref is not None, name
        if p.shape == ref.shape:
            assert torch.equal(p, ref), name
        else:
            assert torch.equal(p, ref.repeat(p.shape[0] // ref.shape[0], *[1] * (p.dim() - 1))), name


@pytest.mark.parametrize("scan,before", [("raster", lambda i, j, c: i * 16 + j <= c * 16 + c),
                                         ("column", lambda i, j, c: j * 16 + i <= c * 16 + c)])
def test_one_direction_vim_probe_is_causal_along_its_scan(scan, before):
    """The centre token's receptive field is exactly the pixels at or before it in scan order."""
    models = scan_rank.shared_trunk_models([scan], "vim", img_size=16)
    erf = scan_rank.erf_maps(models, 16, images=2)[scan]
    c = 8
    mask = np.array([[before(i, j, c) for j in range(16)] for i in range(16)])
    assert erf[~mask].max() == 0.0
    assert (erf[mask] > 0).mean() > 0.9


def test_training_learns_an_easy_task():
    s = scan_rank.TaskSettings(size=16, steps=60, batch=32, train_samples=600, val_samples=300, lr=3e-3)
    train = probes.make_probe_data("dots", s.train_samples, 0, 16, tier="easy")
    val = probes.make_probe_data("dots", s.val_samples, 0, 16, tier="easy", split="val")
    torch.manual_seed(0)
    result = scan_rank.train_probe(scan_rank.build_cnn(2, width=8), train, val, s, seed=0)
    assert result["val_acc"] > 0.9 and len(result["losses"]) == 10


def _constant_label_data(label: int, count: int = 256) -> probes.ProbeData:
    rng = np.random.default_rng(label)
    images = rng.random((count, 1, 8, 8)).astype(np.float32)
    return probes.ProbeData(images, np.full(count, label, np.int64), np.zeros(count, np.int64), 2)


def test_curriculum_draws_from_start_data_then_switches():
    # start data all label 0, task data all label 1: the loss falls, then jumps at the switch (30%)
    s = scan_rank.TaskSettings(size=8, steps=60, train_samples=256, val_samples=256, curriculum=0.3)
    start, train = _constant_label_data(0), _constant_label_data(1)
    torch.manual_seed(0)
    losses = scan_rank.train_probe(scan_rank.build_cnn(2, width=4), train, train, s, seed=0, start=start)["losses"]
    assert losses[2] < losses[0] < 1.0 < losses[3]
    s.curriculum = 1.0
    result = scan_rank.train_probe(scan_rank.build_cnn(2, width=4), train, train, s, seed=0, start=start)
    assert result["val_acc"] == 0.0                              # never saw the task's label


def test_curriculum_needs_start_data():
    s = scan_rank.TaskSettings(size=8, steps=4, curriculum=0.5)
    data = _constant_label_data(1, 8)
    with pytest.raises(ValueError, match="`start`"):
        scan_rank.train_probe(scan_rank.build_cnn(2, width=4), data, data, s, seed=0)


def test_tool_writes_results_and_tables(tmp_path):
    import subprocess
    import sys
    out = tmp_path / "rank"
    cmd = [sys.executable, "tools/rank_scans.py", "--quick", "--tasks", "dots", "--scans", "raster", "random",
           "--seeds", "0", "1", "--scale", "0.02", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "rank_scans.json").read_text())
    assert {(r["scan"], r["seed"]) for r in result["runs"]} == {(s, k) for s in ("raster", "random") for k in (0, 1)}
    assert "dots" in result["summary"] and (out / "rank_scans_erf.png").stat().st_size > 0
    assert "| `random` |" in (out / "rank_scans.md").read_text()
    bad = subprocess.run(cmd[:4] + ["--scans", "nope"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--scans" in bad.stderr
