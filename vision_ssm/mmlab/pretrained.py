"""The checkpoint of a backbone's ``init_cfg`` (or mmseg's ``pretrained=``), read by the zoo's loader.

``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None, use_ema=False)``: ``checkpoint`` is a file, a
URL, ``'hf-hub:OWNER/REPO/FILE'`` or ``'timm'`` (the arch's default weights), downloaded to timm's cache by
timm's own functions and loaded by :func:`vision_ssm.models._builder.load_pretrained_checkpoint`, as for
``timm.create_model(arch, pretrained=True)``: the safe reader, the training dict unwrapped (``use_ema``), the
model's ``checkpoint_filter_fn`` (official VMamba / Vim layouts) and the strict key check.  The parts timm
pruned from the features model (head, final norm, blocks after the last output) are set aside and reported;
``prefix='backbone.'`` reads the backbone of a detector / segmentor checkpoint (official layout or ours).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Set, Tuple

import timm.models._builder as timm_builder
import timm.models._hub as timm_hub
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit
from timm.models import resolve_pretrained_cfg

from vision_ssm.models._builder import PretrainedLoadError, _download_errors, _file_or_url, load_pretrained_checkpoint

from .compat import mmengine_checkpoint_globals

__all__ = ["PretrainedBackboneError", "split_init_cfg", "checkpoint_file", "load_backbone_checkpoint"]

_PRETRAINED_KEYS = ("type", "checkpoint", "prefix", "use_ema", "map_location")  # map_location: read to the CPU


class PretrainedBackboneError(PretrainedLoadError):
    """A checkpoint given to a backbone's ``init_cfg`` does not fit its architecture."""


def split_init_cfg(init_cfg, pretrained, owner: str) -> Tuple[Optional[dict], Optional[list]]:
    """(:func:`load_backbone_checkpoint`'s arguments from the Pretrained entry or ``pretrained=``, the other
    init_cfg entries, for mmengine)."""
    cfgs = list(init_cfg) if isinstance(init_cfg, (list, tuple)) else [init_cfg] if init_cfg else []
    if pretrained is not None and pretrained is not False:
        if pretrained is not True and not (isinstance(pretrained, str) and pretrained):
            raise TypeError(f"{owner}: pretrained must be a checkpoint path / URL / 'hf-hub:...', True (the "
                            f"arch's default weights) or None, got {pretrained!r}")
        if cfgs:
            raise ValueError(f"{owner}: got both pretrained={pretrained!r} and init_cfg={init_cfg!r}")
        cfgs = [dict(type="Pretrained", checkpoint="timm" if pretrained is True else pretrained)]
    if not all(isinstance(c, dict) for c in cfgs):
        raise TypeError(f"{owner}: init_cfg must be a dict or a list of dicts, got {init_cfg!r}")
    found = [c for c in cfgs if c.get("type") in ("Pretrained", PretrainedInit)]
    others = [c for c in cfgs if c.get("type") not in ("Pretrained", PretrainedInit)] or None
    unknown = sorted({k for c in found for k in c} - set(_PRETRAINED_KEYS))
    if len(found) > 1 or unknown or found and not (isinstance(found[0].get("checkpoint"), str)
                                                   and found[0]["checkpoint"]):
        problem = (f"unknown keys {unknown}" if unknown else "no checkpoint" if len(found) == 1
                   else f"{len(found)} Pretrained entries")
        raise ValueError(f"{owner}: init_cfg={init_cfg!r} has {problem}; expected one dict(type='Pretrained', "
                         f"checkpoint=PATH | URL | 'hf-hub:OWNER/REPO/FILE' | 'timm', prefix=None, use_ema=False)")
    return ({k: v for k, v in found[0].items() if k in ("checkpoint", "prefix", "use_ema")} if found
            else None), others


