"""The multi-direction Mamba mixer of Vim ("bimamba v2"), generalised to K scan directions.

Official Vim (hustvl/Vim, ``mamba_simple.Mamba(bimamba_type="v2", if_divide_out=True)``), for a
token sequence x (B, L, C):

    xz = in_proj(x)                      shared, no bias, C -> 2·D_inner;  x, z = xz.chunk(2)
    direction k (fwd: the sequence, bwd: the sequence flipped; z is flipped with it):
        u_k   = silu(causal_conv1d_k(x in scan order))            depthwise, width d_conv, bias
        dt_k, B_k, C_k = split(x_proj_k(u_k), [dt_rank, N, N])     no bias
        delta_k = dt_proj_k.weight @ dt_k      (dt_proj_k.bias is the scan's delta_bias, softplus)
        y_k   = selective_scan(u_k, delta_k, -exp(A_k_log), B_k, C_k, D_k, z = z in scan order)
    out = out_proj((y_fwd + flip(y_bwd)) / 2)                     shared, no bias

Here the K scan orders come from a 2D scan strategy (see :mod:`vision_ssm.models.vim` for how the
class token is placed in them); all K directions run in one direction-mode ``selective_scan`` call,
and each direction's output is mapped back to token positions and merged (``"mean"`` = the
official ``if_divide_out`` (fwd + flip(bwd)) / 2, or ``"sum"``).

Parameter names.  Direction k owns ``conv1d{s}``, ``x_proj{s}``, ``dt_proj{s}``, ``A{s}_log`` and
``D{s}`` with the suffix ``s = direction_suffix(k)``: ``""`` for k = 0, ``"_b"`` for k = 1 (the
official names: ``A_log, A_b_log, conv1d, conv1d_b, x_proj, x_proj_b, dt_proj, dt_proj_b, D, D_b``),
then ``"_2"``, ``"_3"``, ... (``A_2_log``, ``conv1d_2``, ``D_3``, ...) for the extra directions of
strategies with K > 2.

Initialisation (``dt_init_mode``):
    ``"official"`` (default) reproduces official Vim exactly: direction 0 gets Mamba's special init
        (dt_proj weight U(±dt_rank^-0.5), bias = softplus^-1 of a log-uniform dt in [dt_min, dt_max]);
        the other directions keep PyTorch's default ``nn.Linear`` init for ``dt_proj_b`` (whose bias
        the official model-level init then zeroes, i.e. softplus(0) ≈ 0.69 at init) — an artefact of
        the official code that we keep so that training from scratch matches it.
    ``"mamba"`` gives every direction Mamba's dt init.
A_log = log(1..N) and D = 1 for every direction; ``_no_weight_decay`` is set on A_log* and D*.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from vision_ssm.ops import selective_scan

from .scan_backend import check_scan_backend
from .ss2d import A_logs_init, mamba_dt_init_

__all__ = ["BiMamba", "direction_suffix", "direction_param_names"]


def direction_suffix(k: int) -> str:
    """Parameter-name suffix of direction ``k``: "", "_b", "_2", "_3", ..."""
    if k < 0:
        raise ValueError(f"direction index must be >= 0, got {k}")
    return "" if k == 0 else "_b" if k == 1 else f"_{k}"


def direction_param_names(k: int) -> dict:
    """The names of direction ``k``'s modules / parameters inside the mixer."""
    s = direction_suffix(k)
    return dict(conv1d=f"conv1d{s}", x_proj=f"x_proj{s}", dt_proj=f"dt_proj{s}", A_log=f"A{s}_log", D=f"D{s}")


