"""Data: digits split, generated Pathfinder (determinism, balance, labels by flood fill), ImageFolder, loaders."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from vision_ssm.data import (DIGITS_SPLIT_SEED, create_dataset, create_loader, digits_arrays, digits_split,
                             generate_pathfinder, generate_sample, make_spec, set_loader_epoch)
from vision_ssm.data.pathfinder import load_or_generate

EIGHT = np.ones((3, 3), bool)  # 8-connectivity


# ------------------------------------------------------------------------------------ digits
def test_digits_split_fixed_disjoint_stratified():
    _, labels = digits_arrays(8)
    a, b = digits_split(labels), digits_split(labels)
    assert DIGITS_SPLIT_SEED == 0
    assert len(a["train"]) == 1437 and len(a["val"]) == 360
    np.testing.assert_array_equal(a["train"], b["train"])
    np.testing.assert_array_equal(a["val"], b["val"])
    assert not set(a["train"]) & set(a["val"])
    assert sorted(np.concatenate([a["train"], a["val"]]).tolist()) == list(range(1797))
    # stratified: every class has ~20 % of its samples in val
    for c in range(10):
        n_val = int((labels[a["val"]] == c).sum())
        n_all = int((labels == c).sum())
        assert abs(n_val - 0.2 * n_all) <= 1


@pytest.mark.parametrize("size", [16, 32])
def test_digits_dataset_shapes_classes(size):
    train = create_dataset("digits", "train", size, seed=0)
    val = create_dataset("digits", "val", size)
    assert len(train) == 1437 and len(val) == 360
    assert train.num_classes == 10 and train.classes == [str(i) for i in range(10)]
    x, y = val[0]
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert 0 <= y < 10
    assert set(np.unique(val.labels)) == set(range(10))
    # val: no augmentation, identical every time
    assert torch.equal(val[3][0], val[3][0])


def test_digits_augmentation_is_a_function_of_seed_epoch_index():
    a = create_dataset("digits", "train", 16, seed=1, num_samples=8)
    b = create_dataset("digits", "train", 16, seed=1, num_samples=8)
    c = create_dataset("digits", "train", 16, seed=2, num_samples=8)
    assert torch.equal(a[5][0], b[5][0])
    assert not torch.equal(a[5][0], c[5][0])
    first = a[5][0]
    a.set_epoch(1)
    assert not torch.equal(first, a[5][0])
    a.set_epoch(0)
    assert torch.equal(first, a[5][0])


def test_digits_subset_errors():
    assert len(create_dataset("digits", "val", 8, num_samples=10)) == 10
    with pytest.raises(ValueError, match="360"):
        create_dataset("digits", "val", 8, num_samples=1000)


# -------------------------------------------------------------------------------- pathfinder
def test_pathfinder_deterministic_by_seed_and_index():
    spec = make_spec(32, "medium")
    a = generate_pathfinder(spec, seed=0, start=0, count=24)
    b = generate_pathfinder(spec, seed=0, start=0, count=24)
    c = generate_pathfinder(spec, seed=1, start=0, count=24)
    for k in ("images", "labels", "dots"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["images"], c["images"])
    # a sample depends on (seed, index) only, not on the batch it is generated in
    np.testing.assert_array_equal(generate_sample(spec, 0, 17)["image"], a["images"][17])
    tail = generate_pathfinder(spec, seed=0, start=10, count=4)
    np.testing.assert_array_equal(tail["images"], a["images"][10:14])


def test_pathfinder_labels_balanced():
    spec = make_spec(32, "easy")
    labels = generate_pathfinder(spec, seed=3, start=0, count=100)["labels"]
    assert labels.sum() == 50
    # every aligned pair holds one of each class
    assert np.all(labels[0::2] + labels[1::2] == 1)
    other = generate_pathfinder(spec, seed=4, start=0, count=100)["labels"]
    assert not np.array_equal(labels, other)  # the order within pairs is random


@pytest.mark.parametrize("size,difficulty", [(32, "trivial"), (32, "medium"), (32, "hard"), (64, "hard"),
                                             (128, "easy")])
def test_pathfinder_labels_true_by_independent_flood_fill(size, difficulty):
    spec = make_spec(size, difficulty)
    n = 24 if size < 128 else 8
    data = generate_pathfinder(spec, seed=7, start=0, count=n, with_masks=True)
    r = spec.bridge_radius
    square = np.ones((2 * r + 1, 2 * r + 1), bool)
    n_curves = 1 + spec.num_distractors
    for img, mask, label, dots in zip(data["images"], data["masks"], data["labels"], data["dots"]):
        (x0, y0), (x1, y1) = dots
        assert img[y0, x0] == 255 and img[y1, x1] == 255
        # the picture: dashes joined by a dilation that the gap bound guarantees
        bridged, count = ndimage.label(ndimage.binary_dilation(img > 0, structure=square), structure=EIGHT)
        assert count == n_curves, "each curve must be exactly one component after bridging its gaps"
        assert (bridged[y0, x0] == bridged[y1, x1]) == bool(label)
        # the gap-free rendering says the same
        comps, count = ndimage.label(mask > 0, structure=EIGHT)
        assert count == n_curves
        assert (comps[y0, x0] == comps[y1, x1]) == bool(label)
        # dashes really are dashed: without bridging a curve falls apart (the trivial level's
        # 1-px gaps may touch diagonally, so there it need not)
        _, raw = ndimage.label(img > 0, structure=EIGHT)
        assert raw > n_curves or difficulty == "trivial"


def test_pathfinder_speed_and_cache(tmp_path):
    import time
    spec = make_spec(32, "medium")
    t = time.perf_counter()
    first = load_or_generate(spec, 0, 0, 300, cache_dir=tmp_path)
    elapsed = time.perf_counter() - t
    assert elapsed < 30, f"300 samples took {elapsed:.1f}s"
    assert len(list(tmp_path.glob("pathfinder-*.npz"))) == 1
    again = load_or_generate(spec, 0, 0, 300, cache_dir=tmp_path)
    np.testing.assert_array_equal(first["images"], again["images"])


def test_pathfinder_dataset_splits_and_errors():
    tr = create_dataset("pathfinder", "train", 32, num_samples=10, difficulty="easy")
    va = create_dataset("pathfinder", "val", 32, num_samples=10, difficulty="easy")
    assert tr.num_classes == 2 and len(tr) == 10
    assert tr[0][0].shape == (3, 32, 32)
    assert not np.array_equal(tr.images, va.images)  # disjoint index ranges
    with pytest.raises(ValueError, match="difficulty"):
        create_dataset("pathfinder", "train", 32, num_samples=4, difficulty="impossible")
    with pytest.raises(ValueError, match="img_size"):
        make_spec(8, "easy")


# ------------------------------------------------------------------------------- ImageFolder
def _make_folder(root, classes=("a", "b"), per_class=3, size=20):
    import cv2
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return root


def test_image_folder(tmp_path):
    root = _make_folder(tmp_path / "data")
    train = create_dataset(str(root), "train", 16, seed=0)
    val = create_dataset(str(root), "val", 16)
    assert len(train) == 6 and train.num_classes == 2
    x, y = val[0]
    assert x.shape == (3, 16, 16) and y in (0, 1)
    # training transforms are seeded per (seed, epoch, index) and leave the global RNG alone
    state = torch.get_rng_state()
    a = train[2][0]
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a, train[2][0])


def test_missing_data_dir_errors(tmp_path):
    with pytest.raises(ValueError, match="--data-dir .*does not exist"):
        create_dataset(str(tmp_path / "nope"), "train", 16)
    (tmp_path / "only" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no 'val' subfolder"):
        create_dataset(str(tmp_path / "only"), "val", 16)
    with pytest.raises(ValueError, match="did you mean digits"):
        create_dataset("digit", "train", 16)


# ------------------------------------------------------------------------------------ loaders
def test_loader_order_per_epoch_and_shards():
    ds = create_dataset("digits", "val", 8, num_samples=32)

    def order(loader, epoch):
        set_loader_epoch(loader, epoch, seed=5)
        return torch.cat([y for _, y in loader]).tolist()

    one = create_loader(ds, 8, True, seed=5)
    assert order(one, 0) == order(one, 0)
    assert order(one, 0) != order(one, 1)
    # two processes of batch 4 see, step by step, the samples of one process of batch 8
    single = [set(torch.arange(len(ds))[i].tolist()) for i in _index_batches(ds, 8, 0, 1)]
    r0 = _index_batches(ds, 4, 0, 2)
    r1 = _index_batches(ds, 4, 1, 2)
    assert [set(a) | set(b) for a, b in zip(r0, r1)] == single
    # evaluation shards cover every sample exactly once
    ev = [create_loader(ds, 5, False, rank=r, world_size=3) for r in range(3)]
    assert sorted(i for loader in ev for i in loader.sampler) == list(range(len(ds)))


def _index_batches(ds, batch, rank, world):
    loader = create_loader(ds, batch, True, seed=5, rank=rank, world_size=world)
    set_loader_epoch(loader, 0, seed=5)
    idx = list(loader.sampler)
    return [idx[i:i + batch] for i in range(0, len(idx) - batch + 1, batch)]
