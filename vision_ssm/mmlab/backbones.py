"""OpenMMLab backbones wrapping the zoo's timm models (built with ``features_only=True``).

``VMambaBackbone``  any VMamba variant (``arch='vmamba_tiny_s1l8'``, ``'vanilla_vmamba_tiny'`` ...):
                    stage outputs at strides 4/8/16/32, each through its own output norm
                    (``outnorm{i}``, as the official detection / segmentation backbone adds).
``VimBackbone``     plain Vim: outputs of chosen blocks at stride 16 (8 for the "+" models),
                    optionally rescaled into a pyramid at strides 4/8/16/32:
                    ``pyramid='multi'``  one block per level, x4 / x2 / x1 / x0.5 (official Vim
                                         segmentation backbone), or
                    ``pyramid='simple'`` ViTDet's simple feature pyramid from the last block.
                    The position embedding is interpolated to any input size.

Both accept ``out_indices``, ``frozen_stages``, ``norm_eval``, ``scan=``, ``drop_path_rate`` and any
other constructor argument of the timm model (``dims``, ``depths``, ``embed_dim``, ``depth`` ...),
and ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``: an official VMamba / Vim checkpoint or
one written by ``tools/train.py``, read by the same loader and converter as
``timm.create_model(..., pretrained=True)`` (``vision_ssm.checkpoint.load_checkpoint_file`` and the
model's ``checkpoint_filter_fn``).  A checkpoint of another architecture raises an error naming
the missing / unexpected / mis-shaped keys.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

import vision_ssm.models.vim  # noqa: F401  (registers the Vim models with timm)
import vision_ssm.models.vmamba  # noqa: F401  (registers the VMamba models with timm)
from vision_ssm.layers.norm import LayerNorm2d

__all__ = ["VMambaBackbone", "VimBackbone", "PretrainedBackboneError"]


class PretrainedBackboneError(RuntimeError):
    """A checkpoint given to a backbone's ``init_cfg`` does not fit its architecture."""


def _checkpoint_overlay(checkpoint: str) -> dict:
    """timm ``pretrained_cfg_overlay`` naming a weight source (see ``load_pretrained``)."""
    if not isinstance(checkpoint, str) or not checkpoint:
        raise ValueError(f"init_cfg checkpoint must be a path, URL, 'hf-hub:...' or 'timm', got {checkpoint!r}")
    if checkpoint == "timm":
        return {}
    if checkpoint.startswith(("http://", "https://")):
        return dict(url=checkpoint, file=None, hf_hub_id=None)
    if checkpoint.startswith("hf-hub:"):
        parts = checkpoint[len("hf-hub:"):].split("/")
        if len(parts) < 3:
            raise ValueError(f"expected 'hf-hub:OWNER/REPO/FILE', got {checkpoint!r}")
        return dict(hf_hub_id="/".join(parts[:2]), hf_hub_filename="/".join(parts[2:]), file=None, url=None)
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"init_cfg checkpoint not found: {checkpoint}")
    return dict(file=os.path.abspath(checkpoint), url=None, hf_hub_id=None)


def _create(family: str, arch: str, owner: str, **kwargs) -> nn.Module:
    """``timm.create_model`` with the backbone's name in every error message."""
    names = timm.list_models(module=family)
    if arch not in names:
        raise KeyError(f"{owner}: unknown arch {arch!r}; the {family} models are: {', '.join(names)}")
    try:
        return timm.create_model(arch, **{"pretrained": False, **kwargs})
    except (KeyError, ValueError, TypeError, NotImplementedError) as err:
        raise type(err)(f"{owner}(arch={arch!r}): {err}") from err


