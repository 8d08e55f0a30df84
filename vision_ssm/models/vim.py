"""Vision Mamba (Vim) as timm models, with pluggable 2D scan strategies.

Zhu et al., "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space
Model", ICML 2024 (arXiv:2401.09417); official code hustvl/Vim ``vim/models_mamba.py``.

Architecture (the official ``..._bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2``
models, state-dict keys unchanged so that official checkpoints load with identity mapping):

    patch_embed.proj      Conv2d(3, C, kernel 16, stride 16; stride 8 for the "+" models)
    cls_token             one class token inserted in the MIDDLE of the row-major patch tokens:
                          sequence = [p_0 .. p_{M//2-1}, cls, p_{M//2} .. p_{M-1}]  (98 of 197)
    pos_embed             absolute, (1, M + 1, C), laid out like that sequence
    layers.i              residual stream r (kept in float32, even under autocast):
                              r = r + drop_path(mixer(norm(r)))
                          norm = RMSNorm (weight only, eps 1e-5), mixer = BiMamba ("v2") with
                          d_inner 2C, d_state 16, dt_rank ceil(C / 16), conv width 4
    norm_f                final RMSNorm
    head                  Linear on the class token (``global_pool="token"``)

The official Block computes "add -> norm -> mixer" with the add of block i done in block i + 1
(fused_add_norm); the pre-norm form above is the same computation, with the same drop-path rate
per mixer output (official: linspace(0, rate, depth), the last one applied before ``norm_f``).

Scan strategies (``scan=``, default ``"bidirectional"``): the patch grid is ordered by the strategy
(``scans.get_scan``); K = ``num_directions`` parameter sets per mixer.  The class token is part of
every direction:

    * it is visited at scan step M // 2 of each direction (after M // 2 patches), except that
    * a direction whose patch order is the exact reverse of an earlier direction's is the exact
      reverse of that direction's full token order (class token at step M - M // 2).

For ``"bidirectional"`` this is official Vim exactly: fwd = [p_0 .. p_97, cls, p_98 .. p_195], bwd
= its flip, also for odd M (stride-8 models at 224: M = 729, class token at 364, i.e. step 364 of
fwd and step 365 of bwd, the reverse).  For ``"cross"``: row-major and column-major read the
class token after 98 patches, and their reverses are their exact flips.  The directions' outputs
are mapped back to token positions and merged by ``merge`` ("mean" by default: official Vim's
``if_divide_out`` (fwd + flip(bwd)) / 2; "sum"; or "strategy" (also None) for the strategy's own merge).

Any image size: ``img_size`` at construction; checkpoints at another size have their position
embedding interpolated (bicubic over the patch grid, class token kept at the middle) by
:func:`checkpoint_filter_fn` (the checkpoint's grid: from ``pretrained_model_args=dict(img_size=...)``
when given, else inferred, see there); ``dynamic_img_size=True`` interpolates at forward time and
``dynamic_img_pad=True`` pads inputs whose size does not fit the patch stride (otherwise: an error
naming the size).

Options of official Vim's segmentation / detection backbones: ``class_token=False`` (a checkpoint's
class token is dropped with its ``pos_embed`` slot, with a warning) and ``rope=True`` (the stream
turned by a 2D rotary position embedding before every block, :mod:`vision_ssm.layers.rope`).
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, lecun_normal_, resample_patch_embed, to_2tuple, trunc_normal_
from timm.models import generate_default_cfgs, register_model, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint

from scans.registry import resolve_scan
from vision_ssm.checkpoint import state_dict_from_checkpoint
from vision_ssm.layers.bimamba import BiMamba
from vision_ssm.layers.pos_embed import insert_mid_token, mid_index, resample_pos_embed_mid_cls, split_mid_token
from vision_ssm.layers.rope import RotaryEmbedding2d

from vision_ssm.layers.scan_backend import check_scan_backend
from vision_ssm.models._builder import PretrainedLoaderMixin, adapt_to_model, build_ssm_model
from vision_ssm.models._factory import accepts_device_dtype, new_like
from vision_ssm.models._fx import call_untraced
from vision_ssm.models._inputs import check_image

_logger = logging.getLogger(__name__)

__all__ = ["VisionMamba", "VimBlock", "VimPatchEmbed", "RMSNorm", "checkpoint_filter_fn", "checkpoint_grid",
           "patch_grid", "scan_token_orders", "resolve_scan"]

torch.fx.wrap("call_untraced")  # the patch embedding, scan orders, rotary embedding and mixers branch on sizes


# ---------------------------------------------------------------------------------------- layers
class RMSNorm(nn.Module):
    """RMSNorm with a weight only (mamba_ssm's), computed in float32; output in the weight's dtype."""

    def __init__(self, dim: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


@torch.fx.wrap
def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = _at_least_float32(x)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.to(y.dtype)).to(weight.dtype)


@torch.fx.wrap
def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """float32, or float64 kept (one FX call: it reads the dtype)."""
    return x if x.dtype == torch.float64 else x.float()


def patch_grid(size: Sequence[int], patch_size: Sequence[int], stride: Sequence[int]) -> Tuple[int, int]:
    """The patch grid of an (H, W) image: ((H - patch) // stride + 1, ...) as in official Vim, a size
    that does not fit the stride counted as zero-padded up to the next one that does."""
    return tuple(-(-(max(int(n), p) - p) // s) + 1 for n, p, s in zip(size, patch_size, stride))


class VimPatchEmbed(nn.Module):
    """Conv2d patch embedding with kernel ``patch_size`` and a (possibly smaller) ``stride``.

    The grid is ((H - patch) // stride + 1, (W - patch) // stride + 1), as in official Vim.  An
    ``img_size`` or input whose size does not fit (``(H - patch) % stride != 0``) raises a ValueError
    naming the size, or is zero-padded at the bottom / right with ``dynamic_img_pad=True``.  With
    ``strict_img_size`` the input must be exactly ``img_size``.
    """

    def __init__(self, img_size=224, patch_size=16, stride=None, in_chans=3, embed_dim=192,
                 strict_img_size: bool = True, dynamic_img_pad: bool = False):
        super().__init__()
        self.patch_size = to_2tuple(patch_size)
        self.stride = to_2tuple(stride if stride is not None else patch_size)
        self.img_size = to_2tuple(img_size)
        self.strict_img_size = strict_img_size
        self.dynamic_img_pad = dynamic_img_pad
        self.check_size(self.img_size, what="img_size")
        self.grid_size = patch_grid(self.img_size, self.patch_size, self.stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride)

    def _padding(self, size: Tuple[int, int]) -> Tuple[int, int]:
        """Bottom / right zero padding that makes ``size`` cover exactly its patch grid."""
        grid = patch_grid(size, self.patch_size, self.stride)
        return tuple(p + (g - 1) * s - int(n) for n, g, p, s in zip(size, grid, self.patch_size, self.stride))

    def check_size(self, size: Sequence[int], what: str = "input size") -> None:
        """Raises a ValueError naming ``what`` (the input, or the ``img_size`` argument) and the size
        when it does not fit the patch grid."""
        H, W = int(size[0]), int(size[1])
        if self.dynamic_img_pad:
            return
        for n, p, s, side in zip((H, W), self.patch_size, self.stride, ("height", "width")):
            if n < p or (n - p) % s:
                fits = sorted({p + max(n - p, 0) // s * s, p + -(-max(n - p, 0) // s) * s})
                remedy = ("resize the input" if what == "input size" else
                          f"pass an img_size whose sides fit (e.g. {' or '.join(map(str, fits))})")
                raise ValueError(
                    f"{what} {H}x{W}: {side} {n} does not fit patches of {p} with stride {s} "
                    f"((size - {p}) must be a non-negative multiple of {s}); {remedy} or build the "
                    f"model with dynamic_img_pad=True to pad it")

    def dynamic_feat_size(self, img_size: Sequence[int]) -> Tuple[int, int]:
        """The patch grid (H', W') for an input of ``img_size`` = (H, W)."""
        self.check_size(img_size)
        return patch_grid(img_size, self.patch_size, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C, H', W')."""
        H, W = x.shape[-2:]
        if self.strict_img_size and (H, W) != self.img_size:
            raise ValueError(
                f"input size {H}x{W} does not match the model's img_size {self.img_size[0]}x{self.img_size[1]}; "
                f"build the model with img_size=({H}, {W}) or dynamic_img_size=True")
        self.check_size((H, W))
        if self.dynamic_img_pad:
            ph, pw = self._padding((H, W))
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph))
        return self.proj(x)


class VimBlock(nn.Module):
    """r -> r + drop_path(mixer(norm(r))), the residual r kept in its (float32) dtype."""

    def __init__(self, dim: int, mixer_kwargs: Optional[Dict[str, Any]] = None, norm_eps: float = 1e-5,
                 drop_path: float = 0.0):
        super().__init__()
        self.mixer = BiMamba(dim, **(mixer_kwargs or {}))
        self.norm = RMSNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, orders: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_with_update(x, orders)[0]

    def forward_with_update(self, x: torch.Tensor, orders: Optional[torch.Tensor] = None):
        """(the new residual stream, the mixer output added to it, before drop-path)."""
        h = call_untraced(self.mixer, self.norm(x), orders)
        return x + self.drop_path(h).to(x.dtype), h


# ---------------------------------------------------------------------------------------- scans

def scan_token_orders(strategy, H: int, W: int, class_token: bool = True, device=None) -> torch.Tensor:
    """(K, L) token orders: row k lists the token indices visited by direction k.

    Tokens are laid out as in official Vim, the class token at index M // 2 (M = H·W) among the
    row-major patches.  The class token is visited at step M // 2 of every direction, except that a
    direction whose patch order reverses an earlier direction's becomes the exact reverse of that
    direction's token order (so reversed pairs stay mirror images, as official Vim's fwd / bwd).
    """
    patch = strategy.orders(H, W, device)  # (K, M) row-major positions
    if not class_token:
        return patch
    M = H * W
    mid = mid_index(M)
    tokens = patch + (patch >= mid).to(patch.dtype)  # token index of each patch
    cls = torch.full((1,), mid, dtype=patch.dtype, device=patch.device)
    rows: List[torch.Tensor] = []
    for k in range(patch.shape[0]):
        mirror = next((j for j in range(k) if torch.equal(patch[k], patch[j].flip(0))), None)
        if mirror is not None:
            rows.append(rows[mirror].flip(0))
        else:
            rows.append(torch.cat([tokens[k, :mid], cls, tokens[k, mid:]]))
    return torch.stack(rows)


class ScanTokenOrders(nn.Module):
    """The (K, L) token orders of a scan strategy per patch grid and device, cached (no parameters)."""

    def __init__(self, scan, class_token: bool):
        super().__init__()
        self.scan = scan
        self.class_token = class_token
        self._cache: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def forward(self, H: int, W: int, device=None) -> torch.Tensor:
        device = torch.device(device) if device is not None else torch.device("cpu")
        key = (int(H), int(W), str(device))
        cached = self._cache.get(key)
        if cached is None:
            with torch.no_grad():
                cached = scan_token_orders(self.scan, key[0], key[1], self.class_token, torch.device("cpu")).to(device)
            self._cache[key] = cached
        return cached


# ---------------------------------------------------------------------------------------- model
INTERMEDIATE_TYPES = ("stream", "mixer")
MERGES = ("mean", "sum", "strategy", None)


GLOBAL_POOLS = ("token", "avg", "max", "avgmax", "")


def _check_global_pool(global_pool: str, class_token: bool) -> None:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
    if global_pool == "token" and not class_token:
        raise ValueError("global_pool='token' needs class_token=True")


class VisionMamba(PretrainedLoaderMixin, nn.Module):
    """Vision Mamba (Vim) with a middle class token and pluggable scan strategies.

    Args:
        img_size, patch_size, stride (default: patch_size), in_chans, num_classes: as in timm.
        global_pool: "token" (the class token, official), "avg", "max" or "avgmax" (of the patch
            tokens, as timm's ``VisionTransformer``) or "".
        embed_dim, depth: model width and number of blocks.
        d_state, d_conv, expand, dt_rank: mixer sizes (16, 4, 2, "auto" = ceil(embed_dim / 16)).
        scan: scan strategy (name, (name, options), dict or instance); default "bidirectional".
        merge: how the K directions are combined: "mean" (official), "sum" or "strategy" (the scan
            strategy's own merge).  None is the same as "strategy" when constructing directly;
            ``timm.create_model`` drops None-valued arguments, so pass "strategy" there.
        scan_backend: selective-scan backend, one of ``SCAN_BACKENDS`` ("auto", "ref", "torch", "triton").
        class_token: with a middle class token (official) or without (then global_pool "avg").
        rope: turn the residual stream by a 2D rotary position embedding before every block, as
            official Vim's segmentation / detection backbones with ``if_rope=True,
            if_rope_residual=True`` (see :mod:`vision_ssm.layers.rope`); needs class_token=False.
        rope_pretrain_grid: the grid side the rotary positions span (official ``pt_hw_seq_len``, 14).
        drop_rate: dropout before the head; pos_drop_rate: after adding the position embedding
            (official Vim calls it ``drop_rate``); drop_path_rate: stochastic depth,
            linspace(0, rate, depth) over the blocks.
        norm_eps: RMSNorm epsilon (1e-5).
        residual_in_fp32: keep the residual stream in float32 (official: True).
        dynamic_img_size, dynamic_img_pad: timm's options (see the module docstring).
        dt_init_mode: "official" or "mamba" (see :mod:`vision_ssm.layers.bimamba`).
    """

    @accepts_device_dtype
    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 16,
            stride: Optional[int] = None,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "token",
            embed_dim: int = 192,
            depth: int = 24,
            d_state: int = 16,
            d_conv: int = 4,
            expand: float = 2,
            dt_rank="auto",
            scan="bidirectional",
            merge: Optional[str] = "mean",
            scan_backend: str = "auto",
            class_token: bool = True,
            rope: bool = False,
            rope_pretrain_grid: int = 14,
            drop_rate: float = 0.0,
            pos_drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            norm_eps: float = 1e-5,
            residual_in_fp32: bool = True,
            dynamic_img_size: bool = False,
            dynamic_img_pad: bool = False,
            dt_init_mode: str = "official",
            weight_init: str = "",
    ):
        super().__init__()
        _check_global_pool(global_pool, class_token)
        if rope and class_token:
            raise ValueError("rope=True needs class_token=False (official Vim turns patch tokens only)")
        if weight_init not in ("", "official", "skip"):
            raise ValueError(f"weight_init must be '' / 'official' or 'skip', got {weight_init!r}")
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        check_scan_backend(scan_backend)
        self.scan = resolve_scan(scan)
        K = self.scan.num_directions
        if merge in ("strategy", None):
            merge = getattr(self.scan, "merge", "mean")

        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.has_class_token = class_token
        self.residual_in_fp32 = residual_in_fp32
        self.dynamic_img_size = dynamic_img_size
        self.grad_checkpointing = False
        self.depth = depth

        self.patch_embed = VimPatchEmbed(img_size, patch_size, stride, in_chans, embed_dim,
                                         strict_img_size=not dynamic_img_size, dynamic_img_pad=dynamic_img_pad)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_prefix_tokens, embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        self.rope = RotaryEmbedding2d(embed_dim, self.patch_embed.grid_size, rope_pretrain_grid) if rope else None
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        mixer_kwargs = dict(d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, num_directions=K,
                            merge=merge, dt_init_mode=dt_init_mode, scan_backend=scan_backend)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        self.layers = nn.ModuleList([
            VimBlock(embed_dim, mixer_kwargs, norm_eps=norm_eps, drop_path=dpr[i]) for i in range(depth)])
        self.norm_f = RMSNorm(embed_dim, eps=norm_eps)

        reduction = self.patch_embed.stride[0]
        self.feature_info = [dict(num_chs=embed_dim, reduction=reduction, module=f"layers.{i}")
                             for i in range(depth)]
        self.token_orders = ScanTokenOrders(self.scan, class_token)
        if weight_init != "skip":
            self.init_weights()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Official Vim init (segm_init_weights + mamba _init_weights with prenorm rescaling)."""
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None \
                    and not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        # GPT-2 style rescaling of the residual-branch output projections by 1/sqrt(depth)
        for block in self.layers:
            w = block.mixer.out_proj.weight
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            with torch.no_grad():
                w.div_(math.sqrt(self.depth))

    # ------------------------------------------------------------------ timm API
    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        names = {"pos_embed", "cls_token"}
        for name, p in self.named_parameters():
            if getattr(p, "_no_weight_decay", False):
                names.add(name)
        return names

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^cls_token|^pos_embed|^patch_embed",
            blocks=[(r"^layers\.(\d+)", None), (r"^norm_f", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            _check_global_pool(global_pool, self.has_class_token)
            self.global_pool = global_pool
        self.head = new_like(self, lambda: nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity())

    def set_scan_backend(self, backend: str) -> None:
        """Selects the selective-scan backend of every mixer (one of ``SCAN_BACKENDS``)."""
        check_scan_backend(backend)
        for block in self.layers:
            block.mixer.scan_backend = backend

    @property
    def num_directions(self) -> int:
        return self.scan.num_directions

    # ------------------------------------------------------------------ helpers
    def scan_orders(self, H: int, W: int, device=None) -> torch.Tensor:
        """The token orders (K, L) of the K scan directions for an H×W patch grid, cached."""
        return self.token_orders(H, W, device if device is not None else self.pos_embed.device)

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = _checked_image(x, self.in_chans)
        x = call_untraced(self.patch_embed, x)  # (B, C, H', W')
        B, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = insert_mid_token(x, self.cls_token.expand(B, -1, -1).to(x.dtype))
        pos_embed = _pos_embed_for_grid(self.pos_embed, (H, W), self.patch_embed.grid_size, self.num_prefix_tokens)
        x = self.pos_drop(x + pos_embed)
        if self.residual_in_fp32:
            x = _at_least_float32(x)
        return x, (H, W)

    def fx_feature_to_map(self):
        """For ``feature_cls='fx'``: a block's traced output (B, L, C) -> the (B, C, H', W') map of its
        patch tokens, as forward_intermediates gives."""
        return functools.partial(_tokens_to_map, patch_size=self.patch_embed.patch_size,
                                 stride=self.patch_embed.stride, class_token=self.has_class_token)

    def _run_block(self, block: VimBlock, x, orders, grid, with_update: bool = False):
        if self.rope is not None:
            x = call_untraced(self.rope, x, grid)
        step = block.forward_with_update if with_update else block
        if self.grad_checkpointing and not torch.jit.is_scripting() and torch.is_grad_enabled():
            return checkpoint(step, x, orders)
        return step(x, orders)

    def _split_tokens(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, L, C) -> ((B, M, C) patch tokens in row-major order, (B, 1, C) class token or None)."""
        if self.has_class_token:
            return split_mid_token(x)
        return x, None

    # ------------------------------------------------------------------ forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L, C) normalised tokens (class token at index M // 2)."""
        x, (H, W) = self._embed(x)
        orders = call_untraced(self.token_orders, H, W, x.device)
        for block in self.layers:
            x = self._run_block(block, x, orders, (H, W))
        return self.norm_f(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "token":
            x = x[:, mid_index(x.shape[1] - 1)]
        elif self.global_pool:
            patches = self._split_tokens(x)[0]
            if self.global_pool == "avg":
                x = patches.mean(dim=1)
            elif self.global_pool == "max":
                x = patches.amax(dim=1)
            else:
                x = 0.5 * (patches.mean(dim=1) + patches.amax(dim=1))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
            return_prefix_tokens: bool = False,
            intermediate_type: str = "stream",
    ):
        """Outputs of the blocks ``indices`` (timm's convention: int = last n, None = all).

        Each intermediate is, for ``intermediate_type="stream"``, the residual stream after the block
        or, for ``"mixer"``, the block's mixer output before it joins the stream (official Vim
        segmentation's default features); ``norm=True`` passes it through ``norm_f``.  The class
        token is left out: (B, C, H', W') for "NCHW" or (B, H'·W', C) for "NLC"; with
        ``return_prefix_tokens`` each is a tuple (map, class token (B, 1, C)).
        Returns ``(final normalised tokens, intermediates)`` or only the intermediates.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        if intermediate_type not in INTERMEDIATE_TYPES:
            raise ValueError(f"intermediate_type must be one of {INTERMEDIATE_TYPES}, got {intermediate_type!r}")
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        x, (H, W) = self._embed(x)
        B = x.shape[0]
        orders = self.scan_orders(H, W, x.device)
        layers = self.layers if not stop_early else self.layers[:max_index + 1]
        intermediates = []
        for i, block in enumerate(layers):
            x, update = self._run_block(block, x, orders, (H, W), with_update=True)
            if i in take_indices:
                y = x if intermediate_type == "stream" else update
                y = self.norm_f(y) if norm else y
                patches, prefix = self._split_tokens(y)
                if output_fmt == "NCHW":
                    patches = patches.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
                if return_prefix_tokens and prefix is not None:
                    intermediates.append((patches, prefix))
                else:
                    intermediates.append(patches)
        if intermediates_only:
            return intermediates
        return self.norm_f(x), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drops the blocks after the last of ``indices`` (and the norm / head); returns the indices."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[:max_index + 1]
        self.feature_info = self.feature_info[:max_index + 1]
        if prune_norm:
            self.norm_f = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


@torch.fx.wrap
def _checked_image(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """``x`` after the check of its layout (one FX call: it reads the shape)."""
    check_image(x, in_chans, "VisionMamba")
    return x


@torch.fx.wrap
def _pos_embed_for_grid(pos_embed: torch.Tensor, grid: Tuple[int, int], model_grid: Tuple[int, int],
                        num_prefix_tokens: int) -> torch.Tensor:
    """The position embedding of the model's grid, resampled to ``grid`` when that differs."""
    if tuple(grid) == tuple(model_grid):
        return pos_embed
    return resample_pos_embed_mid_cls(pos_embed, tuple(grid), old_size=model_grid,
                                      num_prefix_tokens=num_prefix_tokens)


