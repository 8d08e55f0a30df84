"""VMamba (Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024) as timm models.

The published family, with the official module / parameter names so that the released
checkpoints load with an identity key mapping:

    Vanilla-VMamba-T/S/B (v0): d_state 16, forward_type "v0" (gated SS2D, no MLP), Swin patch
        embedding and patch merging, channel-last LayerNorm.
    VMamba-T[s1l8], S[s1l20], B[s1l20], T[s2l5], S[s2l15], B[s2l15] (v2): d_state 1,
        forward_type "v05_noz", no conv bias, MLP ratio 4, v2 patch embedding (two 3x3 stride-2
        convs), v3 downsampling (3x3 stride-2 conv + norm), channel-first LayerNorm ("ln2d").

Layout: ``patch_embed`` -> ``layers[i]`` (``blocks`` then ``downsample``; the last stage's
downsample is an Identity) -> ``classifier`` (``norm`` on the map, global pool, ``head``).
Stage i's features (feature_info / forward_intermediates) are the output of ``layers[i].blocks``,
before its downsample: dims[i] channels at stride patch_size * 2**i.

Any input size >= patch_size * 2**(num_stages - 1) (32 for the published models): inputs that
are not a multiple of the patch size and odd stage sizes before a stride-2 step are zero-padded
at the bottom / right (see ``vision_ssm.layers.embed``); smaller inputs raise a ValueError.

The SS2D scan is pluggable: ``scan=`` takes any registered strategy (default "cross", VMamba's
CrossScan); K = scan.num_directions sets the per-direction parameter shapes.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, SelectAdaptivePool2d, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch.utils.checkpoint import checkpoint

from vision_ssm.checkpoint import state_dict_from_checkpoint
from vision_ssm.layers.embed import PatchEmbed, make_downsample
from vision_ssm.layers.norm import LayerNorm2d, get_norm_layer
from vision_ssm.layers.scan_backend import check_scan_backend
from vision_ssm.layers.ss2d import SS2D, Linear2d, resolve_scan
from ._factory import accepts_device_dtype, new_like
from ._fx import call_untraced
from ._inputs import check_image
from ._builder import PretrainedLoaderMixin, adapt_to_model, build_ssm_model

__all__ = ["VMamba", "VSSBlock", "VSSStage", "checkpoint_filter_fn"]

torch.fx.wrap("call_untraced")  # SS2D, the patch embedding and the downsamples branch on sizes

_ACT_LAYERS = dict(silu=nn.SiLU, gelu=nn.GELU, relu=nn.ReLU, sigmoid=nn.Sigmoid)


def _act_layer(name):
    if isinstance(name, str):
        if name.lower() not in _ACT_LAYERS:
            raise ValueError(f"activation must be one of {tuple(_ACT_LAYERS)}, got {name!r}")
        return _ACT_LAYERS[name.lower()]
    return name


class Mlp(nn.Module):
    """fc1 -> act -> drop -> fc2 -> drop, on channel-last tokens or (``channel_first``) NCHW maps."""

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 act_layer=nn.GELU, drop: float = 0., channel_first: bool = False):
        super().__init__()
        Linear = Linear2d if channel_first else nn.Linear
        self.fc1 = Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class GatedMlp(nn.Module):
    """VMamba's gMlp: fc1 makes 2*hidden channels (x, z); out = fc2(x * act(z))."""

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 act_layer=nn.GELU, drop: float = 0., channel_first: bool = False):
        super().__init__()
        Linear = Linear2d if channel_first else nn.Linear
        self.channel_first = channel_first
        self.fc1 = Linear(in_features, 2 * hidden_features)
        self.act = act_layer()
        self.fc2 = Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x, z = self.fc1(x).chunk(2, dim=1 if self.channel_first else -1)
        return self.drop(self.fc2(x * self.act(z)))


