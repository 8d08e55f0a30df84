"""The training loop: ``train(config) -> results``.

Image classification for any timm-registered model on ``digits``, ``pathfinder`` or an
ImageFolder tree; AdamW + per-step warm-up/cosine, parameter-group weight decay, optional
layer-wise lr decay, label smoothing, Mixup/CutMix, gradient clipping, mixed precision, EMA
weights, atomic per-epoch checkpoints with exact resume, DDP under torchrun.

Exact resume: the data order and the augmentation of an epoch are functions of
``(seed, epoch)`` only, and a checkpoint (written after each epoch) holds the model, optimizer,
scheduler, EMA, scaler, step and every process's random state.  A run stopped anywhere and
resumed from its ``last.pth`` therefore repeats the uninterrupted run (bitwise on CPU).

Distributed: launched by ``torchrun --nproc_per_node N``, each process reads RANK /
WORLD_SIZE / LOCAL_RANK; ``batch_size`` is per process (the global batch is N times larger);
only rank 0 writes files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from vision_ssm.checkpoint import load_checkpoint_file
from vision_ssm.data import count_classes, create_dataset, create_loader, create_mixup, set_loader_epoch

from ..files import write_text_atomic
from .checkpointing import copy_atomic, get_rng_state, save_atomic, set_rng_state
from .config import TrainConfig
from .distributed import (DistInfo, all_gather_objects, all_reduce_sum, barrier, broadcast_object, cleanup,
                          init_distributed)
from .evaluate import autocast_context, evaluate
from .logs import Progress, get_logger, plot_curves, write_metrics
from .model import build_model, check_img_size
from .optim import WarmupCosineScheduler, create_optimizer

__all__ = ["train", "TrainState", "load_resume_checkpoint", "restore_state", "train_one_epoch", "validate_epoch",
           "save_checkpoint", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _resolve_resume(path: str) -> str:
    if os.path.isdir(path):
        path = os.path.join(path, "last.pth")
    if not os.path.isfile(path):
        raise ValueError(f"--resume {path!r}: no such checkpoint file (give a last.pth or its directory)")
    return path


def train(config: Any = None, **overrides) -> dict[str, Any]:
    """Trains a model; returns a results dict (see the end of this function).

    ``config``: a :class:`TrainConfig`, a dict or an argparse Namespace of its fields;
    ``overrides`` replace single fields.  Invalid values raise ValueError naming the flag.
    """
    cfg = TrainConfig.from_any(config, **overrides)
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, info)
    finally:
        cleanup(info)


@dataclasses.dataclass
class TrainState:
    """What a training run carries from step to step and writes into its checkpoints."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosineScheduler
    criterion: nn.Module
    scaler: Any = None
    ema: Any = None
    mixup: Any = None
    epoch: int = 0
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    step_log: list = dataclasses.field(default_factory=list)
    best: dict = dataclasses.field(default_factory=lambda: {"top1": -1.0, "epoch": -1})


def load_resume_checkpoint(cfg: TrainConfig) -> tuple[str | None, dict | None]:
    """``--resume``'s file and its contents, checked to be one of our training checkpoints."""
    if not cfg.resume:
        return None, None
    path = _resolve_resume(cfg.resume)
    resume = load_checkpoint_file(path)
    if not isinstance(resume, dict) or "model" not in resume or "optimizer" not in resume:
        raise ValueError(f"--resume {path!r} is not a training checkpoint of ours "
                         f"(no model/optimizer state); use --pretrained-path for weights only")
    old = resume.get("args", {}).get("model")
    if old and old != cfg.model:
        raise ValueError(f"--resume {path!r} was trained with --model {old}, not {cfg.model}")
    return path, resume


def _output_dir(cfg: TrainConfig, resume_path: str | None, info: DistInfo) -> str:
    output = cfg.output
    if output is None:
        output = (os.path.dirname(os.path.abspath(resume_path)) if resume_path else
                  os.path.join("outputs", "train", f"{cfg.model}-{os.path.basename(str(cfg.data_dir or cfg.dataset))}-"
                               f"{time.strftime('%Y%m%d-%H%M%S')}"))
    output = broadcast_object(output, info)
    if info.is_main:
        os.makedirs(output, exist_ok=True)
    return output


