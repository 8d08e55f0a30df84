"""OpenMMLab backbones wrapping the zoo's timm models (built with ``features_only=True``).

``VMambaBackbone``  any VMamba variant (``arch='vmamba_tiny_s1l8'``, ``'vanilla_vmamba_tiny'`` ...):
                    stage outputs at strides 4/8/16/32, each through its own output norm
                    (``outnorm{i}``, as the official detection / segmentation backbone adds).
``VimBackbone``     plain Vim: outputs of chosen blocks at stride 16 (8 for the "+" models),
                    optionally rescaled into a pyramid at strides 4/8/16/32:
                    ``pyramid='multi'``  one block per level, x4 / x2 / x1 / x0.5 (official Vim
                                         segmentation backbone), or
                    ``pyramid='simple'`` ViTDet's simple feature pyramid from one block.
                    The position embedding is interpolated to any input size.

Both accept ``out_indices``, ``frozen_stages``, ``norm_eval``, ``scan=``, ``drop_path_rate`` and any
other constructor argument of the timm model (``dims``, ``depths``, ``embed_dim``, ``depth`` ...),
and ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``: an official VMamba / Vim checkpoint or
one written by ``tools/train.py``, read by the same loader and converter as
``timm.create_model(..., pretrained=True)`` (``vision_ssm.checkpoint.load_checkpoint_file`` and the
model's ``checkpoint_filter_fn``).  A checkpoint of another architecture raises an error naming
the missing / unexpected / mis-shaped keys.  ``prefix='backbone.'`` takes the backbone out of a
detector / segmentor checkpoint (its output norms and pyramid too).  ``pretrained=PATH`` (mmseg's
``model.pretrained``) is the same as ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``, and
``pretrained=True`` the same with ``checkpoint='timm'``; other ``init_cfg`` types (``Constant``,
``TruncNormal`` ...) are applied by mmengine before the checkpoint is loaded.
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
from mmengine.model.weight_init import PretrainedInit
from torch.nn.modules.batchnorm import _BatchNorm

import vision_ssm.models.vmamba  # noqa: F401  (registers the VMamba models with timm)
from vision_ssm.layers.norm import LayerNorm2d
from vision_ssm.models.vim import INTERMEDIATE_TYPES  # importing it registers the Vim models with timm

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


# keys of a Pretrained init_cfg; map_location is accepted for mmengine configs, the loader reads to the CPU
_PRETRAINED_KEYS = ("type", "checkpoint", "prefix", "use_ema", "map_location")


def _is_pretrained(cfg: dict) -> bool:
    return cfg.get("type") in ("Pretrained", PretrainedInit)


def _pretrained_init_cfg(pretrained, init_cfg, owner: str):
    """Turns mmseg's ``pretrained=`` into the equivalent ``init_cfg`` (timm never sees it)."""
    if pretrained is None or pretrained is False:
        return init_cfg
    if pretrained is True:
        checkpoint = "timm"
    elif isinstance(pretrained, str) and pretrained:
        checkpoint = pretrained
    else:
        raise TypeError(f"{owner}: pretrained must be a checkpoint path / URL / 'hf-hub:...', True "
                        f"(the arch's default weights) or None, got {pretrained!r}")
    if init_cfg:
        raise ValueError(f"{owner}: got both pretrained={pretrained!r} and init_cfg={init_cfg!r}; give the "
                         f"checkpoint once, as init_cfg=dict(type='Pretrained', checkpoint=...) or pretrained=")
    return dict(type="Pretrained", checkpoint=checkpoint)


