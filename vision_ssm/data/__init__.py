"""Data that runs anywhere: scikit-learn's digits, generated Pathfinder, ImageFolder trees.

``create_dataset(name_or_dir, split, img_size, seed, ...)`` is the single entry point;
``create_loader`` and ``set_loader_epoch`` give per-epoch deterministic data order for one or
many processes, and ``create_mixup`` wraps timm's Mixup/CutMix.
"""
from .datasets import (DIGITS_SPLIT_SEED, DIGITS_VAL_FRACTION, PATHFINDER_OFFSETS, ArrayImageDataset,
                       SeededTransformDataset, digits_arrays, digits_split)
from .factory import (BUILTIN_DATASETS, PATHFINDER_DEFAULT_SAMPLES, ShardSampler, count_classes, create_dataset,
                      create_loader, create_mixup, dataset_num_classes, resolve_split_dir, set_loader_epoch)
from .pathfinder import DIFFICULTIES, PathfinderSpec, generate_pathfinder, generate_sample, make_spec

__all__ = [
    "create_dataset", "count_classes", "create_loader", "set_loader_epoch", "create_mixup", "dataset_num_classes",
    "resolve_split_dir", "ShardSampler", "ArrayImageDataset", "SeededTransformDataset",
    "BUILTIN_DATASETS", "PATHFINDER_DEFAULT_SAMPLES", "PATHFINDER_OFFSETS", "DIGITS_SPLIT_SEED",
    "DIGITS_VAL_FRACTION", "digits_arrays", "digits_split", "PathfinderSpec", "DIFFICULTIES",
    "make_spec", "generate_sample", "generate_pathfinder",
]