class _TimmBackbone(BaseModule):
    """Shared machinery: the timm feature model, freezing, norm_eval and checkpoint loading."""

    family: str = ""

    def __init__(self, arch: str, out_indices: Sequence[int], frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **model_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._model_kwargs = dict(model_kwargs)
        name = type(self).__name__
        # features_only: timm's FeatureGetterNet over forward_intermediates, with the blocks after
        # the last requested one, the final norm and the classifier pruned away.
        self.model = _create(self.family, arch, name, features_only=True, out_indices=tuple(out_indices),
                             **model_kwargs)
        self.out_indices = tuple(self.model.out_indices)
        self.trunk_channels = list(self.model.feature_info.channels())
        self.trunk_strides = list(self.model.feature_info.reduction())

    @property
    def trunk(self) -> nn.Module:
        return self.model.model

    # --------------------------------------------------------------- weights
    def _pretrained_cfg(self) -> Optional[dict]:
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg] if self.init_cfg else []
        found = [c for c in cfgs if c.get("type") == "Pretrained"]
        return found[-1] if found else None

    def init_weights(self):
        """Loads ``init_cfg=dict(type='Pretrained', checkpoint=...)`` through the timm loader.

        Anything else keeps the model's own initialisation (done at construction, as in timm);
        the layers this wrapper adds keep PyTorch's defaults.
        """
        cfg = self._pretrained_cfg()
        if cfg is not None:
            self.load_pretrained(cfg["checkpoint"], use_ema=cfg.get("use_ema", False))
        self._is_init = True

    def load_pretrained(self, checkpoint: str, use_ema: bool = False) -> Dict[str, List[str]]:
        """Loads a classification checkpoint into the trunk; returns what was ignored / added.

        ``checkpoint``: a local ``.pth`` / ``.safetensors`` file, an ``http(s)://`` URL,
        ``'hf-hub:OWNER/REPO/FILE'``, or ``'timm'`` (the arch's default weights).  It is loaded
        into a full (unpruned) model of the same arch and kwargs by
        ``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=...)``: the zoo's loader
        (``load_checkpoint_file``), the model's ``checkpoint_filter_fn`` and strict key checks,
        exactly as for classification.  Its weights are then copied into the pruned trunk.  Keys
        of the pruned parts (classifier, final norm, unused blocks) are reported as ignored, the
        layers added here (output norms, pyramid) as newly initialised.
        """
        from vision_ssm.models._builder import PretrainedLoadError
        name = type(self).__name__
        overlay = _checkpoint_overlay(checkpoint)
        try:
            full = _create(self.family, self.arch, name, pretrained=True, pretrained_cfg_overlay=overlay,
                           pretrained_use_ema=use_ema, pretrained_strict=True, **self._model_kwargs)
        except PretrainedLoadError as err:
            raise PretrainedBackboneError(
                f"{name}(arch={self.arch!r}): the checkpoint {checkpoint} does not fit this "
                f"architecture (another arch, or dims/depths/scan overrides that differ from the "
                f"checkpoint's): {err}") from err
        full_sd = full.state_dict()
        trunk_sd = self.trunk.state_dict()
        ignored = sorted(k for k in full_sd if k not in trunk_sd)
        self.trunk.load_state_dict({k: v for k, v in full_sd.items() if k in trunk_sd}, strict=True)
        added = sorted(k for k in self.state_dict() if not k.startswith("model."))
        print_log(f"{name}: loaded {len(trunk_sd)} tensors of {self.arch} from {checkpoint}; "
                  f"ignored (pruned head / norm / blocks): {ignored or 'none'}; "
                  f"new (not in the checkpoint): {added or 'none'}", logger="current", level=logging.INFO)
        return dict(ignored=ignored, added=added)

    # --------------------------------------------------------------- freezing
    def _stem_and_stages(self) -> Tuple[List[nn.Module], List[nn.Parameter], List[nn.Module]]:
        raise NotImplementedError

    def _frozen_modules(self) -> Tuple[List[nn.Module], List[nn.Parameter]]:
        if self.frozen_stages < 0:
            return [], []
        stem, stem_params, stages = self._stem_and_stages()
        if self.frozen_stages > len(stages):
            raise ValueError(f"{type(self).__name__}: frozen_stages={self.frozen_stages} but the model "
                             f"has {len(stages)} stages")
        return stem + stages[:self.frozen_stages], stem_params

    def _freeze(self):
        modules, params = self._frozen_modules()
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False
        for p in params:
            p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


