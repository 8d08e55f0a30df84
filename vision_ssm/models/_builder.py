"""Building the zoo's models through timm, with pretrained weights read by OUR safe loader.

Shared by every backbone (VMamba, Vim).  Public API:

``build_ssm_model(model_cls, variant, pretrained=False, *, default_out_indices=None, **kwargs)``
    ``timm.models.build_model_with_cfg`` with
      * ``feature_cfg=dict(feature_cls='getter', out_indices=...)``: ``features_only=True`` gives
        timm's ``FeatureGetterNet`` over the model's ``forward_intermediates``;
      * every pretrained source routed to :func:`load_pretrained_checkpoint`: through ``custom_load``
        ``file`` (local ``.pth`` / ``.safetensors``, e.g. ``pretrained_cfg_overlay=dict(file=PATH)``),
        ``url`` (downloaded to timm's cache first) and ``hf-hub`` (``hf_hub_id`` + ``hf_hub_filename``,
        which timm fetches and hands to ``model.load_pretrained`` when ``custom_load == 'hf'``); an
        in-memory ``state_dict`` (``pretrained_cfg_overlay=dict(state_dict=...)``, a state dict or a
        training dict), which timm would load itself, is loaded right after the model is built.
    Extra keyword arguments understood here (all optional, removed before the model sees them):
      ``pretrained_filter_fn``  ``(state_dict, model) -> state_dict``; default: the class attribute
                                ``model_cls.checkpoint_filter_fn`` (a staticmethod) if there is one.
      ``pretrained_strict``     raise on missing / unexpected keys (default True).
      ``pretrained_use_ema``    load the EMA weights of a training dict (default False).
      ``feature_cfg``           overrides for the feature wrapper (e.g. default ``out_indices``);
                                the default ``out_indices`` is ``default_out_indices``, else
                                ``model_cls.default_out_indices``, else (0, 1, 2, 3).

``load_pretrained_checkpoint(model, source, filter_fn=None, use_ema=False, strict=True)``
    ``source``: a checkpoint file, or a checkpoint already in memory (state dict or training dict).
    load_checkpoint_file -> unwrap_state_dict -> strip ``module.`` -> filter_fn -> drop a
    classifier head whose weight or bias no longer fits (another num_classes or width: timm's
    behaviour, reported with the shapes; weight and bias together) -> adapt the first conv to
    ``in_chans`` when needed -> ``load_state_dict(strict=False)`` -> raise (strict) or warn,
    naming every missing / unexpected / mis-shaped key.

``PretrainedLoaderMixin``
    gives a model ``load_pretrained(source)``, the hook timm calls for ``custom_load`` sources.

``make_cfg(url=None, hf_hub_id=None, hf_hub_filename=None, **kw)``
    a ``default_cfgs`` entry (a dict for ``timm.models.generate_default_cfgs``) with
    ``custom_load`` set so that the weights always go through our loader.
"""
from __future__ import annotations

import logging
import os
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from vision_ssm.checkpoint import load_checkpoint_file, report_incompatible_keys, state_dict_from_checkpoint

_logger = logging.getLogger(__name__)

__all__ = ["build_ssm_model", "load_pretrained_checkpoint", "PretrainedLoaderMixin", "make_cfg",
           "PretrainedLoadError"]

FilterFn = Callable[[Dict[str, torch.Tensor], nn.Module], Dict[str, torch.Tensor]]
CheckpointSource = Union[str, os.PathLike, Mapping[str, Any]]

_SOURCE_KEYS = ("file", "url", "hf_hub_id", "hf_hub_filename")


class PretrainedLoadError(RuntimeError):
    """A checkpoint does not fit the model (missing, unexpected or mis-shaped keys)."""


def _as_tuple(names) -> Tuple[str, ...]:
    if not names:
        return ()
    return (names,) if isinstance(names, str) else tuple(names)