def checkpoint_file(checkpoint: str, arch: str) -> str:
    """The local file of a path, URL, 'hf-hub:OWNER/REPO/FILE' or 'timm' (``arch``'s default weights);
    downloads go through timm's functions and cache, as for ``timm.create_model(arch, pretrained=True)``."""
    if checkpoint == "timm":
        cfg = resolve_pretrained_cfg(arch)
        checkpoint = _file_or_url(cfg) or f"hf-hub:{cfg.hf_hub_id}/{cfg.hf_hub_filename}"
    try:
        if checkpoint.startswith(("http://", "https://")):
            return timm_builder.download_cached_file(checkpoint, check_hash=False)
        if checkpoint.startswith("hf-hub:"):
            parts = checkpoint[len("hf-hub:"):].split("/", 2)
            return timm_hub.download_from_hf("/".join(parts[:2]), parts[-1])
    except _download_errors() as err:
        raise PretrainedLoadError(f"could not download {checkpoint} ({type(err).__name__}: {err}); download "
                                  f"it elsewhere and give the file as the checkpoint") from err
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"init_cfg checkpoint not found: {checkpoint} (expected a file, a URL, "
                                f"'hf-hub:OWNER/REPO/FILE' or 'timm')")
    return checkpoint


def load_backbone_checkpoint(backbone: nn.Module, trunk: nn.Module, pruned: Set[str], arch: str, checkpoint: str,
                             use_ema: bool = False, prefix: Optional[str] = None) -> Dict[str, List[str]]:
    """Loads ``checkpoint`` into ``trunk`` (the timm model inside ``backbone``, its parts ``pruned`` away) and
    the layers ``backbone`` adds around it, where the checkpoint has them.  Returns the checkpoint's keys
    ``ignored`` (the pruned parts) and the added layers' keys it lacks (``added``); a checkpoint that does not
    fit (missing, unexpected, mis-shaped keys, none under ``prefix``): :class:`PretrainedBackboneError`."""
    name = f"{type(backbone).__name__}(arch={arch!r})"
    own = {k: v for k, v in backbone.state_dict().items() if not k.startswith("model.")}  # norms, pyramid ...
    found, ignored = {}, []

    def aside(state_dict: dict) -> dict:  # the pruned parts
        ignored.extend(k for k in state_dict if k in pruned)
        return {k: v for k, v in state_dict.items() if k not in pruned}

    def select(state_dict: dict, model: nn.Module) -> dict:  # -> the trunk's keys; the added layers' aside
        kept = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)} if prefix else state_dict
        if not kept:
            raise PretrainedBackboneError(f"{name}: no key of the checkpoint {checkpoint} starts with init_cfg "
                                          f"prefix={prefix!r}; its keys: {sorted(state_dict)[:5]}")
        found.update({k: v for k, v in kept.items() if k in own})
        kept = {k.removeprefix("model.model."): v for k, v in kept.items() if k not in own}
        # set aside before the model's filter (which would adapt the head to them) and after (legacy names)
        return aside(model.checkpoint_filter_fn(aside(kept), model))

    path = checkpoint_file(checkpoint, arch)
    try:  # a detector's checkpoint (prefix=) holds mmengine's message hub: its allow-list, for this read only
        with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
            load_pretrained_checkpoint(trunk, path, filter_fn=select, use_ema=use_ema)
    except PretrainedBackboneError:
        raise
    except PretrainedLoadError as err:
        raise PretrainedBackboneError(f"{name}: the checkpoint {checkpoint} does not fit this architecture "
                                      f"(another arch, or dims / depths / scan overrides): {err}") from err
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in found.items() if v.shape != own[k].shape]
    if bad:
        raise PretrainedBackboneError(f"{name}: the checkpoint {checkpoint} has mis-shaped keys: {bad}")
    backbone.load_state_dict(found, strict=False)
    report = dict(ignored=sorted(ignored), added=sorted(set(own) - set(found)))
    print_log(f"{name}: loaded {checkpoint}{f' (prefix {prefix!r})' if prefix else ''}; ignored (pruned head / "
              f"norm / blocks): {report['ignored'] or 'none'}; new (not in the checkpoint): "
              f"{report['added'] or 'none'}", logger="current", level=logging.INFO)
    return report
