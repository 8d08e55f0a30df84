"""OpenMMLab backbones: the zoo's timm models built with ``features_only=True`` (like mmseg's ``TIMMBackbone``).

Arguments other than the backbone's own go to ``timm.create_model`` (``scan``, ``drop_path_rate``, ``dims``,
``depth`` ...); ``init_cfg=dict(type='Pretrained', checkpoint=...)`` / ``pretrained=`` weights are loaded by
:mod:`vision_ssm.mmlab.pretrained` after mmengine has applied the other init types (``Constant`` ...).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS  # the parent of mmdet's and mmseg's MODELS: found from both
from torch.nn.modules.batchnorm import _BatchNorm

from vision_ssm.layers.norm import LayerNorm2d
from vision_ssm.models.vim import INTERMEDIATE_TYPES  # importing vision_ssm.models registers the models

from .pretrained import PretrainedBackboneError, load_backbone_checkpoint, split_init_cfg

__all__ = ["VMambaBackbone", "VimBackbone", "PretrainedBackboneError", "ContiguousLayerNorm2d"]


class _TimmBackbone(BaseModule):
    """``self.model = timm.create_model(arch, features_only=True, out_indices=...)`` (the blocks after the last
    output, the final norm and the head pruned), ``frozen_stages``, ``norm_eval`` and the init_cfg checkpoint."""

    family = ""

    def __init__(self, arch: str, out_indices: Sequence[int], frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg=None, pretrained=None, **model_kwargs):
        checkpoint, others = split_init_cfg(init_cfg, pretrained, type(self).__name__)
        super().__init__(init_cfg=others)
        self.arch, self.frozen_stages, self.norm_eval = arch, frozen_stages, norm_eval
        self._checkpoint, self._model_kwargs = checkpoint, model_kwargs
        if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence) or not out_indices \
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
            raise TypeError(f"{type(self).__name__}: out_indices must be a non-empty sequence of ints, "
                            f"got {out_indices!r}")
        try:
            self.model = self._create(features_only=True, out_indices=tuple(out_indices), **model_kwargs)
        except AssertionError as err:  # timm's range check: say which range
            raise self._out_indices_error(tuple(out_indices)) or err
        self.out_indices = tuple(self.model.out_indices)  # timm counts negative ones from the end ...
        if list(self.out_indices) != sorted(set(self.out_indices)):  # ... and keeps repeated / unordered ones
            raise self._out_indices_error(tuple(out_indices))
        self.out_channels = list(self.model.feature_info.channels())
        self.out_strides = list(self.model.feature_info.reduction())

    def _create(self, **kwargs) -> nn.Module:
        names = timm.list_models(module=self.family)
        if self.arch not in names:
            raise KeyError(f"unknown arch {self.arch!r}; the {self.family} models are: {', '.join(names)}")
        return timm.create_model(self.arch, pretrained=False, **kwargs)

    def _on_meta(self) -> nn.Module:
        """The complete (unpruned) model on the meta device: its keys and shapes, no memory, no weights."""
        with torch.device("meta"):
            return self._create(**self._model_kwargs)

    def _out_indices_error(self, out_indices: Tuple[int, ...]) -> Optional[ValueError]:
        count = len(self._on_meta().feature_info)
        in_range = all(-count <= i < count for i in out_indices)
        if not in_range or [i % count for i in out_indices] != sorted({i % count for i in out_indices}):
            return ValueError(f"{type(self).__name__}: out_indices={out_indices} "
                              f"{'must be' if in_range else 'out of range: expected'} each in 0..{count - 1} "
                              f"(or -{count}..-1 from the end), unique and in increasing order")
        return None

    @property
    def trunk(self) -> nn.Module:
        return self.model.model

    def init_weights(self):
        loaded = self._is_init
        super().init_weights()  # the other init_cfg types, by mmengine
        if self._checkpoint is not None and not loaded:
            self.load_pretrained(**self._checkpoint)

    def load_pretrained(self, checkpoint: str, use_ema: bool = False, prefix: Optional[str] = None
                        ) -> Dict[str, List[str]]:
        """:func:`~vision_ssm.mmlab.pretrained.load_backbone_checkpoint`: the keys ``ignored`` and ``added``."""
        pruned = set(self._on_meta().state_dict()) - set(self.trunk.state_dict())
        return load_backbone_checkpoint(self, self.trunk, pruned, self.arch, checkpoint, use_ema, prefix)

    def train(self, mode: bool = True):
        super().train(mode)
        stem, stages = self._stem_and_stages()  # the modules / parameters frozen by frozen_stages >= 0, per stage
        if self.frozen_stages > len(stages):
            raise ValueError(f"{type(self).__name__}: frozen_stages={self.frozen_stages} but the model has "
                             f"{len(stages)} stages")
        for part in stem + sum(stages[:self.frozen_stages], []) if self.frozen_stages >= 0 else []:
            part.requires_grad_(False)
            if isinstance(part, nn.Module):
                part.eval()
        for m in self.modules():
            if mode and self.norm_eval and isinstance(m, _BatchNorm):
                m.eval()
        return self


@MODELS.register_module()
class VMambaBackbone(_TimmBackbone):
    """VMamba (``arch``: any VMamba model): NCHW features at strides 4, 8, 16, 32.

    ``out_indices``: stages 0..3; ``out_norm``: a norm of the model's type on each output (``outnorm{i}``, as the
    official detection / segmentation backbone); ``frozen_stages``: k >= 0 freezes the patch embedding and
    stages 0..k-1 (with their output norms); ``norm_eval``: BatchNorms stay in eval mode.
    """

    family = "vmamba"

    def __init__(self, arch: str = "vmamba_tiny_s1l8", out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, norm_eval: bool = False, init_cfg=None,
                 pretrained: Optional[Union[str, bool]] = None, **model_kwargs):
        super().__init__(arch, out_indices, frozen_stages, norm_eval, init_cfg, pretrained, **model_kwargs)
        bn = any(isinstance(m, _BatchNorm) for m in self.trunk.layers[0].modules())  # else ln / ln2d
        self.out_norm = out_norm
        for i, c in zip(self.out_indices, self.out_channels):
            self.add_module(f"outnorm{i}", (nn.BatchNorm2d if bn else LayerNorm2d)(c) if out_norm else nn.Identity())
        self.train(self.training)  # frozen_stages

    def _stem_and_stages(self):
        pos_embed = [self.trunk.pos_embed] if getattr(self.trunk, "pos_embed", None) is not None else []
        return [self.trunk.patch_embed] + pos_embed, [
            [layer] + ([getattr(self, f"outnorm{i}")] if i in self.out_indices else [])
            for i, layer in enumerate(self.trunk.layers)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        # contiguous NCHW: mmcv's RoIAlign reads raw memory and misreads channels-last maps
        return tuple(getattr(self, f"outnorm{i}")(f).contiguous() for i, f in zip(self.out_indices, self.model(x)))


@MODELS.register_module("LN2d")  # norm_cfg=dict(type='LN2d'): ViTDet's simple FPN and heads
class ContiguousLayerNorm2d(LayerNorm2d):
    """The channel LayerNorm with a contiguous NCHW result (mmcv's RoIAlign misreads channels-last maps)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


class _Deconv(nn.Sequential):
    """ConvTranspose2d kernel 2 stride 2 (x2 upsampling)."""

    def __init__(self, channels: int):
        super().__init__(nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2))