class VSSBlock(nn.Module):
    """x + drop_path(op(norm(x))) [then x + drop_path(mlp(norm2(x)))]  (post_norm: norm after)."""

    def __init__(
            self,
            dim: int,
            drop_path: float = 0.,
            norm_layer=nn.LayerNorm,
            channel_first: bool = False,
            ssm_d_state: int = 16,
            ssm_ratio: float = 2.0,
            ssm_dt_rank="auto",
            ssm_act_layer=nn.SiLU,
            ssm_conv: int = 3,
            ssm_conv_bias: bool = True,
            ssm_drop_rate: float = 0.,
            ssm_init: str = "v0",
            forward_type: str = "v2",
            mlp_ratio: float = 4.0,
            mlp_act_layer=nn.GELU,
            mlp_drop_rate: float = 0.,
            gmlp: bool = False,
            post_norm: bool = False,
            scan="cross",
            scan_backend: str = "auto",
    ):
        super().__init__()
        self.post_norm = post_norm
        if ssm_ratio > 0:
            self.norm = norm_layer(dim)
            self.op = SS2D(d_model=dim, d_state=ssm_d_state, ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank,
                           act_layer=ssm_act_layer, d_conv=ssm_conv, conv_bias=ssm_conv_bias,
                           dropout=ssm_drop_rate, initialize=ssm_init, forward_type=forward_type,
                           channel_first=channel_first, scan=scan, scan_backend=scan_backend)
        else:
            self.norm = self.op = None
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        if mlp_ratio > 0:
            self.norm2 = norm_layer(dim)
            mlp_cls = GatedMlp if gmlp else Mlp
            self.mlp = mlp_cls(dim, int(dim * mlp_ratio), act_layer=mlp_act_layer, drop=mlp_drop_rate,
                               channel_first=channel_first)
        else:
            self.norm2 = self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op is not None:
            y = self.norm(call_untraced(self.op, x)) if self.post_norm else call_untraced(self.op, self.norm(x))
            x = x + self.drop_path(y)
        if self.mlp is not None:
            y = self.norm2(self.mlp(x)) if self.post_norm else self.mlp(self.norm2(x))
            x = x + self.drop_path(y)
        return x


class VSSStage(nn.Module):
    """``blocks`` (nn.Sequential of VSSBlock) then ``downsample`` (to the next stage's width)."""

    def __init__(self, blocks: Sequence[nn.Module], downsample: Optional[nn.Module] = None):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for blk in self.blocks:
                x = checkpoint(blk, x, use_reentrant=False)
            return x
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return call_untraced(self.downsample, self.forward_blocks(x))


class VMambaHead(nn.Module):
    """``norm`` (channel-first, on the map) -> global pool -> dropout -> ``head``.

    The Linear takes ``num_features * feat_mult`` inputs (2x for "catavgmax"); ``pool_type=""``
    (no pooling, the map is returned) only works without classes.
    """

    def __init__(self, num_features: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.,
                 norm_layer=LayerNorm2d):
        super().__init__()
        self.in_features = num_features
        self.norm = norm_layer(num_features)
        self.global_pool = self._make_pool(pool_type, num_classes)
        self.drop = nn.Dropout(drop_rate)
        self.head = self._make_head(num_classes)

    @staticmethod
    def _make_pool(pool_type: str, num_classes: int) -> SelectAdaptivePool2d:
        pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=bool(pool_type))
        if num_classes > 0 and pool.is_identity():
            raise ValueError(
                f"global_pool={pool_type!r} (no pooling) needs num_classes=0: the Linear classifier takes "
                f"pooled (B, C) features; use global_pool='avg' (or 'max', 'avgmax', 'catavgmax') to "
                f"classify, got num_classes={num_classes}")
        return pool

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return nn.Linear(self.in_features * self.global_pool.feat_mult(), num_classes)

    def reset(self, num_classes: int, pool_type: Optional[str] = None):
        """New classifier (and pooling when ``pool_type`` is given); the pooling is checked first."""
        self.global_pool = self._make_pool(self.global_pool.pool_type if pool_type is None else pool_type,
                                           num_classes)
        self.head = new_like(self.norm, lambda: self._make_head(num_classes))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(self.norm(x)))
        return x if pre_logits else self.head(x)


