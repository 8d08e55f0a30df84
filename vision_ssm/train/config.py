"""Training configuration: one dataclass, the single source of defaults for Python and the CLI.

Field names follow timm's ``train.py`` flags (``--batch-size`` is ``batch_size``, ...).  The
defaults are those of the main job: a small model on ``digits`` at 32x32 in a few minutes on
two CPU cores.
"""
from __future__ import annotations

import ast
import dataclasses
import math
from typing import Any, Mapping, Optional

__all__ = ["TrainConfig", "parse_kwargs", "plain_values", "AMP_DTYPES"]

AMP_DTYPES = ("bfloat16", "float16")


@dataclasses.dataclass
class TrainConfig:
    # model
    model: Optional[str] = None
    pretrained: bool = False
    pretrained_path: Optional[str] = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    num_classes: Optional[int] = None
    drop: Optional[float] = None
    drop_path: Optional[float] = None
    scan: Optional[str] = None
    # data
    dataset: Optional[str] = None  # digits unless data_dir is given
    data_dir: Optional[str] = None
    img_size: int = 32
    train_samples: Optional[int] = None
    val_samples: Optional[int] = None
    data_seed: int = 0
    pathfinder_difficulty: str = "medium"
    cache_dir: Optional[str] = None
    no_aug: bool = False
    workers: Optional[int] = None
    # optimisation
    batch_size: int = 64
    validation_batch_size: Optional[int] = None
    epochs: int = 15
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: float = 2.0
    weight_decay: float = 0.05
    opt_eps: float = 1e-8
    opt_betas: Optional[tuple] = None
    layer_decay: Optional[float] = None
    smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    clip_grad: Optional[float] = None
    clip_mode: str = "norm"
    amp: bool = False
    amp_dtype: str = "bfloat16"
    model_ema: bool = False
    model_ema_decay: float = 0.998
    model_ema_warmup: bool = False
    # run
    seed: int = 42
    device: Optional[str] = None
    output: Optional[str] = None
    resume: Optional[str] = None
    log_interval: int = 50
    progress: str = "auto"
    stop_after_steps: Optional[int] = None
    plot: bool = True

    @classmethod
    def from_any(cls, config: Any = None, **overrides) -> "TrainConfig":
        """From a TrainConfig, a mapping or an argparse.Namespace (unknown keys are an error)."""
        if config is None:
            data: dict = {}
        elif isinstance(config, TrainConfig):
            data = dataclasses.asdict(config)
        elif isinstance(config, Mapping):
            data = dict(config)
        elif hasattr(config, "__dict__"):
            data = dict(vars(config))
        else:
            raise TypeError(f"config must be a TrainConfig, dict or Namespace, got {type(config).__name__}")
        data.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known options: {sorted(names)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        """Plain JSON-able values only (it goes into checkpoints loaded with weights_only=True)."""
        return plain_values(dataclasses.asdict(self))

    def validate(self) -> None:
        """Raises ValueError naming the flag for every bad value."""
        if not self.model or not isinstance(self.model, str):
            raise ValueError("--model is required: a timm model name, e.g. vmamba_tiny_s1l8 or resnet18")
        if not isinstance(self.model_kwargs, Mapping):
            raise ValueError(f"--model-kwargs must be key=value pairs, got {self.model_kwargs!r}")
        _int(self, "img_size", lo=1)
        _int(self, "batch_size", lo=1)
        _int(self, "epochs", lo=1)
        _int(self, "log_interval", lo=1)
        _int(self, "num_classes", lo=1, optional=True)
        _int(self, "validation_batch_size", lo=1, optional=True)
        _int(self, "train_samples", lo=1, optional=True)
        _int(self, "val_samples", lo=1, optional=True)
        _int(self, "workers", lo=0, optional=True)
        _int(self, "stop_after_steps", lo=1, optional=True)
        _int(self, "seed", lo=0)
        _int(self, "data_seed", lo=0)
        _num(self, "lr", lo=0.0, lo_open=True)
        _num(self, "min_lr", lo=0.0)
        _num(self, "warmup_lr", lo=0.0)
        _num(self, "warmup_epochs", lo=0.0)
        _num(self, "weight_decay", lo=0.0)
        _num(self, "opt_eps", lo=0.0, lo_open=True)
        _num(self, "smoothing", lo=0.0, hi=1.0, hi_open=True)
        _num(self, "mixup", lo=0.0)
        _num(self, "cutmix", lo=0.0)
        _num(self, "mixup_prob", lo=0.0, hi=1.0)
        _num(self, "mixup_switch_prob", lo=0.0, hi=1.0)
        _num(self, "drop", lo=0.0, hi=1.0, hi_open=True, optional=True)
        _num(self, "drop_path", lo=0.0, hi=1.0, hi_open=True, optional=True)
        _num(self, "clip_grad", lo=0.0, lo_open=True, optional=True)
        _num(self, "layer_decay", lo=0.0, hi=1.0, lo_open=True, optional=True)
        _num(self, "model_ema_decay", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if self.opt_betas is not None:
            betas = tuple(self.opt_betas)
            if len(betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
                raise ValueError(f"--opt-betas must be two numbers in [0, 1), got {self.opt_betas!r}")
            self.opt_betas = tuple(float(b) for b in betas)
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"--amp-dtype must be one of {list(AMP_DTYPES)}, got {self.amp_dtype!r}")
        if self.clip_mode not in ("norm", "value"):
            raise ValueError(f"--clip-mode must be 'norm' or 'value', got {self.clip_mode!r}")
        if self.mixup_mode not in ("batch", "pair", "elem"):
            raise ValueError(f"--mixup-mode must be one of batch, pair, elem; got {self.mixup_mode!r}")
        if self.progress not in ("auto", "bar", "lines", "none"):
            raise ValueError(f"--progress must be one of auto, bar, lines, none; got {self.progress!r}")
        if (self.mixup > 0 or self.cutmix > 0) and self.batch_size % 2:
            raise ValueError(f"--batch-size must be even with --mixup/--cutmix (timm's Mixup), got {self.batch_size}")
        if self.pretrained_path is not None and not self.pretrained_path:
            raise ValueError("--pretrained-path must name a file")
        from vision_ssm.data.pathfinder import DIFFICULTIES
        if str(self.pathfinder_difficulty).lower() not in set(DIFFICULTIES) | {"0", "1", "2"}:
            raise ValueError(f"--pathfinder-difficulty must be one of {sorted(DIFFICULTIES)} (or 0, 1, 2), "
                             f"got {self.pathfinder_difficulty!r}")
        if self.data_dir is not None:
            given = [_flag(k) for k in ("dataset", "train_samples", "val_samples") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} cannot be combined with --data-dir (an ImageFolder tree is "
                                 f"used whole; give a tree with fewer images instead)")
        elif self.dataset is None:
            self.dataset = "digits"
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"--warmup-epochs ({self.warmup_epochs:g}) must be less than --epochs ({self.epochs}): "
                             f"the learning rate would never leave the warm-up")
        if self.device is not None:
            dev = str(self.device)
            if not (dev == "cpu" or dev == "cuda" or dev.startswith("cuda:")):
                raise ValueError(f"--device must be cpu, cuda or cuda:N; got {self.device!r}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _int(cfg, name, lo=None, optional=False):
    v = getattr(cfg, name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            setattr(cfg, name, int(v))
            v = int(v)
        else:
            raise ValueError(f"{_flag(name)} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{_flag(name)} must be >= {lo}, got {v}")


def _num(cfg, name, lo=None, hi=None, lo_open=False, hi_open=False, optional=False):
    v = getattr(cfg, name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{_flag(name)} must be a finite number, got {v!r}")
    lo_ok = lo is None or (v > lo if lo_open else v >= lo)
    hi_ok = hi is None or (v < hi if hi_open else v <= hi)
    if not (lo_ok and hi_ok):
        lo_s = "" if lo is None else f"{'(' if lo_open else '['}{lo}"
        hi_s = "inf)" if hi is None else f"{hi}{')' if hi_open else ']'}"
        raise ValueError(f"{_flag(name)} must be in {lo_s}, {hi_s}, got {v}")
    setattr(cfg, name, float(v))


def parse_kwargs(items, flag: str = "--model-kwargs") -> dict:
    """``["a=1", "b=[1,2]", "c=cross"]`` -> ``{"a": 1, "b": [1, 2], "c": "cross"}`` (as timm's --model-kwargs);
    values are Python literals, else strings.  ``flag`` names the option in error messages."""
    out: dict = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"{flag} expects key=value pairs, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise ValueError(f"{flag}: {key!r} is not a valid argument name")
        if key in out:
            raise ValueError(f"{flag}: {key!r} is given twice")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def plain_values(value):
    """JSON-able copy: mappings and sequences recursively, other objects as their str."""
    if isinstance(value, Mapping):
        return {str(k): plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