def directional_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                               reverse: Sequence[bool]) -> torch.Tensor:
    """The per-direction causal conv of directions that walk the sequence forwards or backwards,
    computed in token order: x (B, K, L, D) (K may be an expanded view of one sequence), weight
    (K, D, W), bias (K, D). Direction k is ``causal_depthwise_conv`` when ``reverse[k]`` is False;
    when True it is that conv applied to the flipped sequence and flipped back, i.e.
    out[t] = bias + sum_j weight[j] x[t + W - 1 - j] (x = 0 past the end)."""
    if not any(reverse):
        return causal_depthwise_conv(x, weight, bias)
    if torch.jit.is_tracing():  # FLOP counters see the convolutions they count
        return torch.stack([causal_depthwise_conv(x[:, k:k + 1].flip(2) if rev else x[:, k:k + 1], weight[k:k + 1],
                                                  None if bias is None else bias[k:k + 1]).flip(2)[:, 0]
                            if rev else causal_depthwise_conv(x[:, k:k + 1], weight[k:k + 1],
                                                              None if bias is None else bias[k:k + 1])[:, 0]
                            for k, rev in enumerate(reverse)], dim=1)
    width, length = weight.shape[-1], x.shape[2]
    taps = weight.permute(2, 0, 1).unsqueeze(2).to(x.dtype)  # (W, K, 1, D)
    out = x * taps[-1] if bias is None else torch.addcmul(bias.unsqueeze(1).to(x.dtype), x, taps[-1])
    for j in range(width - 1):
        shift = width - 1 - j
        if shift >= length:
            continue
        for k, rev in enumerate(reverse):
            if rev:
                out[:, k, :length - shift].addcmul_(x[:, k, shift:], taps[j, k])
            else:
                out[:, k, shift:].addcmul_(x[:, k, :length - shift], taps[j, k])
    return out


_monotone_cache = WeakIdKeyDictionary()


def _fx_symbolic_tracing() -> bool:
    fx = torch.fx._symbolic_trace
    check = getattr(fx, "is_fx_symbolic_tracing", None) or fx.is_fx_tracing
    return check()


def monotone_directions(orders: torch.Tensor) -> Optional[Tuple[bool, ...]]:
    """For (K, L) token orders whose rows all walk the sequence forwards (False) or backwards
    (True), as official Vim's fwd / bwd: the tuple of flags; None for any other orders."""
    if (orders.device.type == "meta" or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or _fx_symbolic_tracing()):
        return None
    key = None if orders.is_inference() else (orders._version, orders.data_ptr())
    hit = _monotone_cache.get(orders) if key is not None else None
    if hit is not None and hit[0] == key:
        return hit[1]
    steps = torch.arange(orders.shape[1], device=orders.device, dtype=orders.dtype)
    flags = []
    for row in orders:
        if torch.equal(row, steps):
            flags.append(False)
        elif torch.equal(row, steps.flip(0)):
            flags.append(True)
        else:
            flags = None
            break
    result = None if flags is None else tuple(flags)
    if key is not None:
        _monotone_cache[orders] = (key, result)
    return result


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Per-direction causal depthwise conv1d on token-major sequences: x (B, K, L, D), weight (K, D, W),
    bias (K, D) -> out[t] = bias + sum_j weight[j] x[t - (W - 1) + j] (x = 0 before the start), i.e.
    ``nn.Conv1d(D, D, W, groups=D, padding=W - 1)`` truncated to L, without a channel-first copy."""
    width, length = weight.shape[-1], x.shape[2]
    if torch.jit.is_tracing():  # FLOP counters (fvcore traces) see the convolution they count
        batch, K, _, dim = x.shape
        out = F.conv1d(x.transpose(-1, -2).reshape(batch, K * dim, length), weight.reshape(K * dim, 1, width),
                       None if bias is None else bias.reshape(-1), padding=width - 1, groups=K * dim)
        return out[..., :length].view(batch, K, dim, length).transpose(-1, -2)
    taps = weight.permute(2, 0, 1).unsqueeze(2).to(x.dtype)  # (W, K, 1, D)
    out = x * taps[-1] if bias is None else torch.addcmul(bias.unsqueeze(1).to(x.dtype), x, taps[-1])
    for j in range(width - 1):
        shift = width - 1 - j
        if shift < length:
            out[:, :, shift:].addcmul_(x[:, :, :length - shift], taps[j])
    return out


def _token_rows(orders: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Row (b, token) of a (B·L, ·) view for every row (b, k, step) of (B, K, L, ·) in scan order."""
    return (orders.reshape(1, -1) + length * torch.arange(batch, device=orders.device).unsqueeze(-1)).reshape(-1)


def _compute_dtype(t: torch.Tensor) -> torch.Tensor:
    """float32 (float64 kept) for the SSM parameters, like the official ``.float()``."""
    return t if t.dtype == torch.float64 else t.float()