class VMamba(PretrainedLoaderMixin, nn.Module):
    """VMamba backbone / classifier.  Keyword arguments are the official ``VSSM`` ones, plus
    timm's (``img_size``, ``global_pool``, ``drop_rate``) and ``scan`` / ``scan_backend``.

    ``dims``: int (doubled at every stage) or one width per stage.  ``norm_layer``: "ln"
    (channel-last model), "ln2d" or "bn" (channel-first).  ``ssm_rank_ratio`` is accepted for
    config compatibility; only the full-rank SS2D of the published models is implemented.
    """

    @accepts_device_dtype
    def __init__(
            self,
            patch_size: int = 4,
            in_chans: int = 3,
            num_classes: int = 1000,
            depths: Sequence[int] = (2, 2, 9, 2),
            dims: Union[int, Sequence[int]] = 96,
            ssm_d_state: int = 16,
            ssm_ratio: float = 2.0,
            ssm_rank_ratio: Optional[float] = None,
            ssm_dt_rank="auto",
            ssm_act_layer: str = "silu",
            ssm_conv: int = 3,
            ssm_conv_bias: bool = True,
            ssm_drop_rate: float = 0.,
            ssm_init: str = "v0",
            forward_type: str = "v2",
            mlp_ratio: float = 4.0,
            mlp_act_layer: str = "gelu",
            mlp_drop_rate: float = 0.,
            gmlp: bool = False,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.1,
            patch_norm: bool = True,
            norm_layer: str = "ln",
            downsample_version: str = "v2",
            patchembed_version: str = "v1",
            use_checkpoint: bool = False,
            posembed: bool = False,
            imgsize: int = 224,
            img_size: Optional[Union[int, Tuple[int, int]]] = None,
            global_pool: str = "avg",
            scan="cross",
            scan_backend: str = "auto",
    ):
        super().__init__()
        if ssm_rank_ratio is not None and 0 < ssm_rank_ratio < ssm_ratio:
            raise NotImplementedError(
                f"low-rank SS2D (ssm_rank_ratio={ssm_rank_ratio} < ssm_ratio={ssm_ratio}) is not implemented")
        if ssm_conv > 1 and ssm_conv % 2 == 0:
            raise ValueError(
                f"ssm_conv must be odd (SS2D's depthwise conv is 'same'-padded with (ssm_conv - 1) // 2, "
                f"as in VMamba, so an even kernel would shrink the map), got ssm_conv={ssm_conv}")
        norm_cls, self.channel_first = get_norm_layer(norm_layer)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.patch_size = patch_size
        depths = list(depths)
        self.num_layers = len(depths)
        if isinstance(dims, int):
            dims = [int(dims * 2 ** i) for i in range(self.num_layers)]
        dims = list(dims)
        if len(dims) != self.num_layers:
            raise ValueError(f"dims has {len(dims)} entries but depths has {self.num_layers}")
        self.dims = dims
        self.num_features = self.head_hidden_size = dims[-1]
        self.output_fmt = "NCHW"
        self.min_input_size = patch_size * 2 ** (self.num_layers - 1)
        if img_size is None:
            img_size = imgsize
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self._check_size(*self.img_size, what="img_size")
        self.scan = resolve_scan(scan)  # one strategy (one cache of index maps) for every block
        self.scan_backend = check_scan_backend(scan_backend)

        self.patch_embed = PatchEmbed(in_chans, dims[0], patch_size, patch_norm, norm_cls,
                                      channel_first=self.channel_first, version=patchembed_version)
        if posembed:  # on the patch grid of img_size (ceil: the patch embedding pads)
            self.pos_embed = nn.Parameter(torch.zeros(1, dims[0], *self.patch_embed.dynamic_feat_size(self.img_size)))
        else:
            self.pos_embed = None

        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        block_kwargs = dict(
            norm_layer=norm_cls, channel_first=self.channel_first, ssm_d_state=ssm_d_state,
            ssm_ratio=ssm_ratio, ssm_dt_rank=ssm_dt_rank, ssm_act_layer=_act_layer(ssm_act_layer),
            ssm_conv=ssm_conv, ssm_conv_bias=ssm_conv_bias, ssm_drop_rate=ssm_drop_rate, ssm_init=ssm_init,
            forward_type=forward_type, mlp_ratio=mlp_ratio, mlp_act_layer=_act_layer(mlp_act_layer),
            mlp_drop_rate=mlp_drop_rate, gmlp=gmlp, scan=self.scan, scan_backend=scan_backend)
        self.layers = nn.ModuleList()
        self.feature_info = []
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            blocks = [VSSBlock(dims[i], drop_path=dpr[start + j], **block_kwargs) for j in range(depth)]
            downsample = make_downsample(downsample_version, dims[i], dims[i + 1], norm_layer=norm_cls,
                                         channel_first=self.channel_first) if i < self.num_layers - 1 else None
            self.layers.append(VSSStage(blocks, downsample))
            self.feature_info.append(dict(num_chs=dims[i], reduction=patch_size * 2 ** i,
                                          module=f"layers.{i}.blocks"))
        # The head norm runs on NCHW maps: LayerNorm2d holds the same (C,) weight / bias as the
        # official channel-last nn.LayerNorm, so both layouts share the checkpoint keys.
        head_norm = LayerNorm2d if norm_cls in (nn.LayerNorm, LayerNorm2d) else norm_cls
        self.classifier = VMambaHead(self.num_features, num_classes, global_pool, drop_rate, head_norm)

        self.apply(self._init_weights)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)
        if use_checkpoint:
            self.set_grad_checkpointing(True)

    @staticmethod
    def _init_weights(m: nn.Module):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ timm API
    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        names = {n for n, _ in self.named_parameters() if n.endswith(".A_logs") or n.endswith(".Ds")}
        if self.pos_embed is not None:
            names.add("pos_embed")
        return names

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        # the head norm normalises the last stage's output: it joins the last stage (coarse) or
        # the last block (fine), like a stage's downsample (timm's MATCH_PREV_GROUP)
        return dict(
            stem=r"^patch_embed|^pos_embed",
            blocks=[(r"^layers\.(\d+)", None), (r"^classifier\.norm", (99999,))] if coarse else [
                (r"^layers\.(\d+)\.blocks\.(\d+)", None),
                (r"^layers\.(\d+)\.downsample", (99999,)),  # ends stage i: joins its last block
                (r"^classifier\.norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.classifier.reset(num_classes, global_pool)
        self.num_classes = num_classes

    # ------------------------------------------------------------------ forward
    def _check_size(self, H: int, W: int, what: str = "input"):
        _check_size(H, W, self.min_input_size, self.patch_size, self.num_layers, what)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = _checked_input(x, self.in_chans, self.min_input_size, self.patch_size, self.num_layers)
        x = call_untraced(self.patch_embed, x)
        if self.pos_embed is not None:
            x = _add_pos_embed(x, self.pos_embed, self.channel_first)
        return x

    def _to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        return _stage_map(x, channel_first=self.channel_first)

    def fx_feature_to_map(self):
        """For ``feature_cls='fx'``: a stage's traced output -> its NCHW map, as forward_intermediates gives."""
        return functools.partial(_stage_map, channel_first=self.channel_first)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image -> last stage map (B, dims[-1], H/32, W/32), before the head norm."""
        x = self._embed(x)
        for stage in self.layers:
            x = stage(x)
        return self._to_nchw(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier(x, pre_logits=pre_logits)

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
    ):
        """Stage outputs (before each downsample).  ``norm`` applies the head norm to the last stage."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        last = len(self.layers) - 1
        stages = self.layers if torch.jit.is_scripting() or not stop_early else self.layers[:max_index + 1]
        intermediates = []
        x = self._embed(x)
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take_indices:
                feat = self._to_nchw(x)
                if norm and i == last:
                    feat = self.classifier.norm(feat)
                intermediates.append(feat.permute(0, 2, 3, 1) if output_fmt == "NHWC" else feat)
            x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return self._to_nchw(x), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ):
        """Drops the stages after the last requested one (and its now unused downsample).

        ``feature_info`` is truncated and ``num_features`` / ``head_hidden_size`` become the width of
        the new last stage.  The head norm and classifier were sized for (and trained on) the
        dropped last stage: when stages are dropped they are rebuilt, freshly initialised, for the
        new width (the norm as Identity with ``prune_norm``), so ``forward_intermediates(...,
        norm=True)`` and ``model(x)`` keep working.  ``prune_head`` resets the classifier to
        ``num_classes=0`` without pooling (timm's convention): ``model(x)`` returns the normed map.
        """
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        if max_index < len(self.layers) - 1:
            self.layers = self.layers[:max_index + 1]
            self.layers[-1].downsample = nn.Identity()
            self.feature_info = self.feature_info[:max_index + 1]
            self.num_features = self.head_hidden_size = self.feature_info[-1]["num_chs"]
            old = self.classifier
            self.classifier = VMambaHead(self.num_features, self.num_classes, old.global_pool.pool_type,
                                         old.drop.p, type(old.norm))
            self.classifier.apply(self._init_weights)
        if prune_norm:
            self.classifier.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


def _check_size(H: int, W: int, min_size: int, patch_size: int, num_layers: int, what: str = "input"):
    if H < min_size or W < min_size:
        raise ValueError(
            f"VMamba: {what} {H}x{W} is too small: with patch_size={patch_size} and "
            f"{num_layers} stages each side must be >= {min_size} "
            f"(so that the last stage is at least 1x1 without padding beyond a single stride)")


@torch.fx.wrap
def _checked_input(x: torch.Tensor, in_chans: int, min_size: int, patch_size: int, num_layers: int) -> torch.Tensor:
    """``x`` after the checks of its layout and size (one FX call: they read its shape)."""
    check_image(x, in_chans, "VMamba")
    _check_size(x.shape[-2], x.shape[-1], min_size, patch_size, num_layers)
    return x


@torch.fx.wrap
def _add_pos_embed(x: torch.Tensor, pos_embed: torch.Tensor, channel_first: bool) -> torch.Tensor:
    """x + pos_embed, interpolated (bicubic) when the patch grid differs from its own."""
    size = tuple(x.shape[-2:] if channel_first else x.shape[1:3])
    if tuple(pos_embed.shape[-2:]) != size:
        pos_embed = F.interpolate(pos_embed, size=size, mode="bicubic", align_corners=False)
    return x + (pos_embed if channel_first else pos_embed.permute(0, 2, 3, 1))


def _stage_map(x: torch.Tensor, image: Optional[torch.Tensor] = None, channel_first: bool = True) -> torch.Tensor:
    """A stage's output as an NCHW map (channel-last models' stages are NHWC)."""
    return x if channel_first else x.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------- checkpoints
_LEGACY_RENAMES = (
    # original #v0cls training code (PatchEmbed2D / VSSBlock / VSSM)
    (re.compile(r"^patch_embed\.proj\."), "patch_embed.0."),
    (re.compile(r"^patch_embed\.norm\."), "patch_embed.2."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+)\.ln_1\."), r"\1.norm."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+)\.self_attention\."), r"\1.op."),
    (re.compile(r"^norm\."), "classifier.norm."),
    (re.compile(r"^head\."), "classifier.head."),
    # later code: SS2D x_proj / dt_projs as modules
    (re.compile(r"\.op\.x_proj\.weight$"), ".op.x_proj_weight"),
    (re.compile(r"\.op\.dt_projs\.weight$"), ".op.dt_projs_weight"),
    (re.compile(r"\.op\.dt_projs\.bias$"), ".op.dt_projs_bias"),
)
_MERGING_RENAMES = (
    # single-file vmamba.py: v1 downsample as Sequential(PatchMerge, LayerNorm, Linear)
    (re.compile(r"^(layers\.\d+\.downsample)\.1\."), r"\1.norm."),
    (re.compile(r"^(layers\.\d+\.downsample)\.2\."), r"\1.reduction."),
)


