"""Building any timm-registered model with clear errors, and loading weights into it."""
from __future__ import annotations

import difflib
import importlib
import logging
import sys
import warnings
from typing import Any, Mapping

import torch
import torch.nn as nn

from vision_ssm.checkpoint import (load_checkpoint_file, report_incompatible_keys, strip_prefix,
                                   unwrap_state_dict)

_logger = logging.getLogger(__name__)

__all__ = ["PretrainedWeightsError", "register_models", "check_model_name", "check_scan", "build_model",
           "check_img_size", "load_weights", "no_weight_decay_names"]

_REGISTERED = False


class PretrainedWeightsError(RuntimeError):
    """--pretrained / --pretrained-path weights could not be loaded (e.g. no network access)."""


def register_models() -> None:
    """Imports ``vision_ssm.models`` so that the zoo's models are registered with timm."""
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        importlib.import_module("vision_ssm.models")
    except Exception as err:  # a broken model module must not hide timm's own models
        warnings.warn(f"vision_ssm.models could not be imported ({type(err).__name__}: {err}); "
                      f"only timm's own models are available")
    for name in ("vmamba", "vim"):
        try:
            importlib.import_module(f"vision_ssm.models.{name}")
        except ImportError:
            pass
        except Exception as err:
            warnings.warn(f"vision_ssm.models.{name} could not be imported ({type(err).__name__}: {err})")
    _REGISTERED = True


def check_model_name(name: str) -> None:
    import timm
    register_models()
    base = name.split(".", 1)[0]
    if timm.is_model(base):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(base, names, n=6, cutoff=0.6)
    if not close:
        close = [n for n in names if base.split("_")[0] and n.startswith(base.split("_")[0])][:6]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(f"--model {name!r} is not a registered timm model{hint} "
                     f"(timm.list_models('*pattern*') lists them)")


def check_scan(scan: str) -> None:
    try:
        import scans
    except Exception as err:
        raise ValueError(f"--scan {scan!r}: the scans package cannot be imported ({err})") from err
    available = list(scans.list_scans())
    if scan not in available:
        close = difflib.get_close_matches(scan, available, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ValueError(f"--scan {scan!r} is unknown{hint}; available scans: {', '.join(available)}")


def build_model(
        name: str,
        num_classes: int,
        *,
        pretrained: bool = False,
        pretrained_path: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        scan: str | None = None,
        drop_rate: float | None = None,
        drop_path_rate: float | None = None,
        img_size: int | None = None,
) -> nn.Module:
    """``timm.create_model`` with the zoo registered and errors that name the flag at fault.

    ``img_size`` is passed to models whose constructor takes it (ViT, Vim, VMamba, ...), unless
    ``model_kwargs`` sets ``img_size`` itself; models without it (ResNets) are built without.
    ``pretrained_path`` loads a local file as the pretrained weights (classifier adapted to
    ``num_classes``), through timm's ``pretrained_cfg_overlay=dict(file=...)``.
    """
    import timm
    check_model_name(name)
    kwargs = dict(model_kwargs or {})
    if scan is not None:
        check_scan(scan)
        if "scan" in kwargs and kwargs["scan"] != scan:
            raise ValueError(f"--scan {scan!r} conflicts with --model-kwargs scan={kwargs['scan']!r}")
        kwargs["scan"] = scan
    kwargs.setdefault("num_classes", num_classes)
    for flag, key, value in (("--drop", "drop_rate", drop_rate), ("--drop-path", "drop_path_rate", drop_path_rate)):
        if value is None:
            continue
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"{flag} {value} conflicts with --model-kwargs {key}={kwargs[key]!r}")
        kwargs[key] = value
    factory: dict[str, Any] = {}
    if pretrained_path is not None:
        import os
        if not os.path.isfile(pretrained_path):
            raise ValueError(f"--pretrained-path {pretrained_path!r} is not a file")
        factory = dict(pretrained=True, pretrained_cfg_overlay=dict(file=os.fspath(pretrained_path)))
    elif pretrained:
        factory = dict(pretrained=True)

    def create(extra):
        return timm.create_model(name, **factory, **kwargs, **extra)

    pass_size = img_size is not None and "img_size" not in kwargs
    try:
        if pass_size:
            try:
                return create(dict(img_size=img_size))
            except TypeError as err:
                if "img_size" not in str(err):
                    raise
            except (ValueError, AssertionError, RuntimeError) as err:
                if factory:
                    raise
                raise ValueError(f"--img-size {img_size}: model {name!r} cannot be built for "
                                 f"{img_size}x{img_size} inputs ({type(err).__name__}: {err})") from err
        return create({})
    except TypeError as err:
        msg = str(err)
        if "scan" in msg and "scan" in kwargs:
            raise ValueError(f"--scan {scan!r}: model {name!r} does not take a scan= argument ({msg})") from err
        if "drop_path_rate" in msg or "drop_rate" in msg:
            raise ValueError(f"--drop/--drop-path: model {name!r} does not take it ({msg})") from err
        raise ValueError(f"--model-kwargs {dict(model_kwargs or {})}: model {name!r} rejects its arguments "
                         f"({msg})") from err
    except (RuntimeError, OSError, ValueError, AssertionError) as err:
        if isinstance(err, ValueError) and str(err).startswith("--"):
            raise
        if factory:
            what = f"--pretrained-path {pretrained_path!r}" if pretrained_path else "--pretrained"
            raise PretrainedWeightsError(
                f"{what}: could not load pretrained weights for {name!r} ({type(err).__name__}: {err}). "
                f"Without network access, pass a local file with --pretrained-path") from err
        raise ValueError(f"--model {name!r} with --model-kwargs {dict(model_kwargs or {})} could not be "
                         f"built ({type(err).__name__}: {err})") from err