class VMambaBackbone(_TimmBackbone):
    """VMamba (any variant) for mmdet / mmseg: NCHW features at strides 4, 8, 16, 32.

    Args:
        arch: a VMamba model name registered with timm, e.g. ``'vmamba_tiny_s1l8'``,
            ``'vmamba_small_s2l15'``, ``'vanilla_vmamba_base'``.
        out_indices: stages to output (0..3).
        out_norm: one norm per output (``outnorm{i}``, the model's norm type), as the official
            VMamba detection / segmentation backbone.
        frozen_stages: -1 none; k >= 0 freezes the patch embedding and stages 0..k-1.
        norm_eval: keep BatchNorm layers in eval mode while training.
        **model_kwargs: any VMamba constructor argument (``scan``, ``drop_path_rate``, ``dims``,
            ``depths``, ``ssm_ratio``, ``forward_type`` ...).
    """

    family = "vmamba"

    def __init__(self, arch: str = "vmamba_tiny_s1l8", out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg=None, **model_kwargs):
        super().__init__(arch, out_indices, frozen_stages, norm_eval, init_cfg, **model_kwargs)
        # the model's own norm type (ln / ln2d -> a channel-first LayerNorm on NCHW maps; bn -> bn)
        block_norm = next((m for m in self.trunk.layers[0].modules()
                           if isinstance(m, (nn.LayerNorm, _BatchNorm))), None)
        self._norm_cls = nn.BatchNorm2d if isinstance(block_norm, _BatchNorm) else LayerNorm2d
        self.out_norm = out_norm
        for i, c in zip(self.out_indices, self.trunk_channels):
            self.add_module(f"outnorm{i}", self._norm_cls(c) if out_norm else nn.Identity())
        self.out_channels = list(self.trunk_channels)
        self.out_strides = list(self.trunk_strides)
        self._freeze()

    def _stem_and_stages(self):
        trunk = self.trunk
        stem_params = [trunk.pos_embed] if getattr(trunk, "pos_embed", None) is not None else []
        stages = []
        for i, layer in enumerate(trunk.layers):
            mods = [layer]
            if i in self.out_indices:
                mods.append(getattr(self, f"outnorm{i}"))
            stages.append(nn.ModuleList(mods))
        return [trunk.patch_embed], stem_params, stages

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.model(x)
        return tuple(getattr(self, f"outnorm{i}")(f) for i, f in zip(self.out_indices, feats))


class _Deconv(nn.Sequential):
    """ConvTranspose2d kernel 2 stride 2 (x2 upsampling)."""

    def __init__(self, channels: int):
        super().__init__(nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2))


def _norm2d(kind: str, channels: int) -> nn.Module:
    kinds = {"ln2d": LayerNorm2d, "bn": nn.BatchNorm2d, "syncbn": nn.SyncBatchNorm}
    if kind.lower() not in kinds:
        raise ValueError(f"pyramid_norm must be one of {tuple(kinds)}, got {kind!r}")
    return kinds[kind.lower()](channels)


def _rescale(scale: float, channels: int, norm: str) -> nn.Module:
    """x4: deconv-norm-GELU-deconv; x2: deconv; x1: identity; x0.5 / x0.25: max pooling."""
    if scale == 4:
        return nn.Sequential(_Deconv(channels), _norm2d(norm, channels), nn.GELU(), _Deconv(channels))
    if scale == 2:
        return _Deconv(channels)
    if scale == 1:
        return nn.Identity()
    if scale in (0.5, 0.25):
        k = int(round(1 / scale))
        return nn.MaxPool2d(kernel_size=k, stride=k)
    raise ValueError(f"unsupported pyramid scale {scale}; use 4, 2, 1, 0.5 or 0.25")