_SS2D_PARAMS = re.compile(r"^(.*\.)(x_proj_weight|dt_projs_weight|dt_projs_bias|A_logs|Ds)$")


def _non_unit(shape) -> Tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def _official_layout(src, dst, K: Optional[int]) -> bool:
    """Whether ``src`` -> ``dst`` is one of VMamba's stored layouts of the same tensor.

    Up to unit dims (1x1 conv / conv1d weights): equal, or the leading K directions flattened
    into / split out of the next dim ((K*D, N) <-> (K, D, N), (K*D,) <-> (K, D)), K being the
    model's number of scan directions.  Anything else (another K or d_inner) is not a layout.
    """
    s, d = _non_unit(src), _non_unit(dst)
    if s == d:
        return True
    if not K or K == 1:
        return False
    for a, b in ((s, d), (d, s)):  # a = (K, D, ...) and b = (K*D, ...)
        if len(a) >= 2 and a[0] == K and b == (K * a[1],) + a[2:]:
            return True
    return False


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: VMamba) -> Dict[str, torch.Tensor]:
    """Official VMamba state dict (current or legacy layout) -> this model's keys.

    Current v2 / v0 checkpoints map by identity.  Legacy names of the original #v0cls
    checkpoints (``patch_embed.proj/norm``, ``ln_1``, ``self_attention``, top-level ``norm`` /
    ``head``), ``module.`` prefixes, the single-file code's ``downsample.1/2`` patch merging and
    ``x_proj.weight`` / ``dt_projs.weight`` modules are converted; tensors stored with extra
    unit dims (1x1 conv weights) and SS2D tensors stored with the K directions flattened or split
    ((K*D, N) <-> (K, D, N), (K*D,) <-> (K, D)) are reshaped; ``pos_embed`` is resized when its
    grid differs.  Any other shape difference (another scan K, ssm_ratio, d_state ...) is left
    as is, so that loading reports the mismatch instead of scrambling the values.  A training dict
    (``model`` / ``state_dict`` entry) is unwrapped first; :func:`adapt_to_model` ends it (the stem
    to ``in_chans``, a classifier for other classes left at its init).
    """
    state_dict = state_dict_from_checkpoint(state_dict)
    model_sd = model.state_dict()
    merging = any(k.endswith("downsample.reduction.weight") for k in model_sd)
    out = {}
    for k, v in state_dict.items():
        if k not in model_sd:
            for pattern, repl in _LEGACY_RENAMES + (_MERGING_RENAMES if merging else ()):
                k = pattern.sub(repl, k)
        if k in model_sd and v.shape != model_sd[k].shape:
            target = model_sd[k]
            ssm = _SS2D_PARAMS.match(k)
            K = None
            if ssm is not None and ssm.group(1) + "x_proj_weight" in model_sd:
                K = model_sd[ssm.group(1) + "x_proj_weight"].shape[0]
            if k.endswith("pos_embed") and v.dim() == 4:
                v = F.interpolate(v.float(), size=target.shape[-2:], mode="bicubic",
                                  align_corners=False).to(v.dtype)
            elif v.numel() == target.numel() and _official_layout(v.shape, target.shape, K):
                v = v.reshape(target.shape)
        out[k] = v
    return adapt_to_model(out, model, first_conv=_FIRST_CONV, classifier=_CLASSIFIER)


