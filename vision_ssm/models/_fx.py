"""FX symbolic tracing of the zoo's models (``torch.fx.symbolic_trace``, timm's ``feature_cls='fx'``).

The models branch on input sizes (checks, padding, scan orders) and dtypes in eager code.  Those
parts run as single FX calls instead of being traced into: ``call_untraced(module, *args)`` for a
submodule, ``torch.fx.wrap`` for a module-level function.  ``torch.fx.wrap`` patches the name in
the calling module's globals, so each model file registers ``call_untraced`` itself.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from timm.models import FeatureGraphNet

__all__ = ["call_untraced", "FeatureGraphMaps"]


def call_untraced(module: nn.Module, *args):
    """``module(*args)``, recorded by FX as one call (register it with ``torch.fx.wrap("call_untraced")``)."""
    return module(*args)


class FeatureGraphMaps(FeatureGraphNet):
    """``features_only=True, feature_cls='fx'``: timm's FX feature extractor with every output in the
    layout of the default (``forward_intermediates``) features.

    ``to_map(feature, image)`` (from the model's ``fx_feature_to_map()``) converts a traced module
    output, e.g. Vim's (B, L, C) tokens, to that layout; it holds sizes only, not the model.
    """

    def __init__(self, model: nn.Module, out_indices: Union[int, Sequence[int]], out_map: Optional[Dict] = None,
                 output_fmt: str = "NCHW", return_dict: bool = False):
        super().__init__(model, out_indices, out_map=out_map, output_fmt=output_fmt, return_dict=return_dict)
        self.to_map: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = model.fx_feature_to_map()

    def forward(self, x: torch.Tensor) -> Union[Dict[str, torch.Tensor], List[torch.Tensor]]:
        maps = {name: self.to_map(feature, x) for name, feature in self.graph_module(x).items()}
        return maps if self.return_dict else list(maps.values())