class VimBackbone(_TimmBackbone):
    """Plain Vision Mamba for mmdet / mmseg.

    Args:
        arch: a Vim model name registered with timm, e.g. ``'vim_tiny_patch16_224'``.
        img_size: the position-embedding grid the model is built at (e.g. the training crop);
            checkpoints at 224 are interpolated once when loaded, and other input sizes at
            forward time (``dynamic_img_size``); sizes that are not a multiple of the patch
            stride are zero-padded.
        out_indices: blocks whose outputs are returned (e.g. (5, 11, 17, 23) of 24).
        out_norm: a LayerNorm (channel-first) on every output before the pyramid.
        pyramid: None (every output at the patch stride), ``'multi'`` (needs 4 out_indices:
            rescaled x4, x2, x1, x0.5 to strides 4..32 for patch stride 16) or ``'simple'``
            (ViTDet: 4 levels at strides 4..32 from the last out index).
        pyramid_norm: norm inside the x4 branch: 'ln2d' (default), 'bn' or 'syncbn'.
        frozen_stages: -1 none; 0 freezes the patch / position embeddings and class token;
            k > 0 also the first k blocks.
        **model_kwargs: any Vim constructor argument (``scan``, ``drop_path_rate``, ``embed_dim``,
            ``depth``, ``class_token`` ...).
    """

    family = "vim"

    def __init__(self, arch: str = "vim_tiny_patch16_224", img_size: Union[int, Sequence[int]] = 512,
                 out_indices: Sequence[int] = (5, 11, 17, 23), out_norm: bool = True,
                 pyramid: Optional[str] = None, pyramid_norm: str = "ln2d", frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg=None, **model_kwargs):
        model_kwargs.setdefault("dynamic_img_size", True)
        model_kwargs.setdefault("dynamic_img_pad", True)
        img_size = tuple(img_size) if isinstance(img_size, (list, tuple)) else img_size
        super().__init__(arch, out_indices, frozen_stages, norm_eval, init_cfg, img_size=img_size,
                         **model_kwargs)
        self.out_norm = out_norm
        channels, stride = self.trunk_channels[-1], self.trunk_strides[-1]
        self.norms = nn.ModuleList([LayerNorm2d(c) if out_norm else nn.Identity() for c in self.trunk_channels])
        self.pyramid = pyramid
        if pyramid is None:
            self.rescales = None
            self.out_channels = list(self.trunk_channels)
            self.out_strides = list(self.trunk_strides)
        else:
            if pyramid not in ("multi", "simple"):
                raise ValueError(f"VimBackbone: pyramid must be None, 'multi' or 'simple', got {pyramid!r}")
            if pyramid == "multi" and len(self.out_indices) != 4:
                raise ValueError(f"VimBackbone: pyramid='multi' needs 4 out_indices, got {self.out_indices}")
            scales = [stride / s for s in (4, 8, 16, 32)]
            self.rescales = nn.ModuleList([_rescale(s, channels, pyramid_norm) for s in scales])
            self.out_channels = [channels] * 4
            self.out_strides = [4, 8, 16, 32]
        self._freeze()

    def _stem_and_stages(self):
        trunk = self.trunk
        params = [p for p in (trunk.pos_embed, trunk.cls_token) if p is not None]
        return [trunk.patch_embed], params, list(trunk.layers)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = [norm(f) for norm, f in zip(self.norms, self.model(x))]
        if self.rescales is None:
            return tuple(feats)
        if self.pyramid == "simple":
            feats = [feats[-1]] * 4
        return tuple(op(f) for op, f in zip(self.rescales, feats))

    # layer-wise learning-rate decay (used by LayerDecayOptimWrapperConstructor)
    def num_lr_layers(self) -> int:
        return len(self.trunk.layers) + 1

    def lr_layer_id(self, name: str) -> int:
        """0 for the embeddings, i + 1 for block i, the last id for everything added on top."""
        if name.startswith(("model.model.patch_embed", "model.model.pos_embed", "model.model.cls_token")):
            return 0
        if name.startswith("model.model.layers."):
            return int(name.split(".")[3]) + 1
        return self.num_lr_layers()