VMamba.checkpoint_filter_fn = staticmethod(checkpoint_filter_fn)


# ---------------------------------------------------------------------- registry
_URL = "https://github.com/MzeroMiko/VMamba/releases/download/%23{tag}/{file}"
_FIRST_CONV, _CLASSIFIER = "patch_embed.0", "classifier.head"


def _cfg(tag: str, file: str, top1: float, **kwargs):
    return dict(
        url=_URL.format(tag=tag, file=file),
        num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875, interpolation="bicubic",
        fixed_input_size=False, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv=_FIRST_CONV,
        classifier=_CLASSIFIER,
        min_input_size=(3, 32, 32),
        license="mit",
        paper_ids="arXiv:2401.10166",
        paper_name="VMamba: Visual State Space Model",
        origin_url="https://github.com/MzeroMiko/VMamba",
        notes=(f"official ImageNet-1k top-1 {top1}% at 224 (release #{tag}, {file})",),
        **kwargs,
    )


default_cfgs = generate_default_cfgs({
    "vanilla_vmamba_tiny.in1k": _cfg("v0cls", "vssmtiny_dp01_ckpt_epoch_292.pth", 82.2),
    "vanilla_vmamba_small.in1k": _cfg("v0cls", "vssmsmall_dp03_ckpt_epoch_238.pth", 83.5),
    "vanilla_vmamba_base.in1k": _cfg("v0cls", "vssmbase_dp06_ckpt_epoch_241.pth", 83.7),
    "vmamba_tiny_s1l8.in1k": _cfg("v2cls", "vssm1_tiny_0230s_ckpt_epoch_264.pth", 82.6),
    "vmamba_small_s1l20.in1k": _cfg("v2cls", "vssm1_small_0229s_ckpt_epoch_240.pth", 83.3),
    "vmamba_base_s1l20.in1k": _cfg("v2cls", "vssm1_base_0229s_ckpt_epoch_225.pth", 83.8),
    "vmamba_tiny_s2l5.in1k": _cfg("v2cls", "vssm_tiny_0230_ckpt_epoch_262.pth", 82.5),
    "vmamba_small_s2l15.in1k": _cfg("v2cls", "vssm_small_0229_ckpt_epoch_222.pth", 83.6),
    "vmamba_base_s2l15.in1k": _cfg("v2cls", "vssm_base_0229_ckpt_epoch_237.pth", 83.9),
})


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    num_stages = len(kwargs.get("depths", (2, 2, 9, 2)))
    kwargs.setdefault("pretrained_filter_fn", checkpoint_filter_fn)  # mmlab backbones pass their own
    feature_cfg = {"feature_cls": "getter", "out_indices": tuple(range(num_stages)),
                   **kwargs.pop("feature_cfg", {})}
    return build_ssm_model(VMamba, variant, pretrained, feature_cfg=feature_cfg, **kwargs)