def _check_init_cfg(init_cfg, owner: str) -> None:
    """At most one Pretrained entry, with a ``checkpoint`` and only the keys it understands."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg] if init_cfg else []
    for cfg in cfgs:
        if not isinstance(cfg, dict) or "type" not in cfg:
            raise TypeError(f"{owner}: each init_cfg must be a dict with a 'type', got {cfg!r}")
    pretrained = [c for c in cfgs if _is_pretrained(c)]
    if len(pretrained) > 1:
        raise ValueError(f"{owner}: init_cfg has {len(pretrained)} Pretrained entries, expected at most one")
    for cfg in pretrained:
        unknown = sorted(set(cfg) - set(_PRETRAINED_KEYS))
        if unknown:
            raise ValueError(f"{owner}: unknown keys {unknown} in init_cfg {cfg!r}; a Pretrained init_cfg "
                             f"takes {list(_PRETRAINED_KEYS)}")
        if not cfg.get("checkpoint"):
            raise ValueError(f"{owner}: init_cfg {cfg!r} has no checkpoint; expected "
                             f"dict(type='Pretrained', checkpoint=PATH, prefix=None)")
        if cfg.get("map_location", "cpu") not in ("cpu", None):
            raise ValueError(f"{owner}: init_cfg map_location must be 'cpu' (checkpoints are read to the CPU "
                             f"and copied into the model), got {cfg['map_location']!r}")
        prefix = cfg.get("prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise ValueError(f"{owner}: init_cfg prefix must be a non-empty string such as 'backbone.', "
                             f"got {prefix!r}")


def _index_tuple(out_indices, owner: str) -> Tuple[int, ...]:
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence) or not out_indices \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
        raise TypeError(f"{owner}: out_indices must be a non-empty sequence of ints, got {out_indices!r}")
    return tuple(out_indices)


def _check_out_indices(out_indices: Tuple[int, ...], count: int, owner: str) -> Tuple[int, ...]:
    """Negative indices counted from the end; then unique, increasing and in range(count).

    ``count``: the number of stages / blocks of the full (unpruned) model.
    """
    valid = f"each in 0..{count - 1} (or -{count}..-1 from the end), unique and in increasing order"
    if not all(-count <= i < count for i in out_indices):
        raise ValueError(f"{owner}: out_indices={out_indices} out of range: expected {valid}")
    normalised = tuple(i % count for i in out_indices)
    if len(set(normalised)) != len(normalised) or list(normalised) != sorted(normalised):
        given = f"{out_indices} (i.e. {normalised})" if normalised != out_indices else f"{out_indices}"
        raise ValueError(f"{owner}: out_indices={given} must be {valid}")
    return normalised


class _TimmBackbone(BaseModule):
    """Shared machinery: the timm feature model, freezing, norm_eval and checkpoint loading."""

    family: str = ""

    def __init__(self, arch: str, out_indices: Sequence[int], frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 pretrained: Optional[Union[str, bool]] = None, **model_kwargs):
        name = type(self).__name__
        init_cfg = _pretrained_init_cfg(pretrained, init_cfg, name)
        _check_init_cfg(init_cfg, name)
        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._model_kwargs = dict(model_kwargs)
        requested = _index_tuple(out_indices, name)
        # features_only: timm's FeatureGetterNet over forward_intermediates, with the blocks after
        # the last requested one, the final norm and the classifier pruned away.
        try:
            self.model = _create(self.family, arch, name, features_only=True, out_indices=requested,
                                 **model_kwargs)
        except AssertionError:  # timm: an index out of range; say which range
            _check_out_indices(requested, self._num_levels(), name)
            raise
        # timm counted negative indices from the end; repeated or unordered ones it keeps as given
        self.out_indices = tuple(self.model.out_indices)
        if list(self.out_indices) != sorted(set(self.out_indices)):
            _check_out_indices(requested, self._num_levels(), name)
        self.trunk_channels = list(self.model.feature_info.channels())
        self.trunk_strides = list(self.model.feature_info.reduction())

    def _num_levels(self) -> int:
        """Number of stages / blocks of the arch (built on the meta device: no memory)."""
        with torch.device("meta"):
            probe = _create(self.family, self.arch, type(self).__name__, features_only=True, out_indices=(-1,),
                            **self._model_kwargs)
        return len(probe.feature_info.info)

    @property
    def trunk(self) -> nn.Module:
        return self.model.model

    # --------------------------------------------------------------- weights
    def _init_cfgs(self) -> List[dict]:
        return self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg] if self.init_cfg else []

    def _pretrained_cfg(self) -> Optional[dict]:
        found = [c for c in self._init_cfgs() if _is_pretrained(c)]
        return found[-1] if found else None

    def init_weights(self):
        """Applies the other ``init_cfg`` types (mmengine), then loads the ``Pretrained`` one.

        ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None, use_ema=False)`` goes
        through the timm loader (:meth:`load_pretrained`); the rest (``Constant``, ``Kaiming``
        ...) through mmengine's ``BaseModule.init_weights``.  Without an init_cfg the model keeps
        its own initialisation (done at construction, as in timm).
        """
        pretrained = self._pretrained_cfg()
        already = self._is_init
        all_cfgs = self.init_cfg
        others = [c for c in self._init_cfgs() if not _is_pretrained(c)]
        self.init_cfg = others or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = all_cfgs
        if pretrained is not None and not already:
            self.load_pretrained(pretrained["checkpoint"], use_ema=pretrained.get("use_ema", False),
                                 prefix=pretrained.get("prefix"))

    def load_pretrained(self, checkpoint: str, use_ema: bool = False,
                        prefix: Optional[str] = None) -> Dict[str, List[str]]:
        """Loads a classification checkpoint into the trunk; returns what was ignored / added.

        ``checkpoint``: a local ``.pth`` / ``.safetensors`` file, an ``http(s)://`` URL,
        ``'hf-hub:OWNER/REPO/FILE'``, or ``'timm'`` (the arch's default weights).  It is loaded
        into a full (unpruned) model of the same arch and kwargs by
        ``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=...)``: the zoo's loader
        (``load_checkpoint_file``), the model's ``checkpoint_filter_fn`` and strict key checks,
        exactly as for classification.  Its weights are then copied into the pruned trunk.  Keys
        of the pruned parts (classifier, final norm, unused blocks) are reported as ignored, the
        layers added here (output norms, pyramid) as newly initialised.

        ``prefix`` (e.g. ``'backbone.'``): only the keys under it are used, without it; this
        reads the backbone of a detector / segmentor checkpoint, in the official layout or in
        this wrapper's (``model.model.*``, ``outnorm{i}.*`` ...), its added layers included.
        """
        from vision_ssm.models._builder import PretrainedLoadError
        name = type(self).__name__
        overlay = _checkpoint_overlay(checkpoint)
        own_sd = {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}
        own_found: Dict[str, torch.Tensor] = {}
        used = set(self.trunk.state_dict())

        def select(state_dict, model):
            """prefix -> keys of the added layers set aside -> the model's own converter."""
            if prefix:
                kept = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
                if not kept:
                    raise PretrainedBackboneError(
                        f"{name}: no key of the checkpoint {checkpoint} starts with init_cfg "
                        f"prefix={prefix!r}; its keys begin: {sorted(state_dict)[:5]}")
                state_dict = kept
            trunk_sd = {}
            for k, v in state_dict.items():
                if k in own_sd:
                    own_found[k] = v
                else:
                    trunk_sd[k[len("model.model."):] if k.startswith("model.model.") else k] = v
            convert = getattr(type(model), "checkpoint_filter_fn", None)
            converted = dict(convert(trunk_sd, model) if convert is not None else trunk_sd)
            # the parts pruned away here (classifier, final norm, later blocks) may be absent, as in a
            # detector's checkpoint; a missing key of the trunk itself is still an error
            for k, v in model.state_dict().items():
                if k not in converted and k not in used:
                    converted[k] = v
            return converted

        try:
            full = _create(self.family, self.arch, name, pretrained=True, pretrained_cfg_overlay=overlay,
                           pretrained_use_ema=use_ema, pretrained_strict=True, pretrained_filter_fn=select,
                           **self._model_kwargs)
        except PretrainedLoadError as err:
            raise PretrainedBackboneError(
                f"{name}(arch={self.arch!r}): the checkpoint {checkpoint} does not fit this "
                f"architecture (another arch, or dims/depths/scan overrides that differ from the "
                f"checkpoint's): {err}") from err
        mismatched = [f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(own_sd[k].shape)})"
                      for k, v in own_found.items() if v.shape != own_sd[k].shape]
        if mismatched:
            raise PretrainedBackboneError(f"{name}(arch={self.arch!r}): the checkpoint {checkpoint} has "
                                          f"mis-shaped keys: {', '.join(mismatched)}")
        full_sd = full.state_dict()
        trunk_sd = self.trunk.state_dict()
        ignored = sorted(k for k in full_sd if k not in trunk_sd)
        self.trunk.load_state_dict({k: v for k, v in full_sd.items() if k in trunk_sd}, strict=True)
        self.load_state_dict(own_found, strict=False)
        added = sorted(k for k in own_sd if k not in own_found)
        print_log(f"{name}: loaded {len(trunk_sd) + len(own_found)} tensors of {self.arch} from {checkpoint}"
                  f"{f' (prefix {prefix!r})' if prefix else ''}; "
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
        out_indices: stages to output (0..3; negative counts from the end), unique and increasing.
        out_norm: one norm per output (``outnorm{i}``, the model's norm type), as the official
            VMamba detection / segmentation backbone.
        frozen_stages: -1 none; k >= 0 freezes the patch embedding and stages 0..k-1.
        norm_eval: keep BatchNorm layers in eval mode while training.
        init_cfg: ``dict(type='Pretrained', checkpoint=..., prefix=None, use_ema=False)`` and / or
            other mmengine init types.
        pretrained: a checkpoint (same as ``init_cfg=dict(type='Pretrained', checkpoint=...)``),
            True for the arch's default weights (``checkpoint='timm'``), or None.
        **model_kwargs: any VMamba constructor argument (``scan``, ``drop_path_rate``, ``dims``,
            ``depths``, ``ssm_ratio``, ``forward_type`` ...).
    """

    family = "vmamba"

    def __init__(self, arch: str = "vmamba_tiny_s1l8", out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg=None, pretrained: Optional[Union[str, bool]] = None, **model_kwargs):
        super().__init__(arch, out_indices, frozen_stages, norm_eval, init_cfg, pretrained, **model_kwargs)
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
        # contiguous NCHW: mmcv's RoIAlign reads raw memory and misreads channels-last maps
        return tuple(getattr(self, f"outnorm{i}")(f).contiguous() for i, f in zip(self.out_indices, feats))


class ContiguousLayerNorm2d(LayerNorm2d):
    """``LN2d`` for OpenMMLab necks and heads: the channel LayerNorm with a contiguous NCHW result,
    since mmcv's RoIAlign reads raw memory (a channels-last map would be misread)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


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
        out_indices: blocks whose outputs are returned (e.g. (5, 11, 17, 23) of 24; negative
            counts from the end), unique and increasing.
        feature_type: what a block outputs: ``'stream'``, the residual stream after it (official
            Vim-S segmentation: ``use_residual_as_feature=True, last_layer_process='add'``), or
            ``'mixer'``, its mixer output before it joins the stream (official Vim-T segmentation,
            ``VisionMambaSeg``'s default).  With ``rope=True`` a stream output of any block but the
            model's last is taken as the next block receives it, turned by the rotary embedding,
            as official Vim does; the model's last block adds its mixer output without drop-path
            (official ``last_layer_process='add'``).
        out_norm: a LayerNorm (channel-first) on every output before the pyramid (official Vim
            segmentation has none).
        pyramid: None (every output at the patch stride), ``'multi'`` (needs 4 out_indices:
            rescaled x4, x2, x1, x0.5 to strides 4..32 for patch stride 16) or ``'simple'``
            (ViTDet: 4 levels at strides 4..32 from exactly one out index).
        pyramid_norm: norm inside the x4 branch: 'ln2d' (the default when None), 'bn' or
            'syncbn'; an error where there is no x4 branch (no pyramid, or patch stride 8).
        frozen_stages: -1 none; 0 freezes the patch / position embeddings and class token;
            k > 0 also the first k blocks.
        init_cfg, pretrained: as for :class:`VMambaBackbone`.
        **model_kwargs: any Vim constructor argument (``scan``, ``drop_path_rate``, ``embed_dim``,
            ``depth``, ``class_token`` ...).  ``class_token=False`` (official Vim segmentation) drops
            a checkpoint's class token and its position-embedding slot when loading, with a warning.
    """

    family = "vim"

    def __init__(self, arch: str = "vim_tiny_patch16_224", img_size: Union[int, Sequence[int]] = 512,
                 out_indices: Sequence[int] = (5, 11, 17, 23), feature_type: str = "stream", out_norm: bool = True,
                 pyramid: Optional[str] = None, pyramid_norm: Optional[str] = None, frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg=None, pretrained: Optional[Union[str, bool]] = None,
                 **model_kwargs):
        if pyramid not in (None, "multi", "simple"):
            raise ValueError(f"VimBackbone: pyramid must be None, 'multi' or 'simple', got {pyramid!r}")
        if pyramid is None and pyramid_norm is not None:
            raise ValueError(f"VimBackbone: pyramid_norm={pyramid_norm!r} needs a pyramid ('multi' or "
                             f"'simple'); with pyramid=None there is no x4 branch to normalise")
        if feature_type not in INTERMEDIATE_TYPES:
            raise ValueError(f"VimBackbone: feature_type must be one of {INTERMEDIATE_TYPES}, got {feature_type!r}")
        model_kwargs.setdefault("dynamic_img_size", True)
        model_kwargs.setdefault("dynamic_img_pad", True)
        if model_kwargs.get("class_token") is False:  # the pruned head's pool: the class token is gone
            model_kwargs.setdefault("global_pool", "avg")
        img_size = tuple(img_size) if isinstance(img_size, (list, tuple)) else img_size
        super().__init__(arch, out_indices, frozen_stages, norm_eval, init_cfg, pretrained, img_size=img_size,
                         **model_kwargs)
        self.feature_type = feature_type
        # blocks whose stream output the next block turns first (official: taken after the turn)
        self._turned = set()
        if feature_type == "stream":
            last_block = self.trunk.depth - 1  # the built depth (the trunk is pruned after the last output)
            if self.trunk.rope is not None:
                self._turned = {i for i in self.out_indices if i < last_block}
            if last_block in self.out_indices:  # official last_layer_process='add': the last mixer output undropped
                self.trunk.layers[-1].drop_path = nn.Identity()
        self.out_norm = out_norm
        channels, stride = self.trunk_channels[-1], self.trunk_strides[-1]
        self.norms = nn.ModuleList([LayerNorm2d(c) if out_norm else nn.Identity() for c in self.trunk_channels])
        self.pyramid = pyramid
        if pyramid is None:
            self.rescales = None
            self.out_channels = list(self.trunk_channels)
            self.out_strides = list(self.trunk_strides)
        else:
            if pyramid == "multi" and len(self.out_indices) != 4:
                raise ValueError(f"VimBackbone: pyramid='multi' needs 4 out_indices, got {self.out_indices}")
            if pyramid == "simple" and len(self.out_indices) != 1:
                raise ValueError(f"VimBackbone: pyramid='simple' builds every level from one block and needs "
                                 f"exactly one out index, got out_indices={self.out_indices}")
            scales = [stride / s for s in (4, 8, 16, 32)]
            if pyramid_norm is not None and 4 not in scales:
                raise ValueError(f"VimBackbone: pyramid_norm={pyramid_norm!r} is unused at patch stride {stride} "
                                 f"(the pyramid scales are {scales}: no x4 branch); leave pyramid_norm=None")
            self.rescales = nn.ModuleList([_rescale(s, channels, pyramid_norm or "ln2d") for s in scales])
            self.out_channels = [channels] * 4
            self.out_strides = [4, 8, 16, 32]
        self._freeze()

    def _turn(self, f: torch.Tensor) -> torch.Tensor:
        """A (B, C, H, W) map turned by the trunk's rotary embedding."""
        B, C, H, W = f.shape
        tokens = self.trunk.rope(f.flatten(2).transpose(1, 2), (H, W))
        return tokens.transpose(1, 2).reshape(B, C, H, W)

    def _stem_and_stages(self):
        trunk = self.trunk
        params = [p for p in (trunk.pos_embed, trunk.cls_token) if p is not None]
        return [trunk.patch_embed], params, list(trunk.layers)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.trunk.forward_intermediates(x, indices=list(self.out_indices), stop_early=True,
                                                 intermediates_only=True, intermediate_type=self.feature_type)
        feats = [self._turn(f) if i in self._turned else f for i, f in zip(self.out_indices, feats)]
        feats = [norm(f) for norm, f in zip(self.norms, feats)]
        if self.rescales is not None:
            feats = [op(f) for op, f in zip(self.rescales, feats * 4 if self.pyramid == "simple" else feats)]
        return tuple(f.contiguous() for f in feats)  # contiguous NCHW, as mmcv's RoIAlign reads it

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
