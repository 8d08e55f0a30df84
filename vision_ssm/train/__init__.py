"""Training and validation engine: ``train(config) -> results``, ``validate(...) -> results``.

``tools/train.py`` and ``tools/validate.py`` only parse arguments (see :mod:`.cli`).
"""
from .config import TrainConfig, parse_kwargs
from .engine import train
from .evaluate import evaluate, validate

__all__ = ["train", "validate", "evaluate", "TrainConfig", "parse_kwargs"]