def _build_model(cfg: TrainConfig, data_name: str, device: torch.device) -> tuple[nn.Module, int]:
    """The model with the same initial weights on every process, and its number of classes."""
    n_data_classes = count_classes(data_name)  # raises the dataset's clear error for a bad name / dir
    num_classes = cfg.num_classes or n_data_classes
    if num_classes < n_data_classes:
        raise ValueError(f"--num-classes {num_classes} is smaller than the {n_data_classes} classes of {data_name!r}")
    _seed_all(cfg.seed)
    model = build_model(cfg.model, num_classes, pretrained=cfg.pretrained, pretrained_path=cfg.pretrained_path,
                        model_kwargs=cfg.model_kwargs, scan=cfg.scan, drop_rate=cfg.drop,
                        drop_path_rate=cfg.drop_path, img_size=cfg.img_size)
    model.to(device)
    n_out = check_img_size(model, cfg.img_size, cfg.model, device=device)
    if n_out != num_classes:
        raise ValueError(f"--num-classes: model {cfg.model!r} outputs {n_out} logits, expected {num_classes}")
    return model, num_classes


def _build_loaders(cfg: TrainConfig, model: nn.Module, data_name: str, info: DistInfo):
    """(train set, val set, train loader, val loader), normalised as the model's data config says."""
    from timm.data import resolve_model_data_config
    data_cfg = resolve_model_data_config(model)
    common = dict(img_size=cfg.img_size, seed=cfg.seed, mean=data_cfg["mean"], std=data_cfg["std"],
                  data_seed=cfg.data_seed, difficulty=cfg.pathfinder_difficulty, cache_dir=cfg.cache_dir,
                  interpolation=data_cfg.get("interpolation", "bicubic"), crop_pct=data_cfg.get("crop_pct"))
    train_ds = create_dataset(data_name, "train", augment=not cfg.no_aug, num_samples=cfg.train_samples, **common)
    val_ds = create_dataset(data_name, "val", augment=False, num_samples=cfg.val_samples, **common)
    in_memory = data_name.lower() in ("digits", "pathfinder")
    workers = cfg.workers if cfg.workers is not None else (0 if in_memory else min(4, os.cpu_count() or 1))
    pin = info.device.type == "cuda"
    train_loader = create_loader(train_ds, cfg.batch_size, True, seed=cfg.seed, num_workers=workers,
                                 rank=info.rank, world_size=info.world_size, pin_memory=pin)
    val_loader = create_loader(val_ds, cfg.validation_batch_size or cfg.batch_size, False, seed=cfg.seed,
                               num_workers=workers, rank=info.rank, world_size=info.world_size, pin_memory=pin)
    if len(train_loader) == 0:
        raise ValueError(f"--batch-size {cfg.batch_size} x {info.world_size} process(es) is larger than the "
                         f"{len(train_ds)} training samples: no full batch per epoch")
    return train_ds, val_ds, train_loader, val_loader


def _build_state(cfg: TrainConfig, model: nn.Module, num_classes: int, steps_per_epoch: int,
                 device: torch.device) -> TrainState:
    """Optimizer, per-step schedule, loss (soft targets under Mixup), AMP scaler and EMA."""
    optimizer = create_optimizer(model, cfg.lr, cfg.weight_decay, cfg.layer_decay, eps=cfg.opt_eps,
                                 betas=cfg.opt_betas)
    scheduler = WarmupCosineScheduler(optimizer, cfg.lr, cfg.epochs * steps_per_epoch,
                                      warmup_steps=int(round(cfg.warmup_epochs * steps_per_epoch)),
                                      min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr)
    scaler = None
    if cfg.amp and device.type == "cuda" and cfg.amp_dtype == "float16":
        scaler = torch.amp.GradScaler("cuda")
    ema = None
    if cfg.model_ema:
        from timm.utils import ModelEmaV3
        ema = ModelEmaV3(model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup)
    mixup = create_mixup(cfg.mixup, cfg.cutmix, cfg.smoothing, num_classes, prob=cfg.mixup_prob,
                         switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode)
    if mixup is not None:
        from timm.loss import SoftTargetCrossEntropy
        criterion: nn.Module = SoftTargetCrossEntropy()
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.smoothing)
    return TrainState(model, optimizer, scheduler, criterion, scaler=scaler, ema=ema, mixup=mixup)