def _classifier_names(model: nn.Module) -> Tuple[str, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") if isinstance(cfg, dict) else None
    if names is None:
        names = getattr(model, "classifier_names", None)
    return _as_tuple(names)


def _first_conv_names(model: nn.Module) -> Tuple[str, ...]:
    traits = getattr(model, "_traits", None) or {}
    names = traits.get("first_conv")
    if names is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        names = cfg.get("first_conv") if isinstance(cfg, dict) else None
    return _as_tuple(names)


def _adapt_first_conv(model: nn.Module, state_dict: Dict[str, torch.Tensor],
                      model_sd: Dict[str, torch.Tensor]) -> None:
    """Converts an RGB stem to the model's ``in_chans`` (timm's ``adapt_input_conv``)."""
    from timm.models import adapt_input_conv
    for name in _first_conv_names(model):
        key = name + ".weight"
        if key not in state_dict or key not in model_sd:
            continue
        src, dst = state_dict[key], model_sd[key]
        if src.dim() == 4 and src.shape != dst.shape and src.shape[0] == dst.shape[0] \
                and src.shape[2:] == dst.shape[2:]:
            try:
                state_dict[key] = adapt_input_conv(dst.shape[1], src)
                _logger.info(f"Converted input conv {name} from {src.shape[1]} to {dst.shape[1]} channels")
            except NotImplementedError:
                pass


def _drop_unfit_classifier(model: nn.Module, state_dict: Dict[str, torch.Tensor],
                            model_sd: Dict[str, torch.Tensor], what: str) -> List[str]:
    """timm's behaviour: a classifier whose weight or bias does not fit the model (another num_classes
    or feature width, or no head with num_classes=0) is left out whole, with a warning naming the shapes.

    Returns the keys left out (the model's own head stays at its random init).
    """
    dropped: List[str] = []
    for name in _classifier_names(model):
        keys = [name + suffix for suffix in (".weight", ".bias") if name + suffix in state_dict]
        unfit = [k for k in keys if k not in model_sd or model_sd[k].shape != state_dict[k].shape]
        if not unfit:
            continue
        shapes = [f"{k} checkpoint {tuple(state_dict[k].shape)} vs model {tuple(model_sd[k].shape)}"
                  if k in model_sd else f"{k} checkpoint {tuple(state_dict[k].shape)}, not in the model"
                  for k in keys]
        num_classes = getattr(model, "num_classes", None)
        _logger.warning(f"{what}: classifier {name} does not fit the model"
                        f"{f' (num_classes={num_classes})' if num_classes is not None else ''}: "
                        f"{', '.join(shapes)}; not loaded (random init): {', '.join(keys)}")
        for k in keys:
            del state_dict[k]
        dropped.extend(keys)
    return dropped


def load_pretrained_checkpoint(
        model: nn.Module,
        source: CheckpointSource,
        filter_fn: Optional[FilterFn] = None,
        use_ema: bool = False,
        strict: bool = True,
) -> Dict[str, List[str]]:
    """Loads a checkpoint (a file, or a state / training dict in memory) into ``model`` through the
    safe loader; see the module docstring.

    Returns ``dict(missing=..., unexpected=..., mismatched=..., dropped_head=...)``.
    Raises :class:`PretrainedLoadError` naming the offending keys when ``strict`` and anything
    besides a dropped classifier head is missing, unexpected or of the wrong shape.
    """
    if isinstance(source, Mapping):
        checkpoint, what = source, "in-memory checkpoint"
    else:
        checkpoint, what = load_checkpoint_file(source), f"checkpoint {os.fspath(source)}"
    state_dict = state_dict_from_checkpoint(checkpoint, use_ema=use_ema)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    state_dict = dict(state_dict)
    model_sd = model.state_dict()

    dropped_head = _drop_unfit_classifier(model, state_dict, model_sd, what)
    dropped_modules = {k.rsplit(".", 1)[0] for k in dropped_head}  # their keys are expected to be missing

    _adapt_first_conv(model, state_dict, model_sd)

    mismatched_keys = [k for k, v in state_dict.items() if k in model_sd and model_sd[k].shape != v.shape]
    mismatched = [f"{k} (checkpoint {tuple(state_dict[k].shape)} vs model {tuple(model_sd[k].shape)})"
                  for k in mismatched_keys]
    for k in mismatched_keys:
        del state_dict[k]

    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys
               if k not in mismatched_keys and k.rsplit(".", 1)[0] not in dropped_modules]
    unexpected = list(result.unexpected_keys)
    message = report_incompatible_keys(missing, unexpected, what=what)
    if mismatched:
        message = (message + "; " if message else f"{what}: ") + \
            f"{len(mismatched)} keys with mismatched shapes: {', '.join(mismatched[:20])}"
    if message:
        arch = type(model).__name__
        if strict:
            raise PretrainedLoadError(
                f"{message}. The checkpoint does not match this {arch}: check the variant / "
                f"constructor arguments, or pass pretrained_strict=False to load it partially.")
        _logger.warning(message)
    return dict(missing=missing, unexpected=unexpected, mismatched=mismatched, dropped_head=dropped_head)


def _resolve_filter_fn(model: nn.Module) -> Optional[FilterFn]:
    fn = getattr(model, "_ssm_pretrained_filter_fn", None)
    if fn is None:
        fn = getattr(type(model), "checkpoint_filter_fn", None)
    return fn


def _load_pretrained_method(self: nn.Module, checkpoint_path: CheckpointSource, use_ema: Optional[bool] = None,
                            strict: Optional[bool] = None, filter_fn: Optional[FilterFn] = None):
    return load_pretrained_checkpoint(
        self, checkpoint_path,
        filter_fn=filter_fn if filter_fn is not None else _resolve_filter_fn(self),
        use_ema=getattr(self, "_ssm_pretrained_use_ema", False) if use_ema is None else use_ema,
        strict=getattr(self, "_ssm_pretrained_strict", True) if strict is None else strict,
    )


class PretrainedLoaderMixin:
    """``model.load_pretrained(source)``: the hook timm calls for ``custom_load`` pretrained sources
    (``source``: a checkpoint file or an in-memory state / training dict).

    A class using it may define ``checkpoint_filter_fn = staticmethod(fn)`` with
    ``fn(state_dict, model) -> state_dict``; ``build_ssm_model`` records its strict / EMA options.
    """

    def load_pretrained(self, checkpoint_path: CheckpointSource, use_ema: Optional[bool] = None,
                        strict: Optional[bool] = None, filter_fn: Optional[FilterFn] = None):
        return _load_pretrained_method(self, checkpoint_path, use_ema=use_ema, strict=strict,
                                       filter_fn=filter_fn)