# Architecture arguments of the official factories (MzeroMiko/VMamba classification/models/vmamba.py).
_V0 = dict(patch_size=4, ssm_d_state=16, ssm_ratio=2.0, ssm_dt_rank="auto", ssm_act_layer="silu",
           ssm_conv=3, ssm_conv_bias=True, ssm_drop_rate=0.0, ssm_init="v0", forward_type="v0",
           mlp_ratio=0.0, mlp_act_layer="gelu", mlp_drop_rate=0.0, gmlp=False, patch_norm=True,
           norm_layer="ln", downsample_version="v1", patchembed_version="v1")
_V2 = dict(patch_size=4, ssm_d_state=1, ssm_dt_rank="auto", ssm_act_layer="silu", ssm_conv=3,
           ssm_conv_bias=False, ssm_drop_rate=0.0, ssm_init="v0", forward_type="v05_noz",
           mlp_ratio=4.0, mlp_act_layer="gelu", mlp_drop_rate=0.0, gmlp=False, patch_norm=True,
           norm_layer="ln2d", downsample_version="v3", patchembed_version="v2")


def _args(base: dict, kwargs: dict, **arch) -> dict:
    return {**base, **arch, **kwargs}


@register_model
def vanilla_vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla-VMamba-T: 22.9M params, 5.6 GFLOPs, 82.2% top-1."""
    return _create_vmamba("vanilla_vmamba_tiny", pretrained, **_args(
        _V0, kwargs, depths=(2, 2, 9, 2), dims=96, drop_path_rate=0.2))


@register_model
def vanilla_vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla-VMamba-S: 44M params, 11.2 GFLOPs, 83.5% top-1."""
    return _create_vmamba("vanilla_vmamba_small", pretrained, **_args(
        _V0, kwargs, depths=(2, 2, 27, 2), dims=96, drop_path_rate=0.3))