def restore_state(state: TrainState, resume: dict, cfg: TrainConfig, info: DistInfo, train_loader,
                  resume_path: str) -> None:
    """Loads a training checkpoint into ``state`` and the processes' random states."""
    log = get_logger()
    state.model.load_state_dict(resume["model"])
    state.optimizer.load_state_dict(resume["optimizer"])
    state.scheduler.load_state_dict(resume["scheduler"])
    if state.ema is not None:
        if "model_ema" in resume:
            state.ema.module.load_state_dict(resume["model_ema"])
        else:
            log.warning("--resume: the checkpoint has no EMA weights; EMA starts from the model")
            state.ema.module.load_state_dict(state.model.state_dict())
    if state.scaler is not None and "scaler" in resume:
        state.scaler.load_state_dict(resume["scaler"])
    state.epoch, state.step = int(resume["epoch"]), int(resume["step"])
    state.history = list(resume.get("history", []))
    state.step_log = _unpack_step_log(resume.get("step_log"))
    state.best = dict(resume.get("best", state.best))
    rng = resume.get("rng") or []
    if len(rng) == info.world_size:
        set_rng_state(rng[info.rank], train_loader.generator)
    else:
        log.warning(f"--resume: checkpoint written by {len(rng)} process(es), now {info.world_size}: "
                    f"random state re-seeded (data order and augmentation are still exact)")
        _seed_all(cfg.seed + info.rank + 1_000_003 * state.epoch)
    if resume.get("scheduler", {}).get("total_steps") != state.scheduler.total_steps:
        log.warning("--resume: the schedule length changed (epochs, batch size or dataset differ)")
    if info.is_main:
        log.info(f"resumed from {resume_path} at epoch {state.epoch} (step {state.step})")


def train_one_epoch(state: TrainState, train_module: nn.Module, train_loader, epoch: int, cfg: TrainConfig,
                    info: DistInfo) -> tuple[float, bool]:
    """One pass over the loader (or up to ``--stop-after-steps``); returns (mean loss, stopped)."""
    device = info.device
    set_loader_epoch(train_loader, epoch, cfg.seed)
    train_module.train()
    bar = Progress(len(train_loader), f"epoch {epoch + 1}/{cfg.epochs}", mode=cfg.progress,
                   log_interval=cfg.log_interval, enabled=info.is_main)
    loss_sum, n_steps, stopped = 0.0, 0, False
    try:
        for x, y in train_loader:
            if cfg.stop_after_steps is not None and state.step >= cfg.stop_after_steps:
                stopped = True
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if state.mixup is not None:
                x, y = state.mixup(x, y)
            lr = state.scheduler.step_update(state.step)
            with autocast_context(device, cfg.amp, cfg.amp_dtype):
                out = train_module(x)
                loss = state.criterion(out.float(), y)
            _optimizer_step(state, loss, cfg)
            value = loss.item()
            if info.distributed:
                value = all_reduce_sum([value], info)[0] / info.world_size
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"loss is {value} at step {state.step} (epoch {epoch + 1}): lower --lr, set --clip-grad, "
                    f"or train without --amp")
            state.step_log.append({"step": state.step, "epoch": epoch, "loss": value, "lr": lr})
            loss_sum += value
            n_steps += 1
            state.step += 1
            bar.update(loss=value, lr=lr)
    finally:
        bar.close()
    return loss_sum / max(1, n_steps), stopped


