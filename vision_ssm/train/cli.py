"""Command lines of ``tools/train.py`` and ``tools/validate.py`` (flag names follow timm's train.py)."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from .config import AMP_DTYPES, TrainConfig, parse_kwargs

__all__ = ["build_train_parser", "train_main", "build_validate_parser", "validate_main"]

_D = {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(TrainConfig)}


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train an image classifier (any timm model, incl. the zoo's VMamba/Vim) on digits, "
                    "pathfinder or an ImageFolder tree. Under torchrun it runs DDP; --batch-size is per process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", default=None, help="timm model name, e.g. vmamba_tiny_s1l8 (required)")
    g.add_argument("--pretrained", action="store_true", help="start from the model's pretrained weights")
    g.add_argument("--pretrained-path", default=None, help="load this local file as the pretrained weights")
    g.add_argument("--model-kwargs", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="extra model arguments, values parsed as Python literals (e.g. dims=32 depths=[1,1,2,1])")
    g.add_argument("--num-classes", type=int, default=None, help="classifier size (default: the dataset's)")
    g.add_argument("--drop", type=float, default=None, help="dropout rate (model default if unset)")
    g.add_argument("--drop-path", type=float, default=None, help="stochastic depth rate (model default if unset)")
    g.add_argument("--scan", default=None, help="scan strategy passed to the model as scan= (see scans.list_scans())")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=None, help="digits (default) | pathfinder; not with --data-dir")
    g.add_argument("--data-dir", default=None, help="ImageFolder root with train/ and val/ subfolders")
    g.add_argument("--img-size", type=int, default=_D["img_size"], help="input resolution")
    g.add_argument("--train-samples", type=int, default=None,
                   help="digits: first N training samples; pathfinder: N generated (default 5000)")
    g.add_argument("--val-samples", type=int, default=None,
                   help="digits: first N validation samples; pathfinder: N generated (default 1000)")
    g.add_argument("--data-seed", type=int, default=_D["data_seed"], help="pathfinder generation seed")
    g.add_argument("--pathfinder-difficulty", default=_D["pathfinder_difficulty"], help="trivial | easy | medium | hard")
    g.add_argument("--cache-dir", default=None, help="cache generated pathfinder data (.npz) here")
    g.add_argument("--no-aug", action="store_true", help="no training augmentation")
    g.add_argument("--workers", "-j", type=int, default=None,
                   help="DataLoader workers per process (default: 0 for digits/pathfinder, 4 for folders)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", "-b", type=int, default=_D["batch_size"], help="batch size PER PROCESS")
    g.add_argument("--validation-batch-size", "-vb", type=int, default=None, help="default: --batch-size")
    g.add_argument("--epochs", type=int, default=_D["epochs"])
    g.add_argument("--lr", type=float, default=_D["lr"], help="peak learning rate (AdamW)")
    g.add_argument("--min-lr", type=float, default=_D["min_lr"], help="learning rate at the end of the cosine")
    g.add_argument("--warmup-lr", type=float, default=_D["warmup_lr"], help="learning rate at the first step")
    g.add_argument("--warmup-epochs", type=float, default=_D["warmup_epochs"], help="linear warm-up, in epochs")
    g.add_argument("--weight-decay", type=float, default=_D["weight_decay"])
    g.add_argument("--opt-eps", type=float, default=_D["opt_eps"])
    g.add_argument("--opt-betas", type=float, nargs=2, default=None, metavar=("B1", "B2"))
    g.add_argument("--layer-decay", type=float, default=None, help="layer-wise lr decay (e.g. 0.75)")
    g.add_argument("--smoothing", type=float, default=_D["smoothing"], help="label smoothing")
    g.add_argument("--mixup", type=float, default=_D["mixup"], help="mixup alpha (on if > 0)")
    g.add_argument("--cutmix", type=float, default=_D["cutmix"], help="cutmix alpha (on if > 0)")
    g.add_argument("--mixup-prob", type=float, default=_D["mixup_prob"])
    g.add_argument("--mixup-switch-prob", type=float, default=_D["mixup_switch_prob"])
    g.add_argument("--mixup-mode", default=_D["mixup_mode"], help="batch | pair | elem")
    g.add_argument("--clip-grad", type=float, default=None, help="gradient clipping threshold")
    g.add_argument("--clip-mode", default=_D["clip_mode"], help="norm | value")
    g.add_argument("--amp", action="store_true", help="mixed precision (autocast)")
    g.add_argument("--amp-dtype", default=_D["amp_dtype"], choices=AMP_DTYPES,
                   help="bfloat16 (CPU or CUDA) or float16 (CUDA, with a GradScaler)")
    g.add_argument("--model-ema", action="store_true", help="keep an EMA of the weights (evaluated each epoch)")
    g.add_argument("--model-ema-decay", type=float, default=_D["model_ema_decay"])
    g.add_argument("--model-ema-warmup", action="store_true", help="EMA decay warm-up")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=_D["seed"])
    g.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    g.add_argument("--output", default=None,
                   help="run directory for checkpoints and metrics (default outputs/train/<model>-<data>-<time>)")
    g.add_argument("--resume", default=None, help="continue exactly from a last.pth (or its directory)")
    g.add_argument("--log-interval", type=int, default=_D["log_interval"], help="steps between progress lines")
    g.add_argument("--progress", default=_D["progress"], choices=("auto", "bar", "lines", "none"),
                   help="tqdm bar (auto on a terminal) or periodic lines")
    g.add_argument("--stop-after-steps", type=int, default=None,
                   help="stop (as if killed) after this many optimizer steps in total; --resume continues")
    g.add_argument("--no-plot", dest="plot", action="store_false", help="do not draw curves.png")
    return p


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    data = dict(vars(args))
    data["model_kwargs"] = parse_kwargs(data.get("model_kwargs"))
    if data.get("opt_betas") is not None:
        data["opt_betas"] = tuple(data["opt_betas"])
    return TrainConfig.from_any(data)


def train_main(argv: list[str] | None = None) -> int:
    parser = build_train_parser()
    args = parser.parse_args(argv)
    try:
        cfg = _config_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    from .engine import train
    from .model import PretrainedWeightsError
    try:
        train(cfg)
    except (ValueError, PretrainedWeightsError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 1
    return 0


def build_validate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="validate.py",
        description="Top-1/top-5 and loss of a model on a dataset, from a training checkpoint of ours, an "
                    "official checkpoint (through the model's loader) or pretrained weights.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="our last.pth/best.pth (model, data and size default to the training run's) or an official file")
    p.add_argument("--model", "-m", default=None, help="timm model name (default: the checkpoint's)")
    p.add_argument("--pretrained", action="store_true", help="evaluate the model's pretrained weights")
    p.add_argument("--pretrained-path", default=None, help="evaluate this local file as pretrained weights")
    p.add_argument("--use-ema", action="store_true", help="evaluate the checkpoint's EMA weights")
    p.add_argument("--model-kwargs", nargs="*", action="extend", default=None, metavar="KEY=VALUE")
    p.add_argument("--scan", default=None)
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--dataset", default=None, help="digits | pathfinder (default: the checkpoint's, else digits)")
    p.add_argument("--data-dir", default=None, help="ImageFolder root with a val/ subfolder")
    p.add_argument("--split", default="val", help="val | train (pathfinder also test)")
    p.add_argument("--img-size", type=int, default=None, help="input resolution (default: the checkpoint's, else 32)")
    p.add_argument("--batch-size", "-b", type=int, default=None)
    p.add_argument("--val-samples", type=int, default=None)
    p.add_argument("--pathfinder-difficulty", default=None)
    p.add_argument("--data-seed", type=int, default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--workers", "-j", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--amp-dtype", default="bfloat16", choices=AMP_DTYPES)
    p.add_argument("--output", default=None, help="write the result as JSON here")
    p.add_argument("--progress", default="none", choices=("auto", "bar", "lines", "none"))
    return p


def validate_main(argv: list[str] | None = None) -> int:
    parser = build_validate_parser()
    args = parser.parse_args(argv)
    for name in ("img_size", "batch_size", "num_classes", "val_samples"):
        v = getattr(args, name)
        if v is not None and v < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    from .evaluate import validate
    from .model import PretrainedWeightsError
    try:
        model_kwargs = parse_kwargs(args.model_kwargs) if args.model_kwargs is not None else None
        validate(checkpoint=args.checkpoint, model=args.model, pretrained=args.pretrained,
                 pretrained_path=args.pretrained_path, use_ema=args.use_ema, dataset=args.dataset,
                 data_dir=args.data_dir, split=args.split, img_size=args.img_size, batch_size=args.batch_size,
                 num_classes=args.num_classes, model_kwargs=model_kwargs, scan=args.scan,
                 val_samples=args.val_samples, pathfinder_difficulty=args.pathfinder_difficulty,
                 data_seed=args.data_seed, cache_dir=args.cache_dir, workers=args.workers, device=args.device,
                 amp=args.amp, amp_dtype=args.amp_dtype, output=args.output, progress=args.progress)
    except (ValueError, KeyError, PretrainedWeightsError) as err:
        print(f"validate.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
