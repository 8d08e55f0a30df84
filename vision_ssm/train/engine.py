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

from .checkpointing import copy_atomic, get_rng_state, save_atomic, set_rng_state
from .config import TrainConfig
from .distributed import (DistInfo, all_gather_objects, all_reduce_sum, barrier, broadcast_object, cleanup,
                          init_distributed)
from .evaluate import autocast_context, evaluate
from .logs import Progress, get_logger, plot_curves, write_metrics
from .model import build_model, check_img_size
from .optim import WarmupCosineScheduler, create_optimizer

__all__ = ["train", "CHECKPOINT_VERSION"]

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


def _train(cfg: TrainConfig, info: DistInfo) -> dict[str, Any]:
    log = get_logger()
    main = info.is_main
    device = info.device
    if cfg.amp:
        autocast_context(device, True, cfg.amp_dtype)  # validates the dtype for the device

    resume_path = _resolve_resume(cfg.resume) if cfg.resume else None
    resume = load_checkpoint_file(resume_path) if resume_path else None
    if resume is not None:
        if not isinstance(resume, dict) or "model" not in resume or "optimizer" not in resume:
            raise ValueError(f"--resume {resume_path!r} is not a training checkpoint of ours "
                             f"(no model/optimizer state); use --pretrained-path for weights only")
        old = resume.get("args", {}).get("model")
        if old and old != cfg.model:
            raise ValueError(f"--resume {resume_path!r} was trained with --model {old}, not {cfg.model}")

    output = cfg.output
    if output is None:
        output = (os.path.dirname(os.path.abspath(resume_path)) if resume_path else
                  os.path.join("outputs", "train", f"{cfg.model}-{os.path.basename(str(cfg.data_dir or cfg.dataset))}-"
                               f"{time.strftime('%Y%m%d-%H%M%S')}"))
    output = broadcast_object(output, info)
    if main:
        os.makedirs(output, exist_ok=True)

    # ---- model (same initial weights on every process) -----------------------------------
    data_name = str(cfg.data_dir) if cfg.data_dir else cfg.dataset
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
    n_params = sum(p.numel() for p in model.parameters())

    # ---- data -----------------------------------------------------------------------------
    from timm.data import resolve_model_data_config
    data_cfg = resolve_model_data_config(model)
    common = dict(img_size=cfg.img_size, seed=cfg.seed, mean=data_cfg["mean"], std=data_cfg["std"],
                  data_seed=cfg.data_seed, difficulty=cfg.pathfinder_difficulty, cache_dir=cfg.cache_dir,
                  interpolation=data_cfg.get("interpolation", "bicubic"), crop_pct=data_cfg.get("crop_pct"))
    train_ds = create_dataset(data_name, "train", augment=not cfg.no_aug, num_samples=cfg.train_samples, **common)
    val_ds = create_dataset(data_name, "val", augment=False, num_samples=cfg.val_samples, **common)
    in_memory = data_name.lower() in ("digits", "pathfinder")
    workers = cfg.workers if cfg.workers is not None else (0 if in_memory else min(4, os.cpu_count() or 1))
    train_loader = create_loader(train_ds, cfg.batch_size, True, seed=cfg.seed, num_workers=workers,
                                 rank=info.rank, world_size=info.world_size, pin_memory=device.type == "cuda")
    val_loader = create_loader(val_ds, cfg.validation_batch_size or cfg.batch_size, False, seed=cfg.seed,
                               num_workers=workers, rank=info.rank, world_size=info.world_size,
                               pin_memory=device.type == "cuda")
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {cfg.batch_size} x {info.world_size} process(es) is larger than the "
                         f"{len(train_ds)} training samples: no full batch per epoch")
    total_steps = cfg.epochs * steps_per_epoch

    # ---- optimisation ---------------------------------------------------------------------
    optimizer = create_optimizer(model, cfg.lr, cfg.weight_decay, cfg.layer_decay, eps=cfg.opt_eps,
                                 betas=cfg.opt_betas)
    scheduler = WarmupCosineScheduler(optimizer, cfg.lr, total_steps,
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

    # ---- state ----------------------------------------------------------------------------
    start_epoch, step = 0, 0
    history: list[dict[str, Any]] = []
    step_log: list[dict[str, Any]] = []
    best = {"top1": -1.0, "epoch": -1}
    _seed_all(cfg.seed + info.rank)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if ema is not None:
            if "model_ema" in resume:
                ema.module.load_state_dict(resume["model_ema"])
            else:
                log.warning("--resume: the checkpoint has no EMA weights; EMA starts from the model")
                ema.module.load_state_dict(model.state_dict())
        if scaler is not None and "scaler" in resume:
            scaler.load_state_dict(resume["scaler"])
        start_epoch, step = int(resume["epoch"]), int(resume["step"])
        history = list(resume.get("history", []))
        step_log = _unpack_step_log(resume.get("step_log"))
        best = dict(resume.get("best", best))
        rng = resume.get("rng") or []
        if len(rng) == info.world_size:
            set_rng_state(rng[info.rank], train_loader.generator)
        else:
            log.warning(f"--resume: checkpoint written by {len(rng)} process(es), now {info.world_size}: "
                        f"random state re-seeded (data order and augmentation are still exact)")
            _seed_all(cfg.seed + info.rank + 1_000_003 * start_epoch)
        if resume.get("scheduler", {}).get("total_steps") != total_steps:
            log.warning("--resume: the schedule length changed (epochs, batch size or dataset differ)")
        if main:
            log.info(f"resumed from {resume_path} at epoch {start_epoch} (step {step})")

    train_module = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel
        train_module = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    if main:
        import json
        with open(os.path.join(output, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg.to_dict(), f, indent=2)
        log.info(f"model {cfg.model}: {n_params / 1e6:.3f}M params | data {data_name}: {len(train_ds)} train / "
                 f"{len(val_ds)} val at {cfg.img_size}px | {info.world_size} process(es) x batch {cfg.batch_size} "
                 f"| {steps_per_epoch} steps/epoch | device {device} | output {output}")

    stopped = False
    t_start = time.time()
    last_path = os.path.join(output, "last.pth")
    best_path = os.path.join(output, "best.pth")
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
            stopped = True
            break
        t0 = time.time()
        set_loader_epoch(train_loader, epoch, cfg.seed)
        train_module.train()
        bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", mode=cfg.progress,
                       log_interval=cfg.log_interval, enabled=main)
        loss_sum, n_steps = 0.0, 0
        try:
            for x, y in train_loader:
                if cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
                    stopped = True
                    break
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if mixup is not None:
                    x, y = mixup(x, y)
                lr = scheduler.step_update(step)
                with autocast_context(device, cfg.amp, cfg.amp_dtype):
                    out = train_module(x)
                    loss = criterion(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if cfg.clip_grad is not None:
                        scaler.unscale_(optimizer)
                        _clip(model, cfg)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    if cfg.clip_grad is not None:
                        _clip(model, cfg)
                    optimizer.step()
                if ema is not None:
                    ema.update(model, step=step)
                value = loss.item()
                if info.distributed:
                    value = all_reduce_sum([value], info)[0] / info.world_size
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"loss is {value} at step {step} (epoch {epoch + 1}): lower --lr, set --clip-grad, "
                        f"or train without --amp")
                step_log.append({"step": step, "epoch": epoch, "loss": value, "lr": lr})
                loss_sum += value
                n_steps += 1
                step += 1
                bar.update(loss=value, lr=lr)
        finally:
            bar.close()
        if stopped:
            if main:
                log.info(f"stopped after {step} steps (--stop-after-steps) in epoch {epoch + 1}; "
                         f"{last_path if os.path.exists(last_path) else 'no checkpoint yet'} resumes the run")
            break
        train_time = time.time() - t0
        val = evaluate(model, val_loader, device, info, amp=cfg.amp, amp_dtype=cfg.amp_dtype)
        row: dict[str, Any] = {
            "epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[-1]["lr"] / optimizer.param_groups[-1].get("lr_scale", 1.0),
            "train_loss": loss_sum / max(1, n_steps),
            "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
        }
        if ema is not None:
            ev = evaluate(ema.module, val_loader, device, info, amp=cfg.amp, amp_dtype=cfg.amp_dtype)
            row.update(ema_val_loss=ev["loss"], ema_val_top1=ev["top1"], ema_val_top5=ev["top5"])
        row.update(train_time_s=train_time, epoch_time_s=time.time() - t0)
        history.append(row)
        is_best = row["val_top1"] > best["top1"]
        if is_best:
            best = {"top1": row["val_top1"], "epoch": epoch + 1}
        rng_states = all_gather_objects(get_rng_state(train_loader.generator), info)
        if main:
            state = {
                "version": CHECKPOINT_VERSION,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "rng": rng_states,
                "world_size": info.world_size,
                "args": cfg.to_dict(),
                "num_classes": num_classes,
                "metrics": dict(row),
                "history": [dict(r) for r in history],
                "step_log": _pack_step_log(step_log),
                "best": dict(best),
            }
            if ema is not None:
                state["model_ema"] = ema.module.state_dict()
            if scaler is not None:
                state["scaler"] = scaler.state_dict()
            save_atomic(state, last_path)
            if is_best:
                copy_atomic(last_path, best_path)
            summary = _summary(cfg, history, best, step, n_params, info, output)
            write_metrics(output, history, summary, step_log)
            if cfg.plot:
                try:
                    plot_curves(output, history, title=f"{cfg.model} on {os.path.basename(data_name)}")
                except Exception as err:  # a plot must never stop training
                    log.warning(f"could not draw curves.png: {err}")
            ema_txt = f" | EMA top-1 {row['ema_val_top1']:.2f}" if ema is not None else ""
            log.info(f"epoch {epoch + 1}/{cfg.epochs} | train loss {row['train_loss']:.4f} | val loss "
                     f"{row['val_loss']:.4f} | top-1 {row['val_top1']:.2f} | top-5 {row['val_top5']:.2f}{ema_txt} "
                     f"| lr {row['lr']:.2e} | {row['epoch_time_s']:.1f}s")
        barrier(info)

    results = _summary(cfg, history, best, step, n_params, info, output)
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
