"""Datasets that run anywhere: scikit-learn's digits, generated Pathfinder, an ImageFolder tree.

Every dataset returns ``(image, label)`` with ``image`` a normalised float tensor (3, S, S).
Training augmentation is a pure function of ``(seed, epoch, index)``: a dataset's
:meth:`set_epoch` picks the epoch, and nothing depends on the global random state, the number
of DataLoader workers or the number of processes.  That is what makes resumed and distributed
runs repeat an uninterrupted single-process run.
"""
from __future__ import annotations

import os
import random
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .pathfinder import PathfinderSpec, load_or_generate

__all__ = [
    "ArrayImageDataset", "SeededTransformDataset", "digits_arrays", "digits_split",
    "DIGITS_SPLIT_SEED", "DIGITS_VAL_FRACTION", "PATHFINDER_OFFSETS",
]

# The digits split never changes: stratified, 20 % validation, drawn with this seed.
DIGITS_SPLIT_SEED = 0
DIGITS_VAL_FRACTION = 0.2
# Pathfinder splits are disjoint index ranges of one generator stream.
PATHFINDER_OFFSETS = {"train": 0, "val": 1 << 30, "test": 2 << 30}


def _sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    return random.Random(f"aug:{int(seed)}:{int(epoch)}:{int(index)}")


class ArrayImageDataset(Dataset):
    """Single-channel images held in memory, values in [0, 1], shape (N, S, S).

    ``augment``: None, ``"affine"`` (small random rotation, scale and shift: digits) or
    ``"dihedral"`` (one of the 8 flips/rotations, which keep Pathfinder labels).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                 mean: Sequence[float], std: Sequence[float], augment: str | None = None,
                 seed: int = 0, in_chans: int = 3):
        if augment not in (None, "affine", "dihedral"):
            raise ValueError(f"augment must be None, 'affine' or 'dihedral', got {augment!r}")
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")
        self.classes = list(classes)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.in_chans = in_chans
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)[:in_chans]
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)[:in_chans]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def _augment(self, img: np.ndarray, index: int) -> np.ndarray:
        rng = _sample_rng(self.seed, self.epoch, index)
        size = img.shape[0]
        if self.augment == "affine":
            angle = rng.uniform(-12.0, 12.0)
            scale = rng.uniform(0.9, 1.1)
            shift = 0.08 * size
            tx, ty = rng.uniform(-shift, shift), rng.uniform(-shift, shift)
            m = cv2.getRotationMatrix2D(((size - 1) / 2.0, (size - 1) / 2.0), angle, scale)
            m[:, 2] += (tx, ty)
            return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        k = rng.randrange(8)  # dihedral
        out = np.rot90(img, k % 4)
        return np.ascontiguousarray(out.T if k >= 4 else out)

    def __getitem__(self, index: int):
        img = self.images[index]
        if self.augment is not None:
            img = self._augment(img, index)
        x = torch.from_numpy(np.array(img, dtype=np.float32, copy=True)).unsqueeze(0)
        x = x.expand(self.in_chans, -1, -1)
        return (x - self.mean) / self.std, int(self.labels[index])


class SeededTransformDataset(Dataset):
    """Applies a (timm / torchvision) transform with its random draws seeded by (seed, epoch, index).

    The transform draws from Python's ``random`` and torch's CPU generator; both are seeded per
    sample inside a fork of the random state, so the caller's random state is left untouched.
    """

    def __init__(self, base: Dataset, transform: Callable | None, seed: int = 0, deterministic: bool = True):
        self.base = base
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.deterministic = deterministic
        self.classes = list(getattr(base, "classes", []))
        self.targets = list(getattr(base, "targets", []))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        img, label = self.base[index]
        if self.transform is None:
            return img, label
        if not self.deterministic:
            return self.transform(img), label
        s = _sample_rng(self.seed, self.epoch, index).getrandbits(63)
        py_state = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                random.seed(s)
                img = self.transform(img)
        finally:
            random.setstate(py_state)
        return img, label


# -------------------------------------------------------------------------------------------
# digits

_DIGITS_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def digits_arrays(img_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as float32 (N, S, S) images in [0, 1] and int64 labels."""
    if img_size not in _DIGITS_CACHE:
        from sklearn.datasets import load_digits
        data = load_digits()
        small = data.images.astype(np.float32) / 16.0  # (N, 8, 8), values 0..16
        if img_size == 8:
            big = small
        else:
            big = np.stack([cv2.resize(im, (img_size, img_size), interpolation=cv2.INTER_LINEAR) for im in small])
        _DIGITS_CACHE[img_size] = (np.clip(big, 0.0, 1.0), data.target.astype(np.int64))
    return _DIGITS_CACHE[img_size]


def digits_split(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed stratified split of the 1797 digits: indices of ``train`` (1437) and ``val`` (360)."""
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(labels))
    train, val = train_test_split(idx, test_size=DIGITS_VAL_FRACTION, stratify=labels,
                                  random_state=DIGITS_SPLIT_SEED, shuffle=True)
    return {"train": np.asarray(train), "val": np.asarray(val)}


def pathfinder_arrays(spec: PathfinderSpec, split: str, count: int, data_seed: int,
                      cache_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    if split not in PATHFINDER_OFFSETS:
        raise ValueError(f"pathfinder split must be one of {sorted(PATHFINDER_OFFSETS)}, got {split!r}")
    out = load_or_generate(spec, data_seed, PATHFINDER_OFFSETS[split], count, cache_dir=cache_dir)
    return out["images"].astype(np.float32) / 255.0, out["labels"]
