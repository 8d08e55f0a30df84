"""One factory for every dataset, plus loaders and mixup, in timm's style."""
from __future__ import annotations

import difflib
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .datasets import (ArrayImageDataset, SeededTransformDataset, digits_arrays, digits_split,
                       pathfinder_arrays)
from .pathfinder import make_spec

__all__ = [
    "BUILTIN_DATASETS", "PATHFINDER_DEFAULT_SAMPLES", "create_dataset", "create_loader",
    "set_loader_epoch", "create_mixup", "ShardSampler", "resolve_split_dir", "count_classes",
    "dataset_num_classes",
]

BUILTIN_DATASETS = ("digits", "pathfinder")
PATHFINDER_DEFAULT_SAMPLES = {"train": 5000, "val": 1000, "test": 1000}
_SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "validation", "valid"), "test": ("test",)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_split_dir(root: str | os.PathLike, split: str) -> str:
    """``root/<split>`` (``val`` also as ``validation``/``valid``), with a clear error when missing."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(
            f"--data-dir {root!r} does not exist or is not a directory (expected an ImageFolder tree "
            f"with train/ and val/ subfolders, or use --dataset {'|'.join(BUILTIN_DATASETS)})")
    for name in _SPLIT_ALIASES.get(split, (split,)):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    raise ValueError(
        f"--data-dir {root!r} has no {split!r} subfolder (looked for {list(_SPLIT_ALIASES.get(split, (split,)))}; "
        f"found {found}): an ImageFolder tree needs <data-dir>/train/<class>/*.png and <data-dir>/val/<class>/*.png")


def create_dataset(
        name_or_dir: str | os.PathLike,
        split: str = "train",
        img_size: int = 32,
        seed: int = 0,
        *,
        augment: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        num_samples: int | None = None,
        data_seed: int = 0,
        difficulty: str | int | Mapping[str, Any] = "medium",
        cache_dir: str | os.PathLike | None = None,
        in_chans: int = 3,
        interpolation: str = "bicubic",
        crop_pct: float | None = None,
) -> Dataset:
    """A dataset by name (``digits``, ``pathfinder``) or ImageFolder root directory.

    Args:
        name_or_dir: ``"digits"`` (scikit-learn's 1797 8x8 digits, resized), ``"pathfinder"``
            (generated, see :mod:`vision_ssm.data.pathfinder`) or a directory with ``train/`` and
            ``val/`` ImageFolder subtrees.
        split: ``"train"`` or ``"val"`` (pathfinder also ``"test"``).
        img_size: output resolution S; images are (3, S, S) tensors.
        seed: seed of the training augmentation (a sample's augmentation depends only on
            ``(seed, epoch, index)``; see ``set_epoch``).
        augment: augment the ``train`` split (digits: small affine jitter; pathfinder: dihedral
            flips/rotations; folders: timm's train transform).  Other splits are never augmented.
        mean, std: normalisation (default ImageNet's, as for timm models).
        num_samples: digits: use the first N samples of the split; pathfinder: generate N
            (default 5000 train / 1000 val); folders: an error (they are used whole).
        data_seed: pathfinder generation seed (the data stay fixed when ``seed`` changes).
        difficulty: pathfinder difficulty (``easy``/``medium``/``hard``, 0/1/2, or a dict of
            :class:`~vision_ssm.data.pathfinder.PathfinderSpec` fields).
        cache_dir: pathfinder: cache generated arrays as .npz files here.
    """
    mean = tuple(mean) if mean is not None else IMAGENET_MEAN
    std = tuple(std) if std is not None else IMAGENET_STD
    img_size = int(img_size)
    if img_size < 1:
        raise ValueError(f"--img-size must be a positive integer, got {img_size}")
    train_aug = bool(augment) and split == "train"
    name = os.fspath(name_or_dir)
    key = name.lower()
    if key == "digits":
        if split not in ("train", "val"):
            raise ValueError(f"digits has splits 'train' and 'val', got {split!r}")
        images, labels = digits_arrays(img_size)
        idx = digits_split(labels)[split]
        if num_samples is not None:
            if not 0 < num_samples <= len(idx):
                raise ValueError(f"digits {split} has {len(idx)} samples; asked for {num_samples}")
            idx = idx[:num_samples]
        return ArrayImageDataset(images[idx], labels[idx], [str(d) for d in range(10)], mean, std,
                                 augment="affine" if train_aug else None, seed=seed, in_chans=in_chans)
    if key == "pathfinder":
        count = int(num_samples) if num_samples is not None else PATHFINDER_DEFAULT_SAMPLES.get(split, 1000)
        if count < 1:
            raise ValueError(f"pathfinder needs at least one sample, got {count}")
        spec = make_spec(img_size, difficulty)
        images, labels = pathfinder_arrays(spec, split, count, data_seed, cache_dir)
        return ArrayImageDataset(images, labels, ["disconnected", "connected"], mean, std,
                                 augment="dihedral" if train_aug else None, seed=seed, in_chans=in_chans)
    if not os.path.exists(name) and os.sep not in name and "." not in name:
        close = difflib.get_close_matches(key, BUILTIN_DATASETS, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ValueError(
            f"unknown dataset {name!r}{hint}: expected one of {list(BUILTIN_DATASETS)} or an existing "
            f"ImageFolder directory (--data-dir)")
    if num_samples is not None:
        raise ValueError(f"a sample count ({num_samples}) applies to digits and pathfinder, not to the ImageFolder "
                         f"tree {name!r}, which is used whole")
    return _image_folder(name, split, img_size, seed, train_aug, mean, std, interpolation, crop_pct)


def _image_folder(root, split, img_size, seed, train_aug, mean, std, interpolation, crop_pct):
    from timm.data import create_transform
    from torchvision.datasets import ImageFolder

    split_dir = resolve_split_dir(root, split)
    transform = create_transform(
        input_size=(3, img_size, img_size), is_training=train_aug, interpolation=interpolation,
        mean=mean, std=std, crop_pct=crop_pct)
    base = ImageFolder(split_dir)
    if len(base) == 0:
        raise ValueError(f"--data-dir: {split_dir!r} holds no images")
    return SeededTransformDataset(base, transform, seed=seed)


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank r of w takes indices r, r+w, r+2w, ... (no padding, no repeats)."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.length, self.rank, self.world_size = int(length), int(rank), int(world_size)

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def create_loader(
        dataset: Dataset,
        batch_size: int,
        is_training: bool,
        seed: int = 0,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose order is a function of ``(seed, epoch)`` only (call :func:`set_loader_epoch`).

    Training uses a :class:`DistributedSampler` (also with one process), so that with ``w``
    processes of batch ``b`` step ``k`` sees the same samples as one process with batch ``w*b``
    (when the dataset size is a multiple of ``w``); incomplete last batches are dropped.
    Evaluation shards the dataset without padding, so every sample counts exactly once.
    """
    if is_training:
        sampler: Sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                              seed=seed, drop_last=False)
    else:
        sampler = ShardSampler(len(dataset), rank, world_size)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=is_training, pin_memory=pin_memory, generator=generator,
                      persistent_workers=False)


def set_loader_epoch(loader: DataLoader, epoch: int, seed: int = 0) -> None:
    """Sets the epoch of the sampler, of the dataset's augmentation and of the worker seeds."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(int(seed) * 100_003 + int(epoch))


def create_mixup(mixup: float = 0.0, cutmix: float = 0.0, smoothing: float = 0.0, num_classes: int = 10,
                 prob: float = 1.0, switch_prob: float = 0.5, mode: str = "batch", cutmix_minmax=None):
    """timm's :class:`~timm.data.Mixup` when ``mixup`` or ``cutmix`` is on, else None."""
    if mixup <= 0 and cutmix <= 0 and cutmix_minmax is None:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, cutmix_minmax=cutmix_minmax, prob=prob,
                 switch_prob=switch_prob, mode=mode, label_smoothing=smoothing, num_classes=num_classes)


def count_classes(name_or_dir: str | os.PathLike, split: str = "train") -> int:
    """Number of classes of a dataset name or ImageFolder root, without loading any image."""
    name = os.fspath(name_or_dir)
    if name.lower() == "digits":
        return 10
    if name.lower() == "pathfinder":
        return 2
    if not os.path.exists(name) and os.sep not in name and "." not in name:
        create_dataset(name, split)  # raises the unknown-dataset error
    from torchvision.datasets.folder import find_classes
    classes, _ = find_classes(resolve_split_dir(name, split))
    if not classes:
        raise ValueError(f"--data-dir {name!r}: {split}/ has no class subfolders")
    return len(classes)


def dataset_num_classes(dataset: Dataset) -> int:
    classes = getattr(dataset, "classes", None)
    if classes:
        return len(classes)
    labels = getattr(dataset, "targets", None)
    return int(np.max(labels)) + 1 if labels else 0