def _tokens_to_map(tokens: torch.Tensor, image: torch.Tensor, patch_size: Tuple[int, int],
                   stride: Tuple[int, int], class_token: bool) -> torch.Tensor:
    """(B, L, C) tokens of ``image`` -> (B, C, H', W') map of the patch tokens."""
    H, W = patch_grid(image.shape[-2:], patch_size, stride)
    patches = split_mid_token(tokens)[0] if class_token else tokens
    return patches.reshape(tokens.shape[0], H, W, -1).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------- loading
def _pos_embed_grid_warning(old_grid: Tuple[int, int], model: VisionMamba) -> str:
    """The warning for a checkpoint ``pos_embed`` on the patch grid ``old_grid`` resampled to the model's grid."""
    old = f"{old_grid[0]}x{old_grid[1]}"
    new_h, new_w = model.patch_embed.grid_size
    msg = f"resampling the checkpoint's pos_embed from a {old} grid to the model's {new_h}x{new_w} grid"
    cfg = getattr(model, "pretrained_cfg", None) or {}
    input_size = cfg.get("input_size") if isinstance(cfg, dict) else None
    img_h, img_w = model.patch_embed.img_size
    if input_size is None or tuple(input_size[-2:]) != (img_h, img_w):
        return msg
    # the model is at its pretrained input size: the checkpoint's grid comes from another patch layout
    patch, (stride, _) = model.patch_embed.patch_size, model.patch_embed.stride
    fits = [s for s in range(1, patch[0] + 1) if patch_grid((img_h, img_w), patch, (s, s)) == old_grid]
    hint = f" (a {old} grid at {img_h}x{img_w} fits stride {fits[0]})" if fits and fits[0] != stride else ""
    return (f"{msg}, although the model is at its pretrained input size {img_h}x{img_w}: the checkpoint was "
            f"probably trained with another patch stride{hint} than this model's stride {stride} (e.g. a "
            f"stride-8 Vim-T+ / S+ checkpoint loaded into a stride-16 model); use the matching variant "
            f"(e.g. *_patch16_stride8_224) unless the resampling is intended")