def _rescale(scale: float, channels: int, norm: str) -> nn.Module:
    """x4: deconv-norm-GELU-deconv; x2: deconv; x1: identity; x0.5 / x0.25: max pooling."""
    norms = {"ln2d": LayerNorm2d, "bn": nn.BatchNorm2d, "syncbn": nn.SyncBatchNorm}
    if scale == 4 and norm.lower() in norms:
        return nn.Sequential(_Deconv(channels), norms[norm.lower()](channels), nn.GELU(), _Deconv(channels))
    if scale in (2, 1, 0.5, 0.25):
        return _Deconv(channels) if scale == 2 else nn.Identity() if scale == 1 else nn.MaxPool2d(int(1 / scale))
    raise ValueError(f"VimBackbone: pyramid_norm must be one of {tuple(norms)}, got {norm!r}" if scale == 4
                     else f"VimBackbone: unsupported pyramid scale {scale}; use 4, 2, 1, 0.5 or 0.25")


@MODELS.register_module()
class VimBackbone(_TimmBackbone):
    """Plain Vision Mamba (``arch``: any Vim model): blocks ``out_indices`` at the patch stride, or a pyramid.

    ``img_size``: the position-embedding grid (other input sizes interpolate it).  ``feature_type``: ``'stream'``
    (the residual stream after the block, as official ``last_layer_process='add'``) or ``'mixer'`` (what its
    mixer adds: official Vim-T segmentation).  ``pyramid``: ``'multi'`` (4 outputs rescaled x4 / x2 / x1 / x0.5:
    official Vim segmentation) or ``'simple'`` (ViTDet's, from one output); ``pyramid_norm``: the x4 branch's
    norm ('ln2d', 'bn', 'syncbn').  ``frozen_stages``: 0 freezes the embeddings, k > 0 also blocks 0..k-1.
    """

    family = "vim"

    def __init__(self, arch: str = "vim_tiny_patch16_224", img_size: Union[int, Sequence[int]] = 512,
                 out_indices: Sequence[int] = (5, 11, 17, 23), feature_type: str = "stream", out_norm: bool = True,
                 pyramid: Optional[str] = None, pyramid_norm: Optional[str] = None, frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg=None, pretrained: Optional[Union[str, bool]] = None,
                 **model_kwargs):
        if feature_type not in INTERMEDIATE_TYPES:
            raise ValueError(f"VimBackbone: feature_type must be one of {INTERMEDIATE_TYPES}, got {feature_type!r}")
        if pyramid not in (None, "multi", "simple") or pyramid is None and pyramid_norm is not None:
            raise ValueError(f"VimBackbone: pyramid must be None, 'multi' or 'simple', got {pyramid!r}" if pyramid
                             else f"VimBackbone: pyramid_norm={pyramid_norm!r} needs a pyramid ('multi' or 'simple')")
        model_kwargs = {"dynamic_img_size": True, "dynamic_img_pad": True, **model_kwargs}
        if model_kwargs.get("class_token") is False:  # the pruned head's pool: the class token is gone
            model_kwargs.setdefault("global_pool", "avg")
        img_size = tuple(img_size) if isinstance(img_size, (list, tuple)) else img_size
        super().__init__(arch, out_indices, frozen_stages, norm_eval, init_cfg, pretrained, img_size=img_size,
                         **model_kwargs)
        self.feature_type, self.out_norm, self.pyramid = feature_type, out_norm, pyramid
        last, stream = self.trunk.depth - 1, feature_type == "stream"  # the model's last block (not pruned's)
        # a stream output the next block turns first is taken after the turn, as official Vim
        self._turned = {i for i in self.out_indices if i < last} if stream and self.trunk.rope is not None else set()
        if stream and last in self.out_indices:  # official last_layer_process='add': the last mixer output undropped
            self.trunk.layers[-1].drop_path = nn.Identity()
        self.norms = nn.ModuleList([LayerNorm2d(c) if out_norm else nn.Identity() for c in self.out_channels])
        self.rescales = None
        if pyramid is not None:
            if len(self.out_indices) != (4 if pyramid == "multi" else 1):
                needs = "4 out_indices" if pyramid == "multi" else "exactly one out index (every level from it)"
                raise ValueError(f"VimBackbone: pyramid={pyramid!r} needs {needs}, got out_indices={self.out_indices}")
            channels, stride = self.out_channels[-1], self.out_strides[-1]
            scales = [stride / s for s in (4, 8, 16, 32)]
            if pyramid_norm is not None and 4 not in scales:
                raise ValueError(f"VimBackbone: pyramid_norm={pyramid_norm!r} is unused at patch stride {stride} "
                                 f"(scales {scales}: no x4 branch); leave it None")
            self.rescales = nn.ModuleList([_rescale(s, channels, pyramid_norm or "ln2d") for s in scales])
            self.out_channels, self.out_strides = [channels] * 4, [4, 8, 16, 32]
        self.train(self.training)  # frozen_stages

    def _stem_and_stages(self):
        embeddings = [p for p in (self.trunk.pos_embed, self.trunk.cls_token) if p is not None]
        return [self.trunk.patch_embed] + embeddings, [[layer] for layer in self.trunk.layers]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.trunk.forward_intermediates(x, indices=list(self.out_indices), stop_early=True,
                                                 intermediates_only=True, intermediate_type=self.feature_type)
        feats = [norm(self._turn(f) if i in self._turned else f)
                 for norm, i, f in zip(self.norms, self.out_indices, feats)]
        if self.rescales is not None:
            feats = [op(f) for op, f in zip(self.rescales, feats * 4 if self.pyramid == "simple" else feats)]
        return tuple(f.contiguous() for f in feats)  # contiguous NCHW, as mmcv's RoIAlign reads it

    def _turn(self, f: torch.Tensor) -> torch.Tensor:
        """A (B, C, H, W) map turned by the trunk's rotary embedding."""
        B, C, H, W = f.shape
        return self.trunk.rope(f.flatten(2).transpose(1, 2), (H, W)).transpose(1, 2).reshape(B, C, H, W)

    def num_lr_layers(self) -> int:  # layer-wise lr decay (LayerDecayOptimWrapperConstructor)
        return len(self.trunk.layers) + 1

    def lr_layer_id(self, name: str) -> int:
        """0 for the embeddings, i + 1 for block i, the last id for everything added on top."""
        if name.startswith(("model.model.patch_embed", "model.model.pos_embed", "model.model.cls_token")):
            return 0
        if name.startswith("model.model.layers."):
            return int(name.split(".")[3]) + 1
        return self.num_lr_layers()
