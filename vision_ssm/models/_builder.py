"""Building the zoo's models and loading their weights the way timm's own model files do.

Each model file has a ``checkpoint_filter_fn(state_dict, model)`` that converts official checkpoints
and ends with :func:`adapt_to_model` (first conv to ``in_chans``, a classifier that does not fit left
at the model's init), and its ``_create_*`` calls :func:`build_ssm_model`:
``timm.models.build_model_with_cfg`` with ``pretrained_filter_fn`` and ``feature_cfg``, plus:

* ``pretrained_strict`` (default True) and ``pretrained_use_ema`` (default False) arguments;
* the filtered state dict checked against the model (:func:`check_state_dict`): missing, unexpected
  and mis-shaped keys are a :class:`PretrainedLoadError` naming them (a warning with
  ``pretrained_strict=False``), also where timm would load non-strictly (another ``num_classes``);
* a local file (``pretrained_cfg_overlay=dict(file=...)``) or URL (downloaded to timm's cache by
  timm's ``download_cached_file``) read by the zoo's safe reader
  (:func:`vision_ssm.checkpoint.load_checkpoint_file`: safetensors, or weights-only ``torch.load``
  with an allow-list; ``CorruptCheckpointError`` for a broken file), the training dict unwrapped
  (EMA weights only with ``pretrained_use_ema``), and handed to timm as its in-memory ``state_dict``
  source; Hugging Face hub files are read by timm, with the same allow-list in force;
* a failed download raised as :class:`PretrainedLoadError` naming the URL / hub id and the
  ``pretrained_cfg_overlay=dict(file=...)`` alternative;
* ``feature_cls='fx'``: :class:`~vision_ssm.models._fx.FeatureGraphMaps`.

A built model loads a file with ``timm.models.load_checkpoint(model, path, filter_fn=checkpoint_filter_fn)``
(timm's reader, which prefers EMA weights unless ``use_ema=False``) or with
:func:`load_pretrained_checkpoint` (the zoo's reader and key report; ``model.load_pretrained(path)``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import torch
import torch.nn as nn
import timm.models._builder as timm_builder  # its download_cached_file / has_hf_hub, as timm calls them
from timm.models import PretrainedCfg, adapt_input_conv, build_model_with_cfg, resolve_pretrained_cfg

from vision_ssm.checkpoint import (SAFE_CHECKPOINT_TYPES, STAND_IN_GLOBALS, load_checkpoint_file,
                                   report_incompatible_keys, state_dict_from_checkpoint)

from ._fx import FeatureGraphMaps

_logger = logging.getLogger(__name__)

__all__ = ["build_ssm_model", "load_pretrained_checkpoint", "adapt_to_model", "check_state_dict",
           "PretrainedLoaderMixin", "PretrainedLoadError"]

FilterFn = Callable[[Dict[str, torch.Tensor], nn.Module], Dict[str, torch.Tensor]]
CheckpointSource = Union[str, os.PathLike, Mapping[str, Any]]


class PretrainedLoadError(RuntimeError):
    """A checkpoint does not fit the model (missing, unexpected or mis-shaped keys), or its download failed."""


def adapt_to_model(state_dict: Dict[str, torch.Tensor], model: nn.Module, first_conv: str,
                   classifier: str) -> Dict[str, torch.Tensor]:
    """What every zoo filter ends with: the ``first_conv`` weight converted to the model's input
    channels (timm's ``adapt_input_conv``), and a ``classifier`` whose weight or bias does not fit
    (another ``num_classes`` or width, or none with ``num_classes=0``) left at the model's own init,
    weight and bias together, with a warning naming the shapes."""
    state_dict = dict(state_dict)
    model_sd = model.state_dict()
    key = first_conv + ".weight"
    src, dst = state_dict.get(key), model_sd.get(key)
    if src is not None and dst is not None and src.dim() == 4 and src.shape != dst.shape \
            and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:
        state_dict[key] = adapt_input_conv(dst.shape[1], src)
        _logger.info(f"Converted input conv {first_conv} from {src.shape[1]} to {dst.shape[1]} channels")

    keys = [classifier + suffix for suffix in (".weight", ".bias") if classifier + suffix in state_dict]
    if any(k not in model_sd or model_sd[k].shape != state_dict[k].shape for k in keys):
        shapes = [f"{k} checkpoint {tuple(state_dict[k].shape)} vs model {tuple(model_sd[k].shape)}"
                  if k in model_sd else f"{k} checkpoint {tuple(state_dict[k].shape)}, not in the model"
                  for k in keys]
        _logger.warning(f"classifier {classifier} does not fit the model (num_classes="
                        f"{getattr(model, 'num_classes', '?')}): {', '.join(shapes)}; "
                        f"not loaded (random init): {', '.join(keys)}")
        for k in keys:
            if k in model_sd:
                state_dict[k] = model_sd[k]
            else:
                del state_dict[k]
    return state_dict


def check_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module, strict: bool = True,
                     what: str = "checkpoint") -> tuple:
    """Compares a (filtered) state dict with the model: ``(loadable, report)``.

    ``report = dict(missing=..., unexpected=..., mismatched=...)``.  When any is non-empty:
    ``strict`` raises :class:`PretrainedLoadError` naming the keys, else a warning names them and
    ``loadable`` leaves them out (missing keys keep the model's values), so that
    ``model.load_state_dict(loadable)`` works strictly.
    """
    model_sd = model.state_dict()
    missing = [k for k in model_sd if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_sd]
    mismatched = [f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(model_sd[k].shape)})"
                  for k, v in state_dict.items() if k in model_sd and v.shape != model_sd[k].shape]
    report = dict(missing=missing, unexpected=unexpected, mismatched=mismatched)
    message = report_incompatible_keys(missing, unexpected, what=what)
    if mismatched:
        message = (message + "; " if message else f"{what}: ") + \
            f"{len(mismatched)} keys with mismatched shapes: {', '.join(mismatched[:20])}"
    if not message:
        return dict(state_dict), report
    if strict:
        raise PretrainedLoadError(
            f"{message}. The checkpoint does not match this {type(model).__name__}: check the variant / "
            f"constructor arguments, or pass pretrained_strict=False to load it partially.")
    _logger.warning(message)
    loadable = {k: v for k, v in state_dict.items() if k in model_sd and v.shape == model_sd[k].shape}
    return {**model_sd, **loadable}, report


def _model_filter(model: nn.Module) -> Optional[FilterFn]:
    return getattr(type(model), "checkpoint_filter_fn", None)


def load_pretrained_checkpoint(
        model: nn.Module,
        source: CheckpointSource,
        filter_fn: Optional[FilterFn] = None,
        use_ema: bool = False,
        strict: bool = True,
) -> Dict[str, List[str]]:
    """Loads a checkpoint file (or a state / training dict in memory) into ``model``: the safe reader,
    the training dict unwrapped (``use_ema``: its EMA weights), ``filter_fn`` (default: the model's
    ``checkpoint_filter_fn``), then :func:`check_state_dict`.  Returns its report."""
    if isinstance(source, Mapping):
        checkpoint, what = source, "in-memory checkpoint"
    else:
        checkpoint, what = load_checkpoint_file(source), f"checkpoint {os.fspath(source)}"
    state_dict = state_dict_from_checkpoint(checkpoint, use_ema=use_ema)
    filter_fn = filter_fn if filter_fn is not None else _model_filter(model)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    state_dict, report = check_state_dict(state_dict, model, strict=strict, what=what)
    model.load_state_dict(state_dict)
    return report


class PretrainedLoaderMixin:
    """``model.load_pretrained(path)``: :func:`load_pretrained_checkpoint` with the model's filter."""

    def load_pretrained(self, checkpoint_path: CheckpointSource, use_ema: bool = False, strict: bool = True):
        return load_pretrained_checkpoint(self, checkpoint_path, use_ema=use_ema, strict=strict)


def _checked(filter_fn: Optional[FilterFn], strict: bool, use_ema: bool, what: str) -> FilterFn:
    """timm's ``pretrained_filter_fn``: unwrap, ``filter_fn``, then the zoo's key check."""
    def filter_and_check(checkpoint: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
        state_dict = state_dict_from_checkpoint(checkpoint, use_ema=use_ema)
        if filter_fn is not None:
            state_dict = filter_fn(state_dict, model)
        return check_state_dict(state_dict, model, strict=strict, what=what)[0]
    return filter_and_check


def build_ssm_model(model_cls: Callable[..., nn.Module], variant: str, pretrained: bool = False,
                    **kwargs) -> nn.Module:
    """``timm.models.build_model_with_cfg`` with the zoo's loading rules (see the module docstring)."""
    strict = kwargs.pop("pretrained_strict", True)
    use_ema = kwargs.pop("pretrained_use_ema", False)
    filter_fn = kwargs.pop("pretrained_filter_fn", None)
    if str(kwargs.get("feature_cls", "")).lower() == "fx":
        kwargs["feature_cls"] = FeatureGraphMaps
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                 pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
    what = "in-memory checkpoint" if cfg.state_dict else "checkpoint"
    source = _file_or_url(cfg) if pretrained else None
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    try:
        if source is not None:  # read by the zoo's reader, loaded by timm as an in-memory state_dict
            path = source if source == cfg.file else timm_builder.download_cached_file(
                source, check_hash=False, cache_dir=kwargs.get("cache_dir"))
            what = f"checkpoint {source}"
            overlay["state_dict"] = state_dict_from_checkpoint(load_checkpoint_file(path), use_ema=use_ema)
        if overlay.get("state_dict") and "num_classes" in kwargs:
            # a classifier that fits loads (the filter leaves one that does not at its init); timm
            # drops any whose num_classes differs from the cfg's, which describes the default weights
            overlay["num_classes"] = kwargs["num_classes"]
        check = _checked(filter_fn, strict, use_ema=use_ema and source is None, what=what)  # read ones: unwrapped
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_TYPES + STAND_IN_GLOBALS):  # for hub files
            model = build_model_with_cfg(model_cls, variant, pretrained, pretrained_cfg_overlay=overlay,
                                         pretrained_filter_fn=check, pretrained_strict=strict, **kwargs)
    except _download_errors() as err:
        where = (f"hf-hub:{cfg.hf_hub_id} ({cfg.hf_hub_filename})" if source is None and cfg.hf_hub_id
                 else source or "its pretrained source")
        raise PretrainedLoadError(
            f"could not download the weights of {variant} from {where} ({type(err).__name__}: {err}); "
            f"download the file elsewhere and pass it with "
            f"pretrained_cfg_overlay=dict(file='/path/to/file.pth'), or use checkpoint_path=") from err
    if source is not None:  # timm records its source in pretrained_cfg: not the weights read here
        for module in (model, getattr(model, "model", None)):
            if isinstance(getattr(module, "pretrained_cfg", None), dict):
                module.pretrained_cfg.pop("state_dict", None)
    return model


def _file_or_url(cfg: PretrainedCfg) -> Optional[str]:
    """The local file or URL timm would load ``cfg``'s weights from (timm's order of sources), or None
    (an in-memory state dict, or the Hugging Face hub, which timm reads itself)."""
    if cfg.state_dict or cfg.source in ("hf-hub", "local-dir"):
        return None
    if cfg.file:
        return cfg.file
    if cfg.hf_hub_id and timm_builder.has_hf_hub():
        return None
    return cfg.url or None


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
