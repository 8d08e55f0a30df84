"""Evaluation (top-1/top-5/loss) and ``validate``: a model from a checkpoint or pretrained weights on a dataset."""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from vision_ssm.checkpoint import load_checkpoint_file
from vision_ssm.data import count_classes, create_dataset, create_loader
from vision_ssm.files import write_text_atomic

from .config import AMP_DTYPES, parse_kwargs
from .distributed import DistInfo, all_reduce_sum, cleanup, init_distributed
from .logs import Progress
from .model import build_model, check_img_size, load_weights

__all__ = ["evaluate", "validate", "format_table", "autocast_context"]


def autocast_context(device: torch.device, enabled: bool, dtype_name: str):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if dtype_name == "bfloat16" else torch.float16
    if device.type == "cpu" and dtype is torch.float16:
        raise ValueError("--amp-dtype float16 is not supported on CPU; use --amp-dtype bfloat16 (or run on CUDA)")
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, info: DistInfo | None = None,
             amp: bool = False, amp_dtype: str = "bfloat16", desc: str = "eval",
             progress: str = "none", log_interval: int = 50) -> dict[str, float]:
    """Mean cross-entropy and top-1/top-5 accuracy (%) over the loader; summed over processes."""
    info = info or DistInfo(device=device)
    was_training = model.training
    model.eval()
    loss_sum = correct1 = correct5 = count = 0.0
    num_classes = None
    bar = Progress(len(loader), desc, mode=progress, log_interval=log_interval, enabled=info.is_main)
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast_context(device, amp, amp_dtype):
                out = model(x)
            out = out.float()
            num_classes = out.shape[1]
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            k = min(5, out.shape[1])
            top = out.topk(k, dim=1).indices
            hit = top.eq(y.view(-1, 1))
            correct1 += hit[:, 0].sum().item()
            correct5 += hit.any(dim=1).sum().item()
            count += y.numel()
            bar.update()
    finally:
        bar.close()
        model.train(was_training)
    loss_sum, correct1, correct5, count = all_reduce_sum([loss_sum, correct1, correct5, count], info)
    count = max(count, 1.0)
    return {"loss": loss_sum / count, "top1": 100.0 * correct1 / count, "top5": 100.0 * correct5 / count,
            "count": int(count), "num_classes": int(num_classes or 0)}


def format_table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = []
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
        lines.append(f"{k.ljust(width)} : {v}")
    bar = "-" * max(len(line) for line in lines)
    return "\n".join([bar, *lines, bar])


_DATA_ARGS = ("dataset", "data_dir", "val_samples", "pathfinder_difficulty", "data_seed", "cache_dir")
_FROM_ARGS = ("model", "model_kwargs", "scan", "num_classes", "dataset", "data_dir", "img_size", "val_samples",
              "pathfinder_difficulty", "data_seed", "cache_dir", "validation_batch_size", "batch_size")