def _optimizer_step(state: TrainState, loss: torch.Tensor, cfg: TrainConfig) -> None:
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        if cfg.clip_grad is not None:
            state.scaler.unscale_(state.optimizer)
            _clip(state.model, cfg)
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        loss.backward()
        if cfg.clip_grad is not None:
            _clip(state.model, cfg)
        state.optimizer.step()
    if state.ema is not None:
        state.ema.update(state.model, step=state.step)


def validate_epoch(state: TrainState, val_loader, epoch: int, train_loss: float, cfg: TrainConfig,
                   info: DistInfo) -> dict[str, Any]:
    """The epoch's history row: learning rate, losses and top-1/5 of the model (and its EMA)."""
    val = evaluate(state.model, val_loader, info.device, info, amp=cfg.amp, amp_dtype=cfg.amp_dtype)
    group = state.optimizer.param_groups[-1]
    row: dict[str, Any] = {
        "epoch": epoch + 1, "step": state.step, "lr": group["lr"] / group.get("lr_scale", 1.0),
        "train_loss": train_loss,
        "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
    }
    if state.ema is not None:
        ev = evaluate(state.ema.module, val_loader, info.device, info, amp=cfg.amp, amp_dtype=cfg.amp_dtype)
        row.update(ema_val_loss=ev["loss"], ema_val_top1=ev["top1"], ema_val_top5=ev["top5"])
    return row


def save_checkpoint(state: TrainState, path: str, cfg: TrainConfig, num_classes: int, rng_states: list,
                    info: DistInfo) -> None:
    """Everything ``restore_state`` needs, written atomically."""
    checkpoint = {
        "version": CHECKPOINT_VERSION,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "rng": rng_states,
        "world_size": info.world_size,
        "args": cfg.to_dict(),
        "num_classes": num_classes,
        "metrics": dict(state.history[-1]),
        "history": [dict(r) for r in state.history],
        "step_log": _pack_step_log(state.step_log),
        "best": dict(state.best),
    }
    if state.ema is not None:
        checkpoint["model_ema"] = state.ema.module.state_dict()
    if state.scaler is not None:
        checkpoint["scaler"] = state.scaler.state_dict()
    save_atomic(checkpoint, path)