@register_model
def vanilla_vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla-VMamba-B: 76M params, 18.0 GFLOPs, 83.7% top-1."""
    return _create_vmamba("vanilla_vmamba_base", pretrained, **_args(
        _V0, kwargs, depths=(2, 2, 27, 2), dims=128, drop_path_rate=0.5))


@register_model
def vmamba_tiny_s1l8(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T[s1l8]: 30.2M params, 4.9 GFLOPs, 82.6% top-1."""
    return _create_vmamba("vmamba_tiny_s1l8", pretrained, **_args(
        _V2, kwargs, depths=(2, 2, 8, 2), dims=96, ssm_ratio=1.0, drop_path_rate=0.2))


@register_model
def vmamba_small_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S[s1l20]: 49M params, 8.6 GFLOPs, 83.3% top-1."""
    return _create_vmamba("vmamba_small_s1l20", pretrained, **_args(
        _V2, kwargs, depths=(2, 2, 20, 2), dims=96, ssm_ratio=1.0, drop_path_rate=0.3))


@register_model
def vmamba_base_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B[s1l20]: 87M params, 15.2 GFLOPs, 83.8% top-1."""
    return _create_vmamba("vmamba_base_s1l20", pretrained, **_args(
        _V2, kwargs, depths=(2, 2, 20, 2), dims=128, ssm_ratio=1.0, drop_path_rate=0.5))


@register_model
def vmamba_tiny_s2l5(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T[s2l5]: 30.7M params, 4.9 GFLOPs, 82.5% top-1."""
    return _create_vmamba("vmamba_tiny_s2l5", pretrained, **_args(
        _V2, kwargs, depths=(2, 2, 5, 2), dims=96, ssm_ratio=2.0, drop_path_rate=0.2))


@register_model
def vmamba_small_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S[s2l15]: 50M params, 8.7 GFLOPs, 83.6% top-1."""
    return _create_vmamba("vmamba_small_s2l15", pretrained, **_args(
        _V2, kwargs, depths=(2, 2, 15, 2), dims=96, ssm_ratio=2.0, drop_path_rate=0.3))


@register_model
def vmamba_base_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B[s2l15]: 89M params, 15.4 GFLOPs, 83.9% top-1."""
    return _create_vmamba("vmamba_base_s2l15", pretrained, **_args(
        _V2, kwargs, depths=(2, 2, 15, 2), dims=128, ssm_ratio=2.0, drop_path_rate=0.6))