def validate(
        checkpoint: str | None = None,
        model: str | None = None,
        *,
        pretrained: bool = False,
        pretrained_path: str | None = None,
        use_ema: bool = False,
        dataset: str | None = None,
        data_dir: str | None = None,
        split: str = "val",
        img_size: int | None = None,
        batch_size: int | None = None,
        num_classes: int | None = None,
        model_kwargs: Mapping[str, Any] | list[str] | None = None,
        scan: str | None = None,
        val_samples: int | None = None,
        pathfinder_difficulty: str | None = None,
        data_seed: int | None = None,
        cache_dir: str | None = None,
        workers: int = 0,
        device: str | None = None,
        amp: bool = False,
        amp_dtype: str = "bfloat16",
        output: str | None = None,
        progress: str = "none",
        quiet: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5/loss of a model on a dataset split.

    With a training ``checkpoint`` of ours, every unset option (model, model kwargs, scan,
    classes, dataset, image size, ...) defaults to the value it was trained with; an official
    checkpoint (or ``--pretrained``) needs ``model``.  ``use_ema`` evaluates the EMA weights.
    Writes the result as JSON to ``output`` when given, and returns it.
    """
    if isinstance(model_kwargs, (list, tuple)):
        model_kwargs = parse_kwargs(model_kwargs)
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"--amp-dtype must be one of {list(AMP_DTYPES)}, got {amp_dtype!r}")
    args: dict[str, Any] = {}
    ckpt: Any = None
    if checkpoint is not None:
        if os.path.isdir(checkpoint):
            checkpoint = os.path.join(checkpoint, "last.pth")
        if not os.path.isfile(checkpoint):
            raise ValueError(f"--checkpoint {checkpoint!r} is not a file")
        ckpt = load_checkpoint_file(checkpoint)
        if isinstance(ckpt, Mapping) and isinstance(ckpt.get("args"), Mapping):
            args = dict(ckpt["args"])
    opts = dict(model=model, model_kwargs=model_kwargs, scan=scan, num_classes=num_classes, dataset=dataset,
                data_dir=data_dir, img_size=img_size, val_samples=val_samples,
                pathfinder_difficulty=pathfinder_difficulty, data_seed=data_seed, cache_dir=cache_dir)
    if checkpoint is not None and (pretrained or pretrained_path):
        raise ValueError("--checkpoint cannot be combined with --pretrained / --pretrained-path: "
                         "the checkpoint's weights would replace them")
    if dataset is not None and data_dir is not None:
        raise ValueError(f"give --dataset ({dataset!r}) or --data-dir ({data_dir!r}), not both")
    inherited = set(_FROM_ARGS)
    same_data = dataset is not None and dataset == args.get("dataset") and not args.get("data_dir")
    if (dataset is not None or data_dir is not None) and not same_data:  # other data than the training run's
        inherited -= set(_DATA_ARGS)
    for key in inherited:
        if key in opts and opts[key] is None and args.get(key) is not None:
            opts[key] = args[key]
    if batch_size is None:
        batch_size = args.get("validation_batch_size") or args.get("batch_size") or 128
    if not opts["model"]:
        raise ValueError("--model is required (unless --checkpoint is a training checkpoint of ours)")
    if checkpoint is None and not pretrained and not pretrained_path:
        raise ValueError("give --checkpoint FILE, --pretrained or --pretrained-path FILE: "
                         "validating random weights is almost certainly a mistake")
    if opts["data_dir"] and opts["val_samples"] is not None:
        raise ValueError(f"--val-samples ({opts['val_samples']}) applies to digits and pathfinder, not to the "
                         f"ImageFolder tree {opts['data_dir']!r}, which is used whole")
    name = opts["data_dir"] or opts["dataset"] or "digits"
    size = int(opts["img_size"] or 32)
    if size < 1:
        raise ValueError(f"--img-size must be a positive integer, got {size}")
    info = init_distributed(device)
    try:
        classes = opts["num_classes"] or count_classes(name, split)
        # build at the training size when the model takes img_size, so that the weights fit;
        # the forward below then runs at the requested size
        build_size = int(args.get("img_size") or size) if args else size
        net = build_model(opts["model"], classes, pretrained=pretrained, pretrained_path=pretrained_path,
                          model_kwargs=opts["model_kwargs"], scan=opts["scan"], img_size=build_size)
        if checkpoint is not None:
            load_weights(net, checkpoint, use_ema=use_ema)
        net.to(info.device)
        try:
            check_img_size(net, size, opts["model"], device=info.device)
        except ValueError:
            if build_size == size:
                raise
            # the model is tied to its build size: rebuild it for this size (weights resampled
            # by the model's checkpoint filter where it has one)
            net = build_model(opts["model"], classes, model_kwargs=opts["model_kwargs"], scan=opts["scan"],
                              img_size=size)
            if checkpoint is not None:
                load_weights(net, checkpoint, use_ema=use_ema)
            net.to(info.device)
            check_img_size(net, size, opts["model"], device=info.device)
        from timm.data import resolve_model_data_config
        data_cfg = resolve_model_data_config(net)
        ds = create_dataset(name, split, size, mean=data_cfg["mean"], std=data_cfg["std"],
                            num_samples=opts["val_samples"], data_seed=opts["data_seed"] or 0,
                            difficulty=opts["pathfinder_difficulty"] or "medium", cache_dir=opts["cache_dir"],
                            interpolation=data_cfg.get("interpolation", "bicubic"),
                            crop_pct=data_cfg.get("crop_pct"))
        loader = create_loader(ds, int(batch_size), is_training=False, num_workers=workers, rank=info.rank,
                               world_size=info.world_size)
        t0 = time.time()
        metrics = evaluate(net, loader, info.device, info, amp=amp, amp_dtype=amp_dtype, desc="validate",
                           progress=progress)
        result = {
            "model": opts["model"], "checkpoint": checkpoint, "use_ema": bool(use_ema),
            "pretrained": bool(pretrained or pretrained_path), "dataset": name, "split": split, "img_size": size,
            "num_classes": classes, "samples": metrics["count"], "top1": metrics["top1"], "top5": metrics["top5"],
            "loss": metrics["loss"], "param_count": sum(p.numel() for p in net.parameters()),
            "time_s": time.time() - t0,
        }
        if ckpt is not None and isinstance(ckpt, Mapping) and "epoch" in ckpt:
            result["checkpoint_epoch"] = ckpt["epoch"]
        if info.is_main:
            if not quiet:
                print(format_table([(k, v) for k, v in result.items() if v is not None]), flush=True)
            if output:
                write_text_atomic(output, json.dumps(result, indent=2) + "\n")
        return result
    finally:
        cleanup(info)