def _route_to_custom_load(overlay: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """timm resets ``custom_load`` to False when an overlay names a weight source; we keep our loader."""
    overlay = dict(overlay or {})
    if any(overlay.get(k) for k in _SOURCE_KEYS) and "custom_load" not in overlay:
        overlay["custom_load"] = "hf"  # truthy: file/url -> load_pretrained; hf-hub (+filename) too
    return overlay


def build_ssm_model(model_cls, variant: str, pretrained: bool = False, *,
                    default_out_indices: Optional[Union[int, Sequence[int]]] = None, **kwargs) -> nn.Module:
    """Builds ``variant`` of ``model_cls`` through timm; see the module docstring."""
    filter_fn = kwargs.pop("pretrained_filter_fn", None)
    if filter_fn is None:
        filter_fn = getattr(model_cls, "checkpoint_filter_fn", None)
    strict = kwargs.pop("pretrained_strict", True)
    use_ema = kwargs.pop("pretrained_use_ema", False)
    if default_out_indices is None:
        default_out_indices = tuple(getattr(model_cls, "default_out_indices", (0, 1, 2, 3)))
    feature_cfg = dict(feature_cls="getter", out_indices=default_out_indices)
    feature_cfg.update(kwargs.pop("feature_cfg", None) or {})
    kwargs["pretrained_cfg_overlay"] = _route_to_custom_load(kwargs.get("pretrained_cfg_overlay"))
    # timm loads an in-memory state_dict itself (non-strict whenever num_classes differs, no unwrapping):
    # it is loaded here instead, between construction and timm's feature wrapper, as timm would.
    in_memory = kwargs["pretrained_cfg_overlay"].get("state_dict") if pretrained else None
    source_cfg = None
    if in_memory:
        source_cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                            pretrained_cfg_overlay=kwargs["pretrained_cfg_overlay"]).to_dict()

    def factory(**model_kwargs):
        model = model_cls(**model_kwargs)
        model._ssm_pretrained_filter_fn = filter_fn
        model._ssm_pretrained_strict = strict
        model._ssm_pretrained_use_ema = use_ema
        if not hasattr(model, "load_pretrained"):
            model.load_pretrained = types.MethodType(_load_pretrained_method, model)
        if in_memory:
            model.pretrained_cfg = source_cfg  # what timm sets before loading (classifier, first_conv)
            model.pretrained_model_args = dict(kwargs.get("pretrained_model_args") or {})
            model.load_pretrained(in_memory)
        return model

    try:
        return build_model_with_cfg(
            factory, variant, pretrained and not in_memory,
            pretrained_filter_fn=filter_fn,
            pretrained_strict=strict,
            feature_cfg=feature_cfg,
            **kwargs,
        )
    except _download_errors() as err:
        cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                     pretrained_cfg_overlay=kwargs["pretrained_cfg_overlay"]).to_dict()
        where = (f"hf-hub:{cfg['hf_hub_id']} ({cfg.get('hf_hub_filename')})" if cfg.get("hf_hub_id")  # timm's order
                 else cfg.get("url") or "its pretrained source")
        raise PretrainedLoadError(
            f"could not download the weights of {variant} from {where} ({type(err).__name__}: {err}); "
            f"download the file elsewhere and pass it with "
            f"pretrained_cfg_overlay=dict(file='/path/to/file.pth'), or use checkpoint_path=") from err


def _download_errors() -> tuple:
    """Exceptions of a failed download (urllib for URLs, huggingface_hub for the hub)."""
    import urllib.error
    errors = [urllib.error.URLError, ConnectionError, TimeoutError]
    try:
        from huggingface_hub import errors as hub_errors
        errors += [hub_errors.HfHubHTTPError, hub_errors.LocalEntryNotFoundError]
    except ImportError:
        pass
    return tuple(errors)


def make_cfg(url: Optional[str] = None, hf_hub_id: Optional[str] = None,
             hf_hub_filename: Optional[str] = None, **kw) -> Dict[str, Any]:
    """A ``default_cfgs`` entry whose weights load through :func:`load_pretrained_checkpoint`.

    With ``hf_hub_id`` the file name defaults to ``model.safetensors`` (timm only routes a hub
    download to ``model.load_pretrained`` when a file name is given).
    """
    if hf_hub_id and not hf_hub_filename:
        hf_hub_filename = "model.safetensors"
    cfg = dict(
        url=url,
        hf_hub_id=hf_hub_id,
        hf_hub_filename=hf_hub_filename,
        custom_load="hf",  # truthy for file/url; 'hf' also routes hub files to load_pretrained
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=0.875,
        interpolation="bicubic",
        fixed_input_size=False,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="patch_embed.0",
        classifier="head",
        license="apache-2.0",
    )
    cfg.update(kw)
    return {k: v for k, v in cfg.items() if v is not None or k in ("first_conv", "classifier", "pool_size")}