_GIVE_SOURCE_SIZE = ("give the checkpoint's input size: timm.create_model(..., pretrained_model_args=dict("
                     "img_size=(H, W))), or set model.pretrained_model_args = dict(img_size=(H, W)) before "
                     "model.load_pretrained(...)")


def checkpoint_grid(num_patches: int, model: VisionMamba) -> Tuple[int, int]:
    """The patch grid (H, W) a checkpoint's ``pos_embed`` with ``num_patches`` patch entries belongs to.

    From ``model.pretrained_model_args`` (timm's record of the checkpoint's construction arguments,
    ``timm.create_model(..., pretrained_model_args=dict(img_size=(H, W)))``; its ``patch_size`` /
    ``stride`` when given, else the model's) when it names ``img_size``; else the model's own grid for
    the same count; else the one grid that fits: square (official checkpoints) or of the model's aspect
    ratio.  Raises a ValueError saying how to give the size when none or both fit.
    """
    args = getattr(model, "pretrained_model_args", None) or {}
    if args.get("img_size") is not None:
        patch = to_2tuple(args.get("patch_size", model.patch_embed.patch_size))
        stride = to_2tuple(args.get("stride") or (patch if "patch_size" in args else model.patch_embed.stride))
        grid = patch_grid(to_2tuple(args["img_size"]), patch, stride)
        if grid[0] * grid[1] != num_patches:
            raise ValueError(
                f"pretrained_model_args img_size={args['img_size']} gives a {grid[0]}x{grid[1]} patch grid with "
                f"patch {patch[0]} / stride {stride[0]}, but the checkpoint's pos_embed has {num_patches} patch "
                f"entries: correct img_size (and give patch_size / stride if the checkpoint's differ from the model's)")
        return grid
    if num_patches == model.patch_embed.num_patches:
        return model.patch_embed.grid_size
    candidates = set()
    side = math.isqrt(num_patches)
    if side * side == num_patches:
        candidates.add((side, side))
    h, w = model.patch_embed.grid_size
    aspect_h, aspect_w = h // math.gcd(h, w), w // math.gcd(h, w)
    scale = math.isqrt(num_patches // (aspect_h * aspect_w))
    if aspect_h * aspect_w * scale * scale == num_patches:
        candidates.add((aspect_h * scale, aspect_w * scale))
    if len(candidates) == 1:
        return candidates.pop()
    found = (f"it may be a {' or a '.join(f'{a}x{b}' for a, b in sorted(candidates))} grid" if candidates else
             f"neither a square grid nor one of the model's {aspect_h}:{aspect_w} aspect ratio")
    raise ValueError(f"the checkpoint's pos_embed has {num_patches} patch entries: {found}; {_GIVE_SOURCE_SIZE}")


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: VisionMamba) -> Dict[str, torch.Tensor]:
    """Official Vim state dicts load as is (identity key mapping); this only adapts sizes:

    * ``pos_embed`` of another grid is interpolated to the model's (bicubic, the class token kept,
      at the middle); the checkpoint's grid is found by :func:`checkpoint_grid` (pass
      ``pretrained_model_args=dict(img_size=(H, W))`` to ``timm.create_model`` when it cannot be
      inferred).  Every resampling logs a warning naming both grids; at the model's pretrained input
      size the warning says that the checkpoint probably has another patch stride (a stride-8
      checkpoint in a stride-16 model);
    * ``patch_embed.proj.weight`` of another kernel size is resampled (timm's resample_patch_embed);
    * a class token loaded into a model without one (``class_token=False``, as official Vim's
      segmentation backbone) is dropped, with its ``pos_embed`` slot, and a warning says so;
    * the rotary tables of an official ``if_rope`` model (``rope.freqs_cos`` / ``rope.freqs_sin``) are
      checked against the tables of a ``rope=True`` model (which computes them) and left out; a
      table that differs is a warning.  Without ``rope=True`` they stay, and loading reports them.
    A training dict (``model`` / ``state_dict`` entry) is unwrapped first; :func:`adapt_to_model` ends it
    (the stem to ``in_chans``, a classifier for other classes left at its init).
    """
    state_dict = state_dict_from_checkpoint(state_dict)
    if "cls_token" in state_dict and not model.has_class_token:
        state_dict = _drop_class_token(state_dict)
    if model.rope is not None:
        state_dict = _drop_rope_tables(state_dict, model)
    # a checkpoint without the model's class token: its pos_embed is reported by the loader, not resampled
    same_prefix = model.has_class_token == ("cls_token" in state_dict)
    out = {}
    for k, v in state_dict.items():
        if k == "pos_embed" and v.dim() == 3 and same_prefix:
            old_grid = checkpoint_grid(v.shape[1] - model.num_prefix_tokens, model)
            if old_grid != model.patch_embed.grid_size:
                _logger.warning(_pos_embed_grid_warning(old_grid, model))
                v = resample_pos_embed_mid_cls(v, model.patch_embed.grid_size, old_size=old_grid,
                                               num_prefix_tokens=model.num_prefix_tokens)
        elif k == "patch_embed.proj.weight" and v.shape[-2:] != model.patch_embed.proj.weight.shape[-2:]:
            v = resample_patch_embed(v, list(model.patch_embed.patch_size), verbose=True)
        out[k] = v
    return adapt_to_model(out, model, first_conv=_FIRST_CONV, classifier=_CLASSIFIER)


