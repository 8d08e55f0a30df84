"""Loading checkpoint files safely: safetensors, or torch.load(weights_only=True) with an allow-list.

Checkpoints from the internet must never run code.  Official VMamba and Vim training dicts hold,
besides tensors, an ``argparse.Namespace`` of training arguments (and the plain Python values in
it); those are the only non-tensor types we allow.  ``weights_only=False`` is never used.

VMamba's Swin-style ``save_checkpoint`` may also store the training config, a yacs ``CfgNode``
(a dict subclass), under ``config``.  yacs is never imported: the pickled global
``yacs.config.CfgNode`` is mapped to a local constructor that makes a plain ``OrderedDict`` (the
weights-only unpickler fills only exact dict / OrderedDict instances; OrderedDict also takes the
node's attribute state), and after loading each such node becomes an inert :class:`ConfigNode`
holding the same entries.
"""
from __future__ import annotations

import argparse
import collections
import os
from typing import Any, Mapping

import torch

# Exactly the non-tensor types found in official VMamba/Vim checkpoints (args namespaces, and
# the OrderedDict / defaultdict containers of optimizer and scaler states).
SAFE_CHECKPOINT_TYPES = [argparse.Namespace, collections.OrderedDict, collections.defaultdict]

STATE_DICT_KEYS = ("state_dict_ema", "model_ema", "model", "state_dict", "module")

_CFG_NODE_MARK = "_vision_ssm_cfg_node"


class ConfigNode(dict):
    """Inert stand-in for a pickled yacs ``CfgNode``: a plain dict of its entries, no behaviour."""


class _CfgNodeUnpickled:
    """Unpickles ``yacs.config.CfgNode``: a marked, empty OrderedDict (never yacs itself)."""

    def __new__(cls, *args, **kwargs):
        node = collections.OrderedDict()
        node.__dict__[_CFG_NODE_MARK] = True
        return node


# (local object, pickled global name) pairs standing in for classes we never import
STAND_IN_GLOBALS = [(_CfgNodeUnpickled, "yacs.config.CfgNode")]


def _restore_config_nodes(obj: Any) -> Any:
    """Replaces (recursively, in dicts / lists / tuples) the unpickled CfgNodes by ConfigNode."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            new = _restore_config_nodes(value)
            if new is not value:
                obj[key] = new
        if type(obj) is collections.OrderedDict and obj.__dict__.get(_CFG_NODE_MARK):
            return ConfigNode(obj)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            obj[i] = _restore_config_nodes(value)
    elif type(obj) is tuple:
        return tuple(_restore_config_nodes(v) for v in obj)
    return obj


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Reads a .safetensors or a torch checkpoint without ever unpickling arbitrary objects."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            return load_file(path, device=str(map_location))
        except Exception as err:
            raise CorruptCheckpointError(f"{path} is not a readable .safetensors file: corrupt or truncated "
                                         f"({type(err).__name__}: {err})") from err
    with torch.serialization.safe_globals(SAFE_CHECKPOINT_TYPES + STAND_IN_GLOBALS):
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:
            if "Unsupported global" not in str(err):  # not the unpickler refusing a type: a broken file
                raise CorruptCheckpointError(f"{path} is not a readable torch checkpoint: corrupt or truncated "
                                             f"({type(err).__name__}: {str(err)[:200]})") from err
            allowed = [t.__name__ for t in SAFE_CHECKPOINT_TYPES] + [name for _, name in STAND_IN_GLOBALS]
            raise RuntimeError(
                f"refusing to load {path}: it holds objects outside the allow-list {allowed} ({err})") from err
    return _restore_config_nodes(checkpoint)


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated download, wrong format)."""


def unwrap_state_dict(checkpoint: Any, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Finds the model's state dict inside a training dict (``model``, ``model_ema``, ``state_dict``).

    With ``use_ema`` the EMA weights are taken and their absence is an error.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"a checkpoint must be a dict, got {type(checkpoint).__name__}")
    if use_ema:
        for key in ("model_ema", "state_dict_ema"):
            if isinstance(checkpoint.get(key), Mapping):
                return dict(checkpoint[key])
        raise KeyError(f"use_ema=True but the checkpoint has no EMA weights (keys: {sorted(checkpoint)[:10]})")
    for key in ("model", "state_dict", "module"):
        if isinstance(checkpoint.get(key), Mapping):
            return unwrap_state_dict(checkpoint[key]) if not _is_state_dict(checkpoint[key]) else dict(checkpoint[key])
    if _is_state_dict(checkpoint):
        return dict(checkpoint)
    raise KeyError(f"no state dict found in checkpoint (top-level keys: {sorted(checkpoint)[:10]})")


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Removes ``prefix`` (e.g. ``module.`` from DDP or ``backbone.``) where every key has it."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def state_dict_from_checkpoint(checkpoint: Any, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint: :func:`unwrap_state_dict`, then a DDP ``module.`` prefix stripped."""
    return strip_prefix(unwrap_state_dict(checkpoint, use_ema=use_ema), "module.")


def report_incompatible_keys(missing, unexpected, what: str = "checkpoint") -> str:
    """One readable line listing missing and unexpected keys ("" when both are empty)."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {', '.join(list(missing)[:20])}{' ...' if len(missing) > 20 else ''}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {', '.join(list(unexpected)[:20])}{' ...' if len(unexpected) > 20 else ''}")
    return f"{what}: " + "; ".join(parts) if parts else ""
