"""AdamW with parameter-group weight decay (optionally layer-wise lr decay) and a per-step
cosine schedule with linear warm-up."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from .model import no_weight_decay_names

__all__ = ["param_groups", "create_optimizer", "WarmupCosineScheduler"]


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """No decay for norms, biases, 1-D parameters and the model's no-weight-decay names
    (incl. A_log/A_logs/D/Ds).  With ``layer_decay`` the groups come from timm's
    ``param_groups_layer_decay`` over the model's ``group_matcher`` (each group has an
    ``lr_scale``); otherwise two groups with ``lr_scale`` 1."""
    no_decay = no_weight_decay_names(model)
    if layer_decay is not None:
        from timm.optim import param_groups_layer_decay
        groups = param_groups_layer_decay(model, weight_decay=weight_decay, no_weight_decay_list=sorted(no_decay),
                                          layer_decay=layer_decay)
        # timm exempts 1-D parameters; also exempt biases of any shape, as without layer decay
        names = {id(p): n for n, p in model.named_parameters()}
        out = []
        for g in groups:
            keep = [p for p in g["params"] if not (g["weight_decay"] and names[id(p)].endswith(".bias"))]
            moved = [p for p in g["params"] if g["weight_decay"] and names[id(p)].endswith(".bias")]
            if keep:
                out.append({**g, "params": keep})
            if moved:
                out.append({**g, "params": moved, "weight_decay": 0.0})
        return out
    decay, skip = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in no_decay:
            skip.append(p)
        else:
            decay.append(p)
    groups = []
    if skip:
        groups.append({"params": skip, "weight_decay": 0.0, "lr_scale": 1.0})
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0})
    return groups


def create_optimizer(model: nn.Module, lr: float, weight_decay: float, layer_decay: float | None = None,
                     eps: float = 1e-8, betas: tuple[float, float] | None = None) -> torch.optim.AdamW:
    groups = param_groups(model, weight_decay, layer_decay)
    for g in groups:
        g.setdefault("lr_scale", 1.0)
        g["lr"] = lr * g["lr_scale"]
    return torch.optim.AdamW(groups, lr=lr, eps=eps, betas=tuple(betas) if betas else (0.9, 0.999),
                             weight_decay=weight_decay)


class WarmupCosineScheduler:
    """Per-step schedule: linear warm-up from ``warmup_lr`` to ``base_lr`` over ``warmup_steps``,
    then cosine decay to ``min_lr`` at ``total_steps``.  Each group gets ``value * lr_scale``.

    Call :meth:`step_update` with the index of the optimizer step about to be taken.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int,
                 warmup_steps: int = 0, min_lr: float = 0.0, warmup_lr: float = 0.0):
        self.optimizer = optimizer
        self.base_lr = float(base_lr)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps))
        self.min_lr = float(min_lr)
        self.warmup_lr = float(warmup_lr)
        self.last_step = -1
        self.step_update(0)

    def value(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def step_update(self, step: int) -> float:
        value = self.value(step)
        for g in self.optimizer.param_groups:
            g["lr"] = value * g.get("lr_scale", 1.0)
        self.last_step = int(step)
        return value

    def state_dict(self) -> dict[str, Any]:
        return dict(base_lr=self.base_lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    min_lr=self.min_lr, warmup_lr=self.warmup_lr, last_step=self.last_step)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the position; the shape of the schedule comes from the current configuration."""
        self.step_update(max(0, int(state["last_step"])))
