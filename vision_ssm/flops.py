"""FLOP counting with fvcore, with a handler for the selective scan.

The scan is counted as VMamba and Mamba count it: 9·B·L·D·N for the recurrence plus B·D·L for
the D skip, with D the channels of all K directions together (K·d_inner).  fvcore counts one
multiply-add as one flop, and elementwise ops are ignored, as in the published figures.
"""
from __future__ import annotations

from typing import Any

import torch

# Names under which torch.jit.trace records the scan's autograd Functions.
SCAN_OPS = ("prim::PythonOp._ChunkedScan", "prim::PythonOp._SelectiveScanTritonFn")
# Elementwise / data-movement ops that the published counts leave out.
IGNORED_OPS = ("aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::sub", "aten::div", "aten::neg",
               "aten::exp", "aten::silu", "aten::gelu", "aten::softplus", "aten::sigmoid", "aten::flip",
               "aten::rsub", "aten::pow", "aten::mean", "aten::rsqrt", "aten::sqrt", "aten::pad",
               "aten::constant_pad_nd", "aten::softmax", "aten::index_select", "aten::gather",
               "aten::scatter_add", "aten::index_add", "aten::expand_as", "aten::clone", "aten::fill_",
               "aten::zeros_like", "aten::ones_like", "aten::cumsum", "aten::sum", "aten::square",
               "aten::upsample_bicubic2d", "aten::copy_", "aten::dropout", "aten::max_pool2d")


def scan_flops(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handler: inputs are the canonical (u, delta, A, ...) of the traced scan."""
    from fvcore.nn.jit_handles import get_shape

    batch, _, _, length = get_shape(inputs[0])  # u (B, Ku, D, L)
    K, dim, d_state = get_shape(inputs[2])  # A (K, D, N)
    channels = K * dim
    has_skip = any(get_shape(v) == [K, dim] for v in inputs[5:])
    return 9 * batch * length * channels * d_state + (batch * channels * length if has_skip else 0)


def flop_analysis(model: torch.nn.Module, inputs):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**{name: scan_flops for name in SCAN_OPS})
    analysis.set_op_handle(**{name: None for name in IGNORED_OPS})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return analysis


def count_gflops(model: torch.nn.Module, input_size=(3, 224, 224), batch_size: int = 1) -> float:
    """GFLOPs of one forward pass at ``input_size`` (C, H, W), on the CPU torch path."""
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(batch_size, *input_size, device=next(model.parameters()).device)
        with torch.no_grad():
            return flop_analysis(model, (x,)).total() / 1e9 / batch_size
    finally:
        model.train(was_training)