def check_img_size(model: nn.Module, img_size: int, name: str = "", in_chans: int = 3,
                   device: torch.device | str = "cpu") -> int:
    """Runs a dummy forward at ``img_size``; re-raises the model's own error naming ``--img-size``.

    Returns the number of logits.  The model's mode is restored and no state changes (eval mode,
    no grad, so no BN statistics move and no random numbers are drawn).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, in_chans, img_size, img_size, device=device))
    except Exception as err:
        raise ValueError(
            f"--img-size {img_size}: model {name or type(model).__name__!r} cannot take "
            f"{img_size}x{img_size} inputs ({type(err).__name__}: {err}). Choose another --img-size, "
            f"or build the model for it (e.g. --model-kwargs img_size={img_size})") from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"--model {name!r}: forward returned {type(out).__name__} "
                         f"{tuple(getattr(out, 'shape', ()))}; a classifier must return (batch, classes) logits")
    return int(out.shape[1])


def load_weights(model: nn.Module, path: str, use_ema: bool = False, strict: bool = True) -> dict:
    """Loads a training checkpoint of ours or an official one into ``model``.

    Our checkpoints (``model`` / ``model_ema`` keys) load directly.  Other files go through the
    model's own loader when it has one (``model.load_pretrained`` of the zoo's models, which
    converts official VMamba/Vim layouts), else through the model module's
    ``checkpoint_filter_fn`` (timm's convention).  Returns the checkpoint dict (or {}).
    """
    checkpoint = load_checkpoint_file(path)
    ours = isinstance(checkpoint, Mapping) and "model" in checkpoint and "args" in checkpoint
    if not ours and _has_zoo_loader(model):
        try:
            model.load_pretrained(path, use_ema=use_ema, strict=strict)
        except TypeError:
            model.load_pretrained(path)
        return checkpoint if isinstance(checkpoint, Mapping) else {}
    try:
        state_dict = unwrap_state_dict(checkpoint, use_ema=use_ema)
    except KeyError as err:
        raise ValueError(f"--checkpoint {path!r}: {err.args[0] if err.args else err}") from err
    state_dict = strip_prefix(state_dict, "module.")
    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(model, "checkpoint_filter_fn", None) or getattr(module, "checkpoint_filter_fn", None)
    own = model.state_dict()
    mismatched = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if filter_fn is not None and (not ours or mismatched):
        # official layouts (or a size change, e.g. a resampled pos_embed) go through the filter
        try:
            state_dict = filter_fn(state_dict, model)
        except Exception as err:  # a filter for another layout: fall back to the raw keys
            _logger.warning("checkpoint_filter_fn failed (%s); loading the keys as they are", err)
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
                  if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"--checkpoint {path!r} does not fit the model: mis-shaped keys "
                         f"{', '.join(mismatched[:10])}")
    result = model.load_state_dict(state_dict, strict=False)
    problem = report_incompatible_keys(result.missing_keys, result.unexpected_keys, what=path)
    if problem:
        if strict:
            raise ValueError(f"--checkpoint does not fit the model: {problem}")
        _logger.warning(problem)
    return checkpoint if isinstance(checkpoint, Mapping) else {}


def _has_zoo_loader(model: nn.Module) -> bool:
    """The zoo's models (``PretrainedLoaderMixin``) convert official VMamba/Vim layouts themselves."""
    try:
        from vision_ssm.models._builder import PretrainedLoaderMixin
    except Exception:
        return False
    return isinstance(model, PretrainedLoaderMixin)


_SSM_NO_DECAY = ("A_log", "A_logs", "D", "Ds")


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names of parameters exempt from weight decay.

    Those named by the model's ``no_weight_decay()`` (as full names, final components or
    fnmatch patterns) and ``no_weight_decay_keywords()`` (substrings), plus the selective-scan
    parameters ``A_log(s)``/``D(s)`` of any Mamba layer.  Norms, biases and other 1-D
    parameters are exempted separately by their shape.
    """
    import fnmatch
    named = dict(model.named_parameters())
    listed: set[str] = set()
    if hasattr(model, "no_weight_decay"):
        listed = set(model.no_weight_decay() or ())
    keywords: set[str] = set()
    if hasattr(model, "no_weight_decay_keywords"):
        keywords = set(model.no_weight_decay_keywords() or ())
    out = set()
    for n in named:
        last = n.rsplit(".", 1)[-1]
        if (n in listed or last in listed or last in _SSM_NO_DECAY
                or any(fnmatch.fnmatchcase(n, p) for p in listed if any(c in p for c in "*?["))
                or any(k in n for k in keywords)):
            out.add(n)
    return out
