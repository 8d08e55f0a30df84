"""Official checkpoint -> clean timm-style ``.safetensors`` for one of our models.

Accepted inputs (read without unpickling arbitrary objects, see :mod:`vision_ssm.checkpoint`):

* VMamba (MzeroMiko/VMamba) v0 / v2 checkpoints: a dict whose ``model`` entry is the state
  dict, current or legacy key names (``patch_embed.proj``, ``ln_1``, ``self_attention``,
  top-level ``norm`` / ``head``, ``x_proj.weight`` modules, ``module.`` prefixes, ...);
* Vim (hustvl/Vim) training dicts: ``model``, ``model_ema``, ``optimizer``, ``args``
  (an ``argparse.Namespace``) ...; ``use_ema=True`` takes ``model_ema``;
* a bare state dict, or one of our own training checkpoints.

The model's own ``checkpoint_filter_fn`` maps the keys (and resizes the position embedding when
the model is built for another ``img_size``).  The weights are loaded into the freshly built model
and must match it exactly: any missing, unexpected or mis-shaped key is an error
(:class:`ConversionError`, naming them).  The output holds the model's ``state_dict()`` only,
under the keys the model expects, with metadata in the safetensors header (source file and its
SHA-256, model name, image size, EMA or not, vision_ssm version); it loads through timm as

    timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=out))
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import torch

from .checkpoint import load_checkpoint_file, state_dict_from_checkpoint
from .files import atomic_path

__all__ = ["ConversionError", "convert_checkpoint", "read_metadata"]


class ConversionError(RuntimeError):
    """The checkpoint does not fit the model; ``details`` holds the offending keys."""

    def __init__(self, message: str, details: Mapping[str, list] | None = None):
        super().__init__(message)
        self.details = dict(details or {})


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _filter_fn(model: torch.nn.Module):
    fn = getattr(type(model), "checkpoint_filter_fn", None)
    if fn is None:
        module = sys.modules.get(type(model).__module__)
        fn = getattr(module, "checkpoint_filter_fn", None)
    return fn


def _source_args(checkpoint: Any) -> dict[str, str]:
    """A few identifying fields of the training arguments (``args`` Namespace or dict), as strings."""
    args = checkpoint.get("args") if isinstance(checkpoint, Mapping) else None
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    out = {}
    if isinstance(args, Mapping):
        for key in ("model", "input_size", "img_size", "nb_classes", "num_classes"):
            if key in args and isinstance(args[key], (str, int, float)):
                out[f"source_args_{key}"] = str(args[key])
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("epoch"), int):
        out["source_epoch"] = str(checkpoint["epoch"])
    return out


def convert_checkpoint(src: str | os.PathLike, model_name: str, out: str | os.PathLike, *, use_ema: bool = False,
                       img_size: int | None = None, model_kwargs: Mapping[str, Any] | None = None,
                       check_forward: bool = False, progress=None) -> dict[str, Any]:
    """Converts ``src`` for ``model_name`` and writes ``out`` (.safetensors).

    Returns a report: ``out``, ``model``, ``num_tensors``, ``num_params``, ``metadata``,
    ``renamed`` (source keys the filter renamed) and ``resized`` (keys whose shape it changed).
    Raises :class:`ConversionError` when the weights do not fit the model exactly, ValueError for
    an unknown model or bad arguments, FileNotFoundError / RuntimeError for unreadable input.
    """
    from safetensors.torch import load_file, save_file

    from .bench.models import build_model, resolve_model
    say = progress or (lambda *_: None)
    src, out = os.fspath(src), os.fspath(out)
    if not out.endswith(".safetensors"):
        raise ValueError(f"output {out!r}: the file name must end in .safetensors")
    if os.path.abspath(src) == os.path.abspath(out):
        raise ValueError("the output must not overwrite the source checkpoint")
    name = resolve_model(model_name)
    kwargs = dict(model_kwargs or {})
    # Built on the meta device: no random init (seconds for the large models); the checkpoint's
    # tensors are assigned to it below.
    with torch.device("meta"):
        model = build_model(name, img_size, kwargs)
    model.eval()

    say(f"reading {src}")
    checkpoint = load_checkpoint_file(src)
    try:
        state_dict = state_dict_from_checkpoint(checkpoint, use_ema=use_ema)
    except (KeyError, TypeError) as err:
        raise ConversionError(f"{src}: {err.args[0] if err.args else err}") from err
    state_dict = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    source_keys = set(state_dict)
    source_shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    filter_fn = _filter_fn(model)
    if filter_fn is not None:
        state_dict = dict(filter_fn(state_dict, model))

    own = model.state_dict()
    mismatched = [f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)})"
                  for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected or mismatched:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {what} keys: {', '.join(keys[:25])}{' ...' if len(keys) > 25 else ''}")
        raise ConversionError(
            f"{src} does not fit {name}{' ' + str(kwargs) if kwargs else ''}: " + "; ".join(parts)
            + ". Check --model (and --model-kwargs, e.g. num_classes=...), or --use-ema.",
            dict(missing=missing, unexpected=unexpected, mismatched=mismatched))
    state_dict = {k: v.to(dtype=own[k].dtype) for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    if check_forward or any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        real = build_model(name, img_size, kwargs).eval()  # a fully initialised model
        real.load_state_dict(state_dict, strict=True)
        model = real

    if check_forward:
        from timm.models import get_model_input_config
        input_size = get_model_input_config(model)["input_size"]  # the model's own (in_chans, H, W)
        with torch.no_grad():
            y = model(torch.zeros(1, *input_size))
        if not torch.isfinite(y).all():
            raise ConversionError(f"{src}: the converted model gives non-finite outputs")

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": "pt",
        "converted_by": "vision_ssm.convert",
        "vision_ssm_version": _version(),
        "model_name": name,
        "source_file": os.path.basename(src),
        "source_sha256": _sha256(src),
        "use_ema": str(bool(use_ema)).lower(),
        "img_size": str(img_size or _default_img_size(model)),
        "num_params": str(sum(p.numel() for p in model.parameters())),
    }
    if kwargs:
        import json
        metadata["model_kwargs"] = json.dumps(kwargs, default=list, sort_keys=True)
    metadata.update(_source_args(checkpoint))
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(tensors, tmp, metadata=metadata)
        # verify what was written: same keys, equal values (a failure removes the temporary file)
        back = load_file(tmp)
        if set(back) != set(tensors) or any(not torch.equal(back[k], tensors[k]) for k in tensors):
            raise ConversionError(f"{out}: the written file does not read back equal")
    say(f"wrote {out}")
    renamed = sorted(source_keys - set(own))
    resized = sorted(k for k in source_keys & set(own) if source_shapes[k] != tuple(own[k].shape))
    return dict(out=out, model=name, num_tensors=len(tensors), num_params=int(metadata["num_params"]),
                metadata=metadata, renamed=renamed, resized=resized)


def _default_img_size(model: torch.nn.Module) -> int:
    size = getattr(model, "img_size", None) or getattr(getattr(model, "patch_embed", None), "img_size", None)
    if isinstance(size, (tuple, list)):
        return int(size[0])
    if isinstance(size, int):
        return size
    return 224


def _version() -> str:
    try:
        from . import __version__
        return __version__
    except ImportError:
        return "unknown"


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a .safetensors file."""
    from safetensors import safe_open
    with safe_open(os.fspath(path), framework="pt") as f:
        return dict(f.metadata() or {})