VisionMamba.checkpoint_filter_fn = staticmethod(checkpoint_filter_fn)


def _drop_rope_tables(state_dict: Dict[str, torch.Tensor], model: VisionMamba) -> Dict[str, torch.Tensor]:
    """The official rotary tables (grid tokens, C), checked against the model's at its own grid, left out."""
    angles = model.rope.angles(model.patch_embed.grid_size)
    for key, ours in (("rope.freqs_cos", angles.cos()), ("rope.freqs_sin", angles.sin())):
        theirs = state_dict.get(key)
        if theirs is None:
            continue
        if theirs.shape != ours.shape or not torch.allclose(theirs.double(), ours, atol=1e-4):
            _logger.warning(f"the checkpoint's {key} {tuple(theirs.shape)} differs from the rotary table this "
                            f"model computes for its {tuple(model.patch_embed.grid_size)} grid; using the model's")
    return {k: v for k, v in state_dict.items() if k not in ("rope.freqs_cos", "rope.freqs_sin")}


def _drop_class_token(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A class-token state dict for a model without one: cls_token and its middle pos_embed slot removed."""
    out = {k: v for k, v in state_dict.items() if k != "cls_token"}
    posemb = state_dict.get("pos_embed")
    if posemb is not None:
        if posemb.dim() != 3:
            raise ValueError(f"checkpoint pos_embed must be (1, tokens, dim), got {tuple(posemb.shape)}")
        out["pos_embed"] = split_mid_token(posemb)[0]
    _logger.warning("the checkpoint has a class token and the model has none (class_token=False): "
                    "dropping cls_token and its (middle) pos_embed slot")
    return out


def _create_vim(variant: str, pretrained: bool = False, **kwargs) -> VisionMamba:
    last_three = min(3, kwargs.get("depth", 24))  # the last 3 blocks, like timm's ViT
    kwargs.setdefault("pretrained_filter_fn", checkpoint_filter_fn)  # mmlab backbones pass their own
    feature_cfg = {"feature_cls": "getter", "out_indices": last_three, **kwargs.pop("feature_cfg", {})}
    return build_ssm_model(VisionMamba, variant, pretrained, feature_cfg=feature_cfg, **kwargs)


_FIRST_CONV, _CLASSIFIER = "patch_embed.proj", "head"


def _cfg(hf_hub_id: str, hf_hub_filename: str, **kw) -> Dict[str, Any]:
    return dict(
        hf_hub_id=hf_hub_id, hf_hub_filename=hf_hub_filename, num_classes=1000,
        input_size=(3, 224, 224), pool_size=None, crop_pct=0.875, interpolation="bicubic",
        fixed_input_size=True, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv=_FIRST_CONV, classifier=_CLASSIFIER, license="apache-2.0",
        paper_ids="arXiv:2401.09417", paper_name="Vision Mamba", origin_url="https://github.com/hustvl/Vim",
        **kw)


# Official hub repos / files (the checkpoints are the official training dicts: model, model_ema, ...).
# Vim-B: the model card's table names only the repo; the file name vim_b_midclstok_81p9acc.pth is the
# one third-party code downloads from that repo.
_HUB = {
    "tiny": ("hustvl/Vim-tiny-midclstok", "vim_t_midclstok_76p1acc.pth"),
    "tiny_s8": ("hustvl/Vim-tiny-midclstok", "vim_t_midclstok_ft_78p3acc.pth"),
    "small": ("hustvl/Vim-small-midclstok", "vim_s_midclstok_80p5acc.pth"),
    "small_s8": ("hustvl/Vim-small-midclstok", "vim_s_midclstok_ft_81p6acc.pth"),
    "base": ("hustvl/Vim-base-midclstok", "vim_b_midclstok_81p9acc.pth"),
}

# short name -> (official long name, hub key, architecture kwargs)
_VARIANTS = {
    "vim_tiny_patch16_224": (
        "vim_tiny_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2", "tiny",
        dict(patch_size=16, embed_dim=192, depth=24)),
    "vim_tiny_patch16_stride8_224": (
        "vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2", "tiny_s8",
        dict(patch_size=16, stride=8, embed_dim=192, depth=24)),
    "vim_small_patch16_224": (
        "vim_small_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2", "small",
        dict(patch_size=16, embed_dim=384, depth=24)),
    "vim_small_patch16_stride8_224": (
        "vim_small_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2", "small_s8",
        dict(patch_size=16, stride=8, embed_dim=384, depth=24)),
    "vim_base_patch16_224": (
        "vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2", "base",
        dict(patch_size=16, embed_dim=768, depth=24)),
}

OFFICIAL_NAMES = {short: long for short, (long, _, _) in _VARIANTS.items()}

default_cfgs = generate_default_cfgs({
    f"{short}.hustvl_in1k": _cfg(*_HUB[hub]) for short, (_, hub, _) in _VARIANTS.items()
})


def _build(short: str, pretrained: bool, **kwargs) -> VisionMamba:
    model_args = dict(_VARIANTS[short][2])
    model_args.update(kwargs)  # embed_dim / depth / img_size / scan / ... are overridable
    return _create_vim(short, pretrained=pretrained, **model_args)


@register_model
def vim_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-T: 7,148,008 parameters, 76.1 top-1."""
    return _build("vim_tiny_patch16_224", pretrained, **kwargs)


@register_model
def vim_tiny_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-T+ (patch 16, stride 8, 729 patches): 7,250,344 parameters, 78.3 top-1."""
    return _build("vim_tiny_patch16_stride8_224", pretrained, **kwargs)


@register_model
def vim_small_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-S: 25,796,584 parameters, 80.5 top-1."""
    return _build("vim_small_patch16_224", pretrained, **kwargs)


@register_model
def vim_small_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-S+ (patch 16, stride 8): 26,001,256 parameters, 81.6 top-1."""
    return _build("vim_small_patch16_stride8_224", pretrained, **kwargs)


@register_model
def vim_base_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-B: 97,598,440 parameters, 81.9 top-1."""
    return _build("vim_base_patch16_224", pretrained, **kwargs)


# The official factory names (hustvl/Vim vim/models_mamba.py) map to the same models and weights.
register_model_deprecations(__name__, {long: f"{short}.hustvl_in1k" for short, long in OFFICIAL_NAMES.items()})