def _train(cfg: TrainConfig, info: DistInfo) -> dict[str, Any]:
    log = get_logger()
    main, device = info.is_main, info.device
    if cfg.amp:
        autocast_context(device, True, cfg.amp_dtype)  # validates the dtype for the device
    resume_path, resume = load_resume_checkpoint(cfg)
    output = _output_dir(cfg, resume_path, info)

    data_name = str(cfg.data_dir) if cfg.data_dir else cfg.dataset
    model, num_classes = _build_model(cfg, data_name, device)
    n_params = sum(p.numel() for p in model.parameters())
    train_ds, val_ds, train_loader, val_loader = _build_loaders(cfg, model, data_name, info)
    steps_per_epoch = len(train_loader)
    state = _build_state(cfg, model, num_classes, steps_per_epoch, device)
    _seed_all(cfg.seed + info.rank)
    if resume is not None:
        restore_state(state, resume, cfg, info, train_loader, resume_path)

    train_module = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel
        train_module = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    if main:
        write_text_atomic(os.path.join(output, "config.json"), json.dumps(cfg.to_dict(), indent=2))
        log.info(f"model {cfg.model}: {n_params / 1e6:.3f}M params | data {data_name}: {len(train_ds)} train / "
                 f"{len(val_ds)} val at {cfg.img_size}px | {info.world_size} process(es) x batch {cfg.batch_size} "
                 f"| {steps_per_epoch} steps/epoch | device {device} | output {output}")

    stopped = False
    t_start = time.time()
    last_path = os.path.join(output, "last.pth")
    best_path = os.path.join(output, "best.pth")
    for epoch in range(state.epoch, cfg.epochs):
        if cfg.stop_after_steps is not None and state.step >= cfg.stop_after_steps:
            stopped = True
            break
        t0 = time.time()
        train_loss, stopped = train_one_epoch(state, train_module, train_loader, epoch, cfg, info)
        if stopped:
            if main:
                log.info(f"stopped after {state.step} steps (--stop-after-steps) in epoch {epoch + 1}; "
                         f"{last_path if os.path.exists(last_path) else 'no checkpoint yet'} resumes the run")
            break
        train_time = time.time() - t0
        row = validate_epoch(state, val_loader, epoch, train_loss, cfg, info)
        row.update(train_time_s=train_time, epoch_time_s=time.time() - t0)
        state.history.append(row)
        state.epoch = epoch + 1
        is_best = row["val_top1"] > state.best["top1"]
        if is_best:
            state.best = {"top1": row["val_top1"], "epoch": epoch + 1}
        rng_states = all_gather_objects(get_rng_state(train_loader.generator), info)
        if main:
            save_checkpoint(state, last_path, cfg, num_classes, rng_states, info)
            if is_best:
                copy_atomic(last_path, best_path)
            summary = _summary(cfg, state.history, state.best, state.step, n_params, info, output)
            write_metrics(output, state.history, summary, state.step_log)
            if cfg.plot:
                try:
                    plot_curves(output, state.history, title=f"{cfg.model} on {os.path.basename(data_name)}")
                except Exception as err:  # a plot must never stop training
                    log.warning(f"could not draw curves.png: {err}")
            ema_txt = f" | EMA top-1 {row['ema_val_top1']:.2f}" if state.ema is not None else ""
            log.info(f"epoch {epoch + 1}/{cfg.epochs} | train loss {row['train_loss']:.4f} | val loss "
                     f"{row['val_loss']:.4f} | top-1 {row['val_top1']:.2f} | top-5 {row['val_top5']:.2f}{ema_txt} "
                     f"| lr {row['lr']:.2e} | {row['epoch_time_s']:.1f}s")
        barrier(info)

    history, best = state.history, state.best
    results = _summary(cfg, history, best, state.step, n_params, info, output)
    results.update(
        stopped_early=stopped,
        checkpoint=last_path if os.path.exists(last_path) else None,
        best_checkpoint=best_path if os.path.exists(best_path) else None,
        history=history,
        run_time_s=time.time() - t_start,
    )
    if main and history:
        log.info(f"done: best top-1 {best['top1']:.2f} at epoch {best['epoch']}; final top-1 "
                 f"{history[-1]['val_top1']:.2f}; checkpoints in {output}")
    return results


def _pack_step_log(rows: list[dict[str, Any]]) -> torch.Tensor:
    """The per-step log as one float64 tensor (step, epoch, loss, lr): compact and weights_only-safe."""
    return torch.tensor([[r["step"], r["epoch"], r["loss"], r["lr"]] for r in rows],
                        dtype=torch.float64).reshape(-1, 4)


def _unpack_step_log(packed) -> list[dict[str, Any]]:
    if packed is None:
        return []
    return [{"step": int(s), "epoch": int(e), "loss": float(l), "lr": float(r)} for s, e, l, r in packed.tolist()]


def _clip(model: nn.Module, cfg: TrainConfig) -> None:
    if cfg.clip_mode == "norm":
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
    else:
        torch.nn.utils.clip_grad_value_(model.parameters(), cfg.clip_grad)


def _summary(cfg, history, best, step, n_params, info, output) -> dict[str, Any]:
    final = history[-1] if history else {}
    return {
        "model": cfg.model, "dataset": str(cfg.data_dir or cfg.dataset), "img_size": cfg.img_size,
        "output_dir": output, "epochs_completed": len(history) and history[-1]["epoch"], "steps": step,
        "world_size": info.world_size, "global_batch_size": cfg.batch_size * info.world_size,
        "param_count": n_params, "best_top1": best["top1"] if history else None,
        "best_epoch": best["epoch"] if history else None,
        "final_top1": final.get("val_top1"), "final_top5": final.get("val_top5"),
        "final_val_loss": final.get("val_loss"), "final_ema_top1": final.get("ema_val_top1"),
        "train_time_s": sum(r.get("epoch_time_s", 0.0) for r in history),
    }