class BiMamba(nn.Module):
    """Vim's bidirectional Mamba mixer ("v2"), with ``num_directions`` parameter sets.

    Args:
        dim: model width C.
        d_state: SSM state size N (16).
        d_conv: causal depthwise conv width (4).
        expand: D_inner = expand · dim (2).
        dt_rank: rank of the dt projection, "auto" = ceil(dim / 16).
        num_directions: K, the number of scan directions (2 for official Vim).
        merge: "mean" (official ``if_divide_out``: (fwd + flip(bwd)) / 2) or "sum".
        dt_init_mode: "official" or "mamba" (see the module docstring).
        scan_backend: ``selective_scan`` backend (``SCAN_BACKENDS``; "auto": torch on CPU, triton on CUDA).
    """

    def __init__(
            self,
            dim: int,
            d_state: int = 16,
            d_conv: int = 4,
            expand: float = 2,
            dt_rank="auto",
            dt_min: float = 0.001,
            dt_max: float = 0.1,
            dt_init: str = "random",
            dt_scale: float = 1.0,
            dt_init_floor: float = 1e-4,
            conv_bias: bool = True,
            bias: bool = False,
            num_directions: int = 2,
            merge: str = "mean",
            dt_init_mode: str = "official",
            scan_backend: str = "auto",
            device=None,
            dtype=None,
    ):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        if num_directions < 1:
            raise ValueError(f"num_directions must be >= 1, got {num_directions}")
        if merge not in ("mean", "sum"):
            raise ValueError(f"merge must be 'mean' or 'sum', got {merge!r}")
        if dt_init_mode not in ("official", "mamba"):
            raise ValueError(f"dt_init_mode must be 'official' or 'mamba', got {dt_init_mode!r}")
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        self.dim = dim
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * dim)
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.num_directions = num_directions
        self.merge = merge
        self.scan_backend = check_scan_backend(scan_backend)

        self.in_proj = nn.Linear(dim, self.d_inner * 2, bias=bias, **fk)
        for k in range(num_directions):
            names = direction_param_names(k)
            conv = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                             padding=d_conv - 1, bias=conv_bias, **fk)
            x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **fk)
            dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **fk)
            if k == 0 or dt_init_mode == "mamba":
                mamba_dt_init_(dt_proj.weight, dt_proj.bias, dt_scale, dt_init, dt_min, dt_max, dt_init_floor)
                dt_proj.bias._no_reinit = True
            else:
                # official v2: dt_proj_b keeps nn.Linear's init; the model-level init zeroes its bias
                nn.init.zeros_(dt_proj.bias)
            A_log = nn.Parameter(A_logs_init(1, self.d_inner, d_state, device=device))
            A_log._no_weight_decay = True
            D = nn.Parameter(torch.ones(self.d_inner, device=device))
            D._no_weight_decay = True
            # registration order follows the official module (A_log, D first for direction 0)
            setattr(self, names["A_log"], A_log)
            setattr(self, names["D"], D)
            setattr(self, names["conv1d"], conv)
            setattr(self, names["x_proj"], x_proj)
            setattr(self, names["dt_proj"], dt_proj)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias, **fk)

    # ------------------------------------------------------------------ direction parameters
    def _direction(self, k: int, what: str):
        return getattr(self, direction_param_names(k)[what])

    def direction_modules(self, what: str) -> List:
        """The K modules / parameters of one kind ("conv1d", "x_proj", "dt_proj", "A_log", "D")."""
        return [self._direction(k, what) for k in range(self.num_directions)]

    @staticmethod
    def default_orders(num_directions: int, length: int, device=None) -> torch.Tensor:
        """Sequence order and its reverse: official Vim's fwd / bwd (K must be 1 or 2)."""
        if num_directions not in (1, 2):
            raise ValueError(f"a mixer with {num_directions} directions needs explicit scan orders")
        fwd = torch.arange(length, device=device)
        return torch.stack([fwd, fwd.flip(0)][:num_directions])

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, orders: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, L, C) in token order -> (B, L, C).

        ``orders`` (K, L) int64: row k lists the token indices in direction k's scan order
        (default: identity and its reverse).
        """
        batch, length, _ = x.shape
        K, Di, N, R = self.num_directions, self.d_inner, self.d_state, self.dt_rank
        if orders is None:
            orders = self.default_orders(K, length, x.device)
        if tuple(orders.shape) != (K, length):
            raise ValueError(f"BiMamba: `orders` must be (K, L) = ({K}, {length}), got {tuple(orders.shape)}")

        reverse = monotone_directions(orders)
        if reverse is not None:
            return self._forward_in_token_order(x, orders, reverse)
        # every direction reads x and z in its own scan order: token rows gathered, (B, K, L, 2·Di)
        token_rows = _token_rows(orders, batch, length)
        xz = self.in_proj(x).view(-1, 2 * Di).index_select(0, token_rows).view(batch, K, length, 2 * Di)
        xs, zs = xz.chunk(2, dim=-1)

        # per-direction causal depthwise conv, token-major: u (B, K, L, Di)
        convs = self.direction_modules("conv1d")
        conv_b = torch.stack([m.bias for m in convs]) if convs[0].bias is not None else None
        u = causal_depthwise_conv(xs, torch.stack([m.weight[:, 0] for m in convs]), conv_b)
        u = F.silu(u, inplace=not (torch.is_grad_enabled() and u.requires_grad))  # in place at inference

        # projections token-major, (B, K, L, ·): the scan reads each token's channels as one row
        x_proj_w = torch.stack([m.weight for m in self.direction_modules("x_proj")])  # (K, R+2N, Di)
        x_dbl = torch.matmul(u, x_proj_w.to(u.dtype).transpose(1, 2))
        dt, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=-1)
        dt_w = torch.stack([m.weight for m in self.direction_modules("dt_proj")])  # (K, Di, R)
        delta = torch.matmul(dt, dt_w.to(dt.dtype).transpose(1, 2))
        delta_bias = _compute_dtype(torch.stack([m.bias for m in self.direction_modules("dt_proj")]))
        A = -torch.exp(_compute_dtype(torch.stack(self.direction_modules("A_log"))))  # (K, Di, N)
        D = _compute_dtype(torch.stack(self.direction_modules("D")))

        y = selective_scan(u.transpose(-1, -2), delta.transpose(-1, -2), A, Bs.transpose(-1, -2), Cs.transpose(-1, -2), D,
                           z=zs.transpose(-1, -2), delta_bias=delta_bias, delta_softplus=True,
                           backend=self.scan_backend, merge="none")  # (B, K, Di, L) in scan order
        # each direction's rows added back at their token positions: the K directions merged
        merged = y.new_zeros(batch, length, Di)
        merged.view(-1, Di).index_add_(0, token_rows,
                                       y.transpose(-1, -2).reshape(-1, Di),
                                       alpha=1.0 if self.merge == "sum" else 1.0 / K)
        return self.out_proj(merged)

    def _forward_in_token_order(self, x: torch.Tensor, orders: torch.Tensor, reverse: Tuple[bool, ...]) -> torch.Tensor:
        """The same function for directions that walk the sequence forwards or backwards, with no
        per-direction copy: each direction's conv runs in token order (anti-causal when it walks
        backwards), the scan reads the tokens through ``orders``, gates with the one z and sums
        the directions itself."""
        batch, length, _ = x.shape
        K, Di, N, R = self.num_directions, self.d_inner, self.d_state, self.dt_rank
        xs, zs = self.in_proj(x).chunk(2, dim=-1)  # (B, L, Di) views
        convs = self.direction_modules("conv1d")
        conv_b = torch.stack([m.bias for m in convs]) if convs[0].bias is not None else None
        u = directional_depthwise_conv(xs.unsqueeze(1).expand(batch, K, length, Di),
                                       torch.stack([m.weight[:, 0] for m in convs]), conv_b, reverse)
        u = F.silu(u, inplace=not (torch.is_grad_enabled() and u.requires_grad))
        x_proj_w = torch.stack([m.weight for m in self.direction_modules("x_proj")])
        dt, Bs, Cs = torch.split(torch.matmul(u, x_proj_w.to(u.dtype).transpose(1, 2)), [R, N, N], dim=-1)
        dt_w = torch.stack([m.weight for m in self.direction_modules("dt_proj")])
        delta = torch.matmul(dt, dt_w.to(dt.dtype).transpose(1, 2))
        delta_bias = _compute_dtype(torch.stack([m.bias for m in self.direction_modules("dt_proj")]))
        A = -torch.exp(_compute_dtype(torch.stack(self.direction_modules("A_log"))))
        D = _compute_dtype(torch.stack(self.direction_modules("D")))
        y = selective_scan(u.transpose(-1, -2), delta.transpose(-1, -2), A, Bs.transpose(-1, -2),
                           Cs.transpose(-1, -2), D, z=zs.transpose(-1, -2), delta_bias=delta_bias,
                           delta_softplus=True, backend=self.scan_backend, index=orders, merge="sum")
        y = y.transpose(-1, -2)  # (B, L, Di)
        if self.merge == "mean":
            y = y / K
        return self.out_proj(y)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"d_conv={self.d_conv}, num_directions={self.num_directions}, merge={self.merge!r}")
