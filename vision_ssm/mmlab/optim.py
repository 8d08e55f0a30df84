"""Layer-wise learning-rate decay for plain backbones (the Vim segmentation recipe, hustvl/Vim
seg/scripts: AdamW, layer decay over 24 blocks; Vim-T lr 2e-4, weight decay 0.1, decay 0.92;
Vim-S lr 1e-4, weight decay 0.05, decay 0.95).

mmseg's own ``LayerDecayOptimizerConstructor`` finds layer ids from BEiT / ConvNeXt parameter
names (``backbone.layers.{i}``); ours asks the backbone: any module with ``lr_layer_id(name)`` and
``num_lr_layers()`` (``VimBackbone``) gets lr * rate ** (num_layers - layer_id); everything else
(necks, heads) the base lr.  One-dimensional parameters (norms, biases) and the backbone's
``no_weight_decay()`` names (position embedding, class token) get no weight decay.

    optim_wrapper = dict(type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
                         optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.1),
                         paramwise_cfg=dict(layer_decay_rate=0.92))

``layer_decay_rate`` is the only ``paramwise_cfg`` key: the others of mmengine's default
constructor (``custom_keys``, ``norm_decay_mult``, ``bias_decay_mult`` ...) and of mmseg's
(``num_layers``, ``decay_type``) raise an error instead of being ignored.
"""
from __future__ import annotations

from typing import List, Optional

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ["LayerDecayOptimWrapperConstructor"]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay from the backbone's ``lr_layer_id``; ``paramwise_cfg=dict(layer_decay_rate=r)``."""

    SUPPORTED_KEYS = ("layer_decay_rate",)

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        unsupported = sorted(set(self.paramwise_cfg) - set(self.SUPPORTED_KEYS))
        if unsupported:
            raise ValueError(f"LayerDecayOptimWrapperConstructor: unsupported paramwise_cfg keys {unsupported}; "
                             f"it takes only {list(self.SUPPORTED_KEYS)} (the layers come from the backbone's "
                             f"lr_layer_id / num_lr_layers; norms, biases and no_weight_decay() names get no "
                             f"weight decay)")
        rate = self.paramwise_cfg.get("layer_decay_rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f"LayerDecayOptimWrapperConstructor: paramwise_cfg layer_decay_rate must be a "
                             f"number in (0, 1], got {rate!r}")

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = "", **kwargs) -> None:
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 1.0))
        decayed = [(name, m) for name, m in module.named_modules()
                   if hasattr(m, "lr_layer_id") and hasattr(m, "num_lr_layers")]
        no_wd = set()
        for name, m in decayed:
            trunk = getattr(m, "trunk", None)
            if trunk is not None and hasattr(trunk, "no_weight_decay"):
                no_wd |= {f"{name}.model.model.{n}" for n in trunk.no_weight_decay()}
        for name, param in module.named_parameters():
            group = {"params": [param]}
            if not param.requires_grad:
                params.append(group)
                continue
            scale = 1.0
            for owner, m in decayed:
                if name.startswith(owner + "."):
                    scale = rate ** (m.num_lr_layers() - m.lr_layer_id(name[len(owner) + 1:]))
                    break
            group["lr"] = self.base_lr * scale
            if param.ndim == 1 or name.endswith(".bias") or name in no_wd:
                group["weight_decay"] = 0.0
            params.append(group)
