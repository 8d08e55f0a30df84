"""Vim (vision_ssm.models.vim): official semantics, checkpoints, timm API, scan strategies.

The official architecture is re-implemented independently here (from hustvl/Vim
``vim/models_mamba.py`` and ``mamba_simple.Mamba(bimamba_type="v2")``, fast path) and compared with
the model in float64.  Official key names / shapes are generated from the architecture and, when
the reference manifests are available, checked against them.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import timm
import timm.optim
import scans
from vision_ssm.layers.bimamba import BiMamba
from vision_ssm.layers.pos_embed import resample_pos_embed_mid_cls
from vision_ssm.models import vim as vim_mod
from vision_ssm.models.vim import VisionMamba, checkpoint_filter_fn, scan_token_orders
from vision_ssm.models._builder import PretrainedLoadError
from vision_ssm.ops import selective_scan
from vision_ssm.ops.selective_scan import BACKENDS

MANIFEST_DIR = Path(os.environ.get("VISION_SSM_MANIFESTS", "/work/shared/reference/manifests"))

# model name -> (manifest, embed_dim, stride, published number of parameters)
PUBLISHED = {
    "vim_tiny_patch16_224": ("vim_tiny", 192, 16, 7_148_008),
    "vim_small_patch16_224": ("vim_small", 384, 16, 25_796_584),
    "vim_base_patch16_224": ("vim_base", 768, 16, 97_598_440),
    "vim_tiny_patch16_stride8_224": ("vim_tiny_stride8", 192, 8, 7_250_344),
    "vim_small_patch16_stride8_224": ("vim_small_stride8", 384, 8, 26_001_256),
}
ALL_NAMES = list(PUBLISHED) + list(vim_mod.OFFICIAL_NAMES.values())
TINY = dict(embed_dim=16, depth=2, d_state=4)


# ------------------------------------------------------------------------------------------ helpers
def official_shapes(dim, depth=24, num_classes=1000, patch=16, stride=16, img=224, d_state=16):
    """Key -> shape of an official Vim state dict, from the architecture."""
    d_inner, dt_rank = 2 * dim, math.ceil(dim / 16)
    grid = (img - patch) // stride + 1
    shapes = {
        "cls_token": (1, 1, dim), "pos_embed": (1, grid * grid + 1, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch), "patch_embed.proj.bias": (dim,),
        "head.weight": (num_classes, dim), "head.bias": (num_classes,), "norm_f.weight": (dim,),
    }
    for i in range(depth):
        p = f"layers.{i}."
        shapes[p + "norm.weight"] = (dim,)
        shapes[p + "mixer.in_proj.weight"] = (2 * d_inner, dim)
        shapes[p + "mixer.out_proj.weight"] = (dim, d_inner)
        for s in ("", "_b"):
            shapes[p + f"mixer.A{s}_log"] = (d_inner, d_state)
            shapes[p + f"mixer.D{s}"] = (d_inner,)
            shapes[p + f"mixer.conv1d{s}.weight"] = (d_inner, 1, 4)
            shapes[p + f"mixer.conv1d{s}.bias"] = (d_inner,)
            shapes[p + f"mixer.x_proj{s}.weight"] = (dt_rank + 2 * d_state, d_inner)
            shapes[p + f"mixer.dt_proj{s}.weight"] = (d_inner, dt_rank)
            shapes[p + f"mixer.dt_proj{s}.bias"] = (d_inner,)
    return shapes


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def official_direction(p, xz, sfx, d_state):
    """mamba_inner_fn_no_out_proj for one direction: xz (B, 2·Di, L) in this direction's order."""
    batch, _, L = xz.shape
    x, z = xz.chunk(2, dim=1)
    w, b = p[f"conv1d{sfx}.weight"], p[f"conv1d{sfx}.bias"]
    x = F.silu(F.conv1d(x, w, b, padding=w.shape[-1] - 1, groups=x.shape[1])[..., :L])
    x_dbl = F.linear(x.transpose(1, 2).reshape(batch * L, -1), p[f"x_proj{sfx}.weight"])
    dt_rank = p[f"dt_proj{sfx}.weight"].shape[1]
    delta = (p[f"dt_proj{sfx}.weight"] @ x_dbl[:, :dt_rank].t()).reshape(-1, batch, L).permute(1, 0, 2)
    Bm = x_dbl[:, dt_rank:dt_rank + d_state].reshape(batch, L, d_state).transpose(1, 2)
    Cm = x_dbl[:, -d_state:].reshape(batch, L, d_state).transpose(1, 2)
    A = -torch.exp(p[f"A{sfx}_log"])
    return selective_scan(x, delta, A, Bm, Cm, p[f"D{sfx}"], z=z, delta_bias=p[f"dt_proj{sfx}.bias"],
                          delta_softplus=True, backend="ref")


def official_mixer(p, hidden, d_state):
    """Official bimamba v2 forward, if_divide_out=True: out_proj((fwd + flip(bwd)) / 2)."""
    batch, L, dim = hidden.shape
    xz = (p["in_proj.weight"] @ hidden.reshape(batch * L, dim).t()).reshape(-1, batch, L).permute(1, 0, 2)
    out = official_direction(p, xz, "", d_state)
    out_b = official_direction(p, xz.flip(-1), "_b", d_state)
    return F.linear((out + out_b.flip(-1)).transpose(1, 2) / 2, p["out_proj.weight"])


def generic_mixer(p, hidden, d_state, orders, merge="mean"):
    """K directions, each reading the tokens in orders[k], mapped back and merged."""
    batch, L, dim = hidden.shape
    xz = (p["in_proj.weight"] @ hidden.reshape(batch * L, dim).t()).reshape(-1, batch, L).permute(1, 0, 2)
    outs = []
    for k, order in enumerate(orders):
        sfx = "" if k == 0 else "_b" if k == 1 else f"_{k}"
        y = official_direction(p, xz[..., order], sfx, d_state)
        back = torch.empty_like(y)
        back[..., order] = y
        outs.append(back)
    y = torch.stack(outs).sum(0)
    y = y / len(orders) if merge == "mean" else y
    return F.linear(y.transpose(1, 2), p["out_proj.weight"])


def official_vim(sd, x, stride, depth, d_state):
    """Official VisionMamba.forward (fused add-norm, middle class token, head on it)."""
    h = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=stride)
    h = h.flatten(2).transpose(1, 2)
    batch, M, _ = h.shape
    pos = M // 2
    h = torch.cat([h[:, :pos], sd["cls_token"].expand(batch, -1, -1), h[:, pos:]], dim=1) + sd["pos_embed"]
    residual, hidden = None, h
    for i in range(depth):
        residual = hidden if residual is None else residual + hidden
        mixer = {k[len(f"layers.{i}.mixer."):]: v for k, v in sd.items() if k.startswith(f"layers.{i}.mixer.")}
        hidden = official_mixer(mixer, rms_norm(residual, sd[f"layers.{i}.norm.weight"]), d_state)
    out = rms_norm(residual + hidden, sd["norm_f.weight"])
    return F.linear(out[:, pos], sd["head.weight"], sd["head.bias"])


def randomize(module, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def training_dict(state_dict, ema=None, model_name="vim"):
    """An official-style training checkpoint."""
    return {
        "model": state_dict,
        "model_ema": state_dict if ema is None else ema,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}},
                      "param_groups": [{"lr": 1e-5, "betas": (0.9, 0.999), "weight_decay": 0.05, "params": [0]}]},
        "lr_scheduler": {"t_initial": 300, "base_values": [5e-4]},
        "epoch": 299,
        "scaler": "none",
        "args": argparse.Namespace(model=model_name, batch_size=128, drop_path=0.05, input_size=224),
    }


# ------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("name", ALL_NAMES)
def test_published_parameter_counts(name):
    short = next(s for s, long in vim_mod.OFFICIAL_NAMES.items() if name in (s, long))
    manifest, dim, stride, count = PUBLISHED[short]
    with torch.device("meta"):
        model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == count
    expected = official_shapes(dim, stride=stride)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    path = MANIFEST_DIR / f"{manifest}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        assert data["num_params"] == count
        assert {k: tuple(v) for k, v in data["state_dict"].items()} == expected


# ------------------------------------------------------------------------------------------ mixer
def test_bimamba_matches_official_v2_float64():
    torch.manual_seed(0)
    mixer = randomize(BiMamba(8, d_state=4, d_conv=4, expand=2).double())
    p = dict(mixer.named_parameters())
    x = torch.randn(2, 7, 8, dtype=torch.float64, requires_grad=True)
    ours = mixer(x)
    ref = official_mixer(p, x, d_state=4)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g1 = torch.autograd.grad(ours.square().sum(), [x, p["A_b_log"], p["dt_proj.bias"]])
    g2 = torch.autograd.grad(ref.square().sum(), [x, p["A_b_log"], p["dt_proj.bias"]])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    # the official key names, in the official order
    assert list(p) == ["A_log", "D", "A_b_log", "D_b", "in_proj.weight", "conv1d.weight", "conv1d.bias",
                       "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "conv1d_b.weight", "conv1d_b.bias",
                       "x_proj_b.weight", "dt_proj_b.weight", "dt_proj_b.bias", "out_proj.weight"]


def test_bimamba_k_directions_and_ref_backend():
    torch.manual_seed(1)
    strategy = scans.get_scan("cross")
    H, W = 2, 3
    orders = scan_token_orders(strategy, H, W)  # with the class token: L = 7
    mixer = randomize(BiMamba(8, d_state=4, num_directions=4, scan_backend="ref").double(), seed=1)
    p = dict(mixer.named_parameters())
    assert {"A_2_log", "A_3_log", "D_2", "D_3", "conv1d_2.weight", "x_proj_3.weight", "dt_proj_2.bias"} <= set(p)
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    torch.testing.assert_close(mixer(x, orders), generic_mixer(p, x, 4, orders), rtol=1e-10, atol=1e-10)
    mixer.merge = "sum"
    torch.testing.assert_close(mixer(x, orders), generic_mixer(p, x, 4, orders, "sum"), rtol=1e-10, atol=1e-10)


def test_bimamba_init_like_official():
    torch.manual_seed(0)
    m = BiMamba(64, d_state=16)
    assert m.dt_rank == 4 and m.d_inner == 128
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6 and m.dt_proj.bias._no_reinit
    assert m.dt_proj.weight.abs().max() <= 4 ** -0.5
    torch.testing.assert_close(m.A_log, torch.log(torch.arange(1, 17.0)).repeat(128, 1))
    torch.testing.assert_close(m.A_b_log, m.A_log)
    assert torch.all(m.D == 1) and torch.all(m.D_b == 1)
    assert torch.all(m.dt_proj_b.bias == 0)  # official quirk (default Linear init, bias zeroed)
    m2 = BiMamba(64, d_state=16, dt_init_mode="mamba")
    assert F.softplus(m2.dt_proj_b.bias).max() <= 0.1 + 1e-6
    assert m.in_proj.bias is None and m.out_proj.bias is None and m.x_proj.bias is None


# ------------------------------------------------------------------------------------------ model semantics
@pytest.mark.parametrize("img,patch,stride", [(16, 4, 4), (12, 4, 4), (12, 4, 2), ((12, 20), 4, 4)])
def test_model_matches_official_vim_float64(img, patch, stride):
    """Default scan ("bidirectional") + middle class token == official Vim, even and odd M."""
    torch.manual_seed(0)
    model = VisionMamba(img_size=img, patch_size=patch, stride=stride, embed_dim=8, depth=2, d_state=4,
                        num_classes=3).double().eval()
    randomize(model, seed=2)
    sd = model.state_dict()
    hw = (img, img) if isinstance(img, int) else img
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    torch.testing.assert_close(model(x), official_vim(sd, x, stride, 2, 4), rtol=1e-9, atol=1e-10)


def test_class_token_position_and_orders():
    bi = scans.get_scan("bidirectional")
    for H, W in [(14, 14), (27, 27), (3, 5), (1, 1), (2, 3)]:
        M = H * W
        orders = scan_token_orders(bi, H, W)
        assert torch.equal(orders[0], torch.arange(M + 1))
        assert torch.equal(orders[1], torch.arange(M + 1).flip(0))
        assert orders[0, M // 2] == M // 2  # class token at step M // 2 of fwd ...
        assert orders[1, M - M // 2] == M // 2  # ... and the mirror step of bwd
    cross = scans.get_scan("cross")
    H, W = 3, 5
    M, mid = 15, 7
    o = scan_token_orders(cross, H, W)
    assert o.shape == (4, 16)
    for k in range(2):
        assert o[k, mid] == mid
        assert torch.equal(o[k + 2], o[k].flip(0))
        patches = torch.cat([o[k, :mid], o[k, mid + 1:]])
        expected = cross.orders(H, W)[k]
        assert torch.equal(patches, expected + (expected >= mid).long())
    # the class token sits at index M // 2 of a non-square sequence
    model = VisionMamba(img_size=(32, 48), patch_size=16, **TINY, num_classes=0).eval()
    with torch.no_grad():
        model.patch_embed.proj.weight.zero_()
        model.patch_embed.proj.bias.zero_()
        model.pos_embed.zero_()
        tokens, (gh, gw) = model._embed(torch.randn(1, 3, 32, 48))
    assert (gh, gw) == (2, 3) and tokens.shape[1] == 7
    assert torch.equal(tokens[0, 3], model.cls_token[0, 0])
    assert tokens[0, [0, 1, 2, 4, 5, 6]].abs().sum() == 0


def test_cross_scan_gives_four_direction_sets():
    model = timm.create_model("vim_tiny_patch16_224", scan="cross", img_size=64, **TINY)
    mixer = model.layers[0].mixer
    assert model.num_directions == 4 and mixer.num_directions == 4
    names = {n for n, _ in mixer.named_parameters()}
    for s in ("", "_b", "_2", "_3"):
        assert {f"A{s}_log", f"D{s}", f"conv1d{s}.weight", f"x_proj{s}.weight", f"dt_proj{s}.bias"} <= names
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    assert mixer.A_3_log.grad is not None and mixer.conv1d_2.weight.grad.abs().sum() > 0
    # scan given as (name, options), dict and instance
    for spec in (("cross", {}), {"name": "cross"}, scans.get_scan("cross")):
        assert VisionMamba(img_size=32, scan=spec, **TINY).num_directions == 4
    assert {"layers.1.mixer.A_3_log", "layers.1.mixer.D_2", "pos_embed", "cls_token"} <= model.no_weight_decay()


@pytest.mark.parametrize("scan", scans.list_scans())
def test_every_registered_scan_runs(scan):
    model = VisionMamba(img_size=(48, 80), scan=scan, embed_dim=8, depth=1, d_state=4, num_classes=3)
    K = model.num_directions
    assert K == scans.get_scan(scan).num_directions
    model(torch.randn(1, 3, 48, 80)).sum().backward()
    orders = model.scan_orders(3, 5)  # odd M = 15: the class token (index 7) at step 7 or, mirrored, 8
    assert orders.shape == (K, 16)
    assert all(int(orders[k].tolist().index(7)) in (7, 8) for k in range(K))
    assert sorted(orders[0].tolist()) == list(range(16))


# ------------------------------------------------------------------------------------------ checkpoints
def _make_checkpoint(name, tmp_path, fmt, seed=0):
    short = next(s for s, long in vim_mod.OFFICIAL_NAMES.items() if name in (s, long))
    _, dim, stride, _ = PUBLISHED[short]
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(shape, generator=g) for k, shape in official_shapes(dim, stride=stride).items()}
    if fmt == "pth":
        path = tmp_path / "checkpoint.pth"
        torch.save(training_dict(sd, model_name=vim_mod.OFFICIAL_NAMES[short]), path)
    else:
        from safetensors.torch import save_file
        path = tmp_path / "model.safetensors"
        save_file(sd, str(path))
    return sd, path


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_official_checkpoint_loads_with_identity_mapping(name, fmt, tmp_path):
    sd, path = _make_checkpoint(name, tmp_path, fmt)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    loaded = model.state_dict()
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        assert torch.equal(loaded[k], v), k
    del sd, loaded, model


@pytest.mark.parametrize("name", ["vim_tiny_patch16_224",
                                  "vim_tiny_patch16_stride8_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2"])
def test_checkpoint_at_other_img_size_interpolates_pos_embed(name, tmp_path):
    sd, path = _make_checkpoint(name, tmp_path, "pth", seed=3)
    model = timm.create_model(name, pretrained=True, img_size=256, pretrained_cfg_overlay=dict(file=str(path)))
    stride = model.patch_embed.stride[0]
    old, new = (224 - 16) // stride + 1, (256 - 16) // stride + 1
    assert model.patch_embed.grid_size == (new, new)
    # independent reference: split the middle class token, bicubic over the grid, put it back in the middle
    pe = sd["pos_embed"]
    mid_old, mid_new = old * old // 2, new * new // 2
    patches = torch.cat([pe[:, :mid_old], pe[:, mid_old + 1:]], dim=1)
    grid = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    flat = grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)
    expected = torch.cat([flat[:, :mid_new], pe[:, mid_old:mid_old + 1], flat[:, mid_new:]], dim=1)
    torch.testing.assert_close(model.pos_embed.data, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(model.pos_embed.data[0, mid_new], pe[0, mid_old])
    for k, v in model.state_dict().items():
        if k != "pos_embed":
            assert torch.equal(v, sd[k]), k


def test_stride8_checkpoint_in_stride16_model_warns(tmp_path, caplog):
    """A Vim-T+ checkpoint (stride 8, 27x27 grid) loads into the stride-16 Vim-T at its pretrained
    224x224 size only with a warning naming both grids and the likely stride mismatch."""
    _, path = _make_checkpoint("vim_tiny_patch16_stride8_224", tmp_path, "pth", seed=5)
    with caplog.at_level(logging.WARNING, logger="vision_ssm.models.vim"):
        model = timm.create_model("vim_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert model.patch_embed.grid_size == (14, 14)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("27x27" in m and "14x14" in m and "pretrained input size 224x224" in m and "stride 8" in m
               and "stride 16" in m for m in messages), messages


def test_pos_embed_resampling_warns_naming_grids(tmp_path, caplog):
    """At another img_size the resampling is expected: a warning names the grids, no stride claim."""
    _, path = _make_checkpoint("vim_tiny_patch16_224", tmp_path, "pth", seed=6)
    with caplog.at_level(logging.WARNING, logger="vision_ssm.models.vim"):
        timm.create_model("vim_tiny_patch16_224", pretrained=True, img_size=256,
                          pretrained_cfg_overlay=dict(file=str(path)))
    messages = [r.getMessage() for r in caplog.records if "pos_embed" in r.getMessage()]
    assert len(messages) == 1 and "14x14" in messages[0] and "16x16" in messages[0]
    assert "stride" not in messages[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vision_ssm.models.vim"):  # same grid: nothing to say
        timm.create_model("vim_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert not [r for r in caplog.records if "pos_embed" in r.getMessage()]


def test_class_token_checkpoint_into_model_without_one(tmp_path, caplog):
    """class_token=False (official Vim segmentation): the checkpoint's class token and its middle
    pos_embed slot are dropped, with a warning; every other weight loads unchanged."""
    sd, path = _make_checkpoint("vim_tiny_patch16_224", tmp_path, "pth", seed=7)
    with caplog.at_level(logging.WARNING, logger="vision_ssm.models.vim"):
        model = timm.create_model("vim_tiny_patch16_224", pretrained=True, class_token=False, global_pool="avg",
                                  pretrained_cfg_overlay=dict(file=str(path)))
    assert model.cls_token is None
    pe = sd["pos_embed"]  # (1, 197, C): the class token at index 196 // 2 = 98
    torch.testing.assert_close(model.pos_embed.data, torch.cat([pe[:, :98], pe[:, 99:]], dim=1), rtol=0, atol=0)
    assert any("class token" in r.getMessage() and "class_token=False" in r.getMessage() for r in caplog.records)
    for k, v in model.state_dict().items():
        if k not in ("pos_embed", "head.weight", "head.bias"):
            assert torch.equal(v, sd[k]), k


def test_ema_weights_head_reset_and_strictness(tmp_path):
    model = VisionMamba(img_size=32, **TINY, num_classes=10)
    sd = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    ema = {k: torch.randn_like(v) for k, v in sd.items()}
    path = tmp_path / "ckpt.pth"
    torch.save(training_dict(sd, ema), path)
    kw = dict(img_size=32, **TINY, num_classes=10, pretrained_cfg_overlay=dict(file=str(path)))
    m = timm.create_model("vim_tiny_patch16_224", pretrained=True, **kw)
    assert torch.equal(m.layers[1].mixer.A_b_log, sd["layers.1.mixer.A_b_log"])
    m = timm.create_model("vim_tiny_patch16_224", pretrained=True, pretrained_use_ema=True, **kw)
    assert torch.equal(m.layers[1].mixer.A_b_log, ema["layers.1.mixer.A_b_log"])
    # another num_classes: the head is dropped (timm's behaviour), the rest loads
    kw["num_classes"] = 3
    m = timm.create_model("vim_tiny_patch16_224", pretrained=True, **kw)
    assert m.head.weight.shape == (3, 16) and torch.equal(m.norm_f.weight, sd["norm_f.weight"])
    # a checkpoint for another architecture is refused, naming the keys
    with pytest.raises(RuntimeError, match="A_2_log"):
        kw["num_classes"] = 10
        timm.create_model("vim_tiny_patch16_224", pretrained=True, scan="cross", **kw)


def test_in_memory_training_dict_loads_like_a_file():
    """pretrained_cfg_overlay=dict(state_dict=...) with a training dict: unwrapped and loaded strictly,
    also with another num_classes and for features_only (loaded before timm's feature wrapper)."""
    src = VisionMamba(img_size=32, **TINY, num_classes=10).eval()
    sd = src.state_dict()
    kw = dict(img_size=32, **TINY, pretrained=True, pretrained_cfg_overlay=dict(state_dict=training_dict(sd)))
    model = timm.create_model("vim_tiny_patch16_224", num_classes=10, **kw)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    backbone = timm.create_model("vim_tiny_patch16_224", features_only=True, **kw).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(backbone(x), src.forward_intermediates(x, indices=2, intermediates_only=True)):
            torch.testing.assert_close(a, b)
    incomplete = training_dict({k: v for k, v in sd.items() if k != "norm_f.weight"})
    with pytest.raises(PretrainedLoadError, match=r"1 missing keys: norm_f\.weight"):
        timm.create_model("vim_tiny_patch16_224", num_classes=5, **dict(kw, pretrained_cfg_overlay=dict(
            state_dict=incomplete)))
    assert set(checkpoint_filter_fn(training_dict(sd), src)) == set(sd)  # the filter unwraps it too


def test_non_square_checkpoint_grid(tmp_path):
    """A checkpoint's grid: the one fitting the model's aspect ratio, else given by pretrained_model_args."""
    src = VisionMamba(img_size=(64, 96), **TINY, num_classes=10)  # 4x6 grid, 24 patches
    path = tmp_path / "wide.pth"
    torch.save({"model": src.state_dict()}, path)
    name = "vim_tiny_patch16_224"
    kw = dict(pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(file=str(path)), **TINY)

    def expected(grid):
        return resample_pos_embed_mid_cls(src.pos_embed.data, grid, old_size=(4, 6))

    # the 2:3 model: 24 patches fit its aspect ratio in one way only, 4x6
    torch.testing.assert_close(timm.create_model(name, img_size=(96, 144), **kw).pos_embed.data, expected((6, 9)))
    # the square model: no square grid of 24 patches; the error says how to give the size, and that works
    with pytest.raises(ValueError, match=r"24 patch entries.*pretrained_model_args=dict\(img_size=\(H, W\)\)"):
        timm.create_model(name, img_size=96, **kw)
    model = timm.create_model(name, img_size=96, pretrained_model_args=dict(img_size=(64, 96)), **kw)
    torch.testing.assert_close(model.pos_embed.data, expected((6, 6)))
    direct = VisionMamba(img_size=96, **TINY, num_classes=10)
    direct.pretrained_model_args = dict(img_size=(64, 96))
    direct.load_pretrained(str(path))
    torch.testing.assert_close(direct.pos_embed.data, expected((6, 6)))
    # the same number of patches on another grid (6x4) is resampled when the source grid is known
    model = timm.create_model(name, img_size=(96, 64), pretrained_model_args=dict(img_size=(64, 96)), **kw)
    torch.testing.assert_close(model.pos_embed.data, expected((6, 4)))
    with pytest.raises(ValueError, match=r"pretrained_model_args img_size=80 gives a 5x5 patch grid"):
        timm.create_model(name, img_size=96, pretrained_model_args=dict(img_size=80), **kw)


def test_pretrained_cfgs_point_at_the_hub():
    expected = {
        "vim_tiny_patch16_224": ("hustvl/Vim-tiny-midclstok", "vim_t_midclstok_76p1acc.pth"),
        "vim_tiny_patch16_stride8_224": ("hustvl/Vim-tiny-midclstok", "vim_t_midclstok_ft_78p3acc.pth"),
        "vim_small_patch16_224": ("hustvl/Vim-small-midclstok", "vim_s_midclstok_80p5acc.pth"),
        "vim_small_patch16_stride8_224": ("hustvl/Vim-small-midclstok", "vim_s_midclstok_ft_81p6acc.pth"),
        "vim_base_patch16_224": ("hustvl/Vim-base-midclstok", "vim_b_midclstok_81p9acc.pth"),
    }
    for short, (repo, filename) in expected.items():
        cfg = timm.models.get_pretrained_cfg(f"{short}.hustvl_in1k")
        assert (cfg.hf_hub_id, cfg.hf_hub_filename) == (repo, filename)
        assert not cfg.custom_load and cfg.first_conv == "patch_embed.proj" and cfg.classifier == "head"
        # the official long name is timm's deprecation alias of the short one: same cfg, a warning
        with pytest.warns(UserWarning, match=short):
            alias = timm.create_model(vim_mod.OFFICIAL_NAMES[short], device="meta")
        assert (alias.pretrained_cfg["hf_hub_id"], alias.pretrained_cfg["hf_hub_filename"]) == (repo, filename)
    listed = timm.list_models("vim_*", pretrained=True)
    assert {f"{name}.hustvl_in1k" for name in expected} <= set(listed)
    assert all(timm.is_model_pretrained(name) for name in expected)


# ------------------------------------------------------------------------------------------ timm API
@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_name_builds_and_trains(name):
    model = timm.create_model(name, img_size=48, num_classes=4, drop_path_rate=0.1, **TINY)
    x = torch.randn(2, 3, 48, 48)
    out = model(x)
    assert out.shape == (2, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    stride = 8 if "stride8" in name else 16
    grid = (48 - 16) // stride + 1
    assert model.forward_features(x).shape == (2, grid * grid + 1, 16)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 16)


@pytest.mark.parametrize("name,grid", [("vim_tiny_patch16_224", 4), ("vim_small_patch16_stride8_224", 7)])
def test_features_only(name, grid):
    model = timm.create_model(name, features_only=True, out_indices=(0, 2), img_size=64, embed_dim=16, depth=3,
                              d_state=4)
    feats = model(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 16, grid, grid)] * 2
    assert model.feature_info.channels() == [16, 16]
    assert model.feature_info.reduction() == [16 if grid == 4 else 8] * 2
    default = timm.create_model(name, features_only=True, img_size=64, embed_dim=16, depth=4, d_state=4)
    assert len(default(torch.randn(1, 3, 64, 64))) == 3  # last 3 blocks, like timm's ViT


def test_feature_cfg_merges_with_the_defaults():
    kw = dict(features_only=True, img_size=64, embed_dim=16, depth=4, d_state=4)
    model = timm.create_model("vim_tiny_patch16_224", feature_cfg=dict(out_indices=(0, 1)), **kw).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model(x)
        expected = model.model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert len(feats) == 2 and all(torch.equal(a, b) for a, b in zip(feats, expected))
    assert len(timm.create_model("vim_tiny_patch16_224", **kw)(x)) == 3  # the default: the last 3 blocks


def test_merge_strategy_through_timm_and_directly():
    """merge="strategy" (or None when constructing directly) takes the scan strategy's own merge."""
    strategy_merge = scans.get_scan("bidirectional").merge
    assert strategy_merge != "mean"  # else this test could not tell the two apart
    models = [timm.create_model("vim_tiny_patch16_224", img_size=32, merge="strategy", **TINY),
              VisionMamba(img_size=32, merge="strategy", **TINY), VisionMamba(img_size=32, merge=None, **TINY)]
    assert all(block.mixer.merge == strategy_merge for m in models for block in m.layers)
    assert timm.create_model("vim_tiny_patch16_224", img_size=32, **TINY).layers[0].mixer.merge == "mean"
    with pytest.raises(ValueError, match=r"merge must be one of \('mean', 'sum', 'strategy', None\), got 'avg'"):
        VisionMamba(img_size=32, merge="avg", **TINY)


def test_unknown_scan_backend_fails_at_construction():
    accepted = re.escape(str(("auto",) + tuple(BACKENDS)))
    for build in (lambda: timm.create_model("vim_tiny_patch16_224", img_size=32, scan_backend="tritonn", **TINY),
                  lambda: BiMamba(8, scan_backend="tritonn")):
        with pytest.raises(ValueError, match=f"scan_backend must be one of {accepted}, got 'tritonn'"):
            build()
    model = VisionMamba(img_size=32, **TINY)
    with pytest.raises(ValueError, match="scan_backend must be one of"):
        model.set_scan_backend("tritonn")
    assert all(block.mixer.scan_backend == "auto" for block in model.layers)


def test_forward_intermediates_and_prune():
    torch.manual_seed(0)
    model = VisionMamba(img_size=64, embed_dim=16, depth=3, d_state=4, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    final, inter = model.forward_intermediates(x)
    assert len(inter) == 3 and inter[0].shape == (2, 16, 4, 4)
    torch.testing.assert_close(final, model.forward_features(x))
    torch.testing.assert_close(model.forward_head(final), model(x))
    # the last intermediate, normalised, is the final map without the class token
    last = model.forward_intermediates(x, indices=[-1], norm=True, output_fmt="NLC", intermediates_only=True)[0]
    torch.testing.assert_close(last, torch.cat([final[:, :8], final[:, 9:]], dim=1))
    pairs = model.forward_intermediates(x, indices=1, return_prefix_tokens=True, intermediates_only=True)
    assert pairs[0][0].shape == (2, 16, 4, 4) and pairs[0][1].shape == (2, 1, 16)
    early = model.forward_intermediates(x, indices=[0], stop_early=True, intermediates_only=True)
    torch.testing.assert_close(early[0], inter[0])
    assert model.prune_intermediate_layers([1]) == [1]
    assert len(model.layers) == 2 and isinstance(model.head, torch.nn.Identity)
    torch.testing.assert_close(model.forward_intermediates(x, intermediates_only=True)[1], inter[1])


def test_mixer_intermediates_are_the_stream_increments():
    """intermediate_type='mixer': what block i adds to the residual stream, i.e. the difference of the
    streams after blocks i and i - 1 (the embedded tokens before block 0), also under checkpointing."""
    torch.manual_seed(0)
    model = VisionMamba(img_size=64, embed_dim=16, depth=3, d_state=4, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        streams = model.forward_intermediates(x, intermediates_only=True)
        embedded = model._split_tokens(model._embed(x)[0])[0].transpose(1, 2).reshape(2, 16, 4, 4)
        before = [embedded] + streams[:-1]
        mixers = model.forward_intermediates(x, intermediates_only=True, intermediate_type="mixer")
    model.set_grad_checkpointing(True)  # takes effect with gradients on
    checkpointed = model.forward_intermediates(x, intermediates_only=True, intermediate_type="mixer")
    sum(f.sum() for f in checkpointed).backward()
    assert model.layers[0].mixer.in_proj.weight.grad is not None
    for i in range(3):
        torch.testing.assert_close(mixers[i], streams[i] - before[i], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(checkpointed[i].detach(), mixers[i])
    with pytest.raises(ValueError, match="intermediate_type must be one of"):
        model.forward_intermediates(x, intermediate_type="residual")


def test_rotary_embedding_turns_each_channel_pair_by_its_grid_angle():
    """Scalar reference from the official formula (EVA-02 VisionRotaryEmbeddingFast, dim = C / 2): pair p
    of the first half turns by (i * pt / H0) * f_p, of the second half by (j * pt / W0) * f_p, with
    f_p = 10000 ** (-2p / (C / 2)) and H0 x W0 the model's grid; an input grid of another size (here
    smaller in one axis, larger in the other) continues the same position steps."""
    from vision_ssm.layers.rope import RotaryEmbedding2d
    C, H, W, H0, W0, pt = 16, 3, 5, 4, 4, 14
    rope = RotaryEmbedding2d(C, (H0, W0), pretrain_grid=pt)
    x = torch.randn(2, H * W, C, dtype=torch.float64)
    out = rope(x, (H, W))
    expected = torch.empty_like(x)
    for i in range(H):
        for j in range(W):
            token = i * W + j
            for c in range(0, C, 2):
                half, p = divmod(c, C // 2)
                position = (i / H0 if half == 0 else j / W0) * pt
                angle = position * 10000 ** (-(p // 2 * 2) / (C // 2))
                a, b = x[:, token, c], x[:, token, c + 1]
                expected[:, token, c] = a * math.cos(angle) - b * math.sin(angle)
                expected[:, token, c + 1] = b * math.cos(angle) + a * math.sin(angle)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"x must be \(B, 3\*5, 16\)"):
        rope(x[:, :-1], (H, W))
    with pytest.raises(ValueError, match="multiple of 4"):
        RotaryEmbedding2d(18, (4, 4))


def test_rope_turns_the_stream_before_every_block():
    """rope=True (official seg / det backbones, if_rope_residual=True): the residual stream is turned
    before each block; it needs class_token=False and works at any input size."""
    from vision_ssm.layers.rope import RotaryEmbedding2d
    with pytest.raises(ValueError, match="rope=True needs class_token=False"):
        VisionMamba(img_size=64, embed_dim=16, depth=2, d_state=4, rope=True)
    torch.manual_seed(0)
    kw = dict(img_size=64, embed_dim=16, depth=2, d_state=4, class_token=False, global_pool="avg", num_classes=0)
    model = VisionMamba(**kw, rope=True).eval()
    plain = VisionMamba(**kw).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    rope = RotaryEmbedding2d(16, (4, 4), pretrain_grid=14)
    with torch.no_grad():
        stream, _ = plain._embed(x)
        for block in plain.layers:
            stream = block(rope(stream, (4, 4)), plain.scan_orders(4, 4))
        torch.testing.assert_close(model.forward_features(x), plain.norm_f(stream))
        assert not torch.allclose(model.forward_features(x), plain.forward_features(x))
    dynamic = VisionMamba(**kw, rope=True, dynamic_img_size=True)
    assert dynamic.forward_features(torch.randn(1, 3, 96, 80)).shape == (1, 30, 16)
    with torch.inference_mode():  # tables first built here still serve a training forward
        model(x)
    model.train()(x).sum().backward()


def _official_rope_tables(C, grid, pt=14):
    """EVA-02 VisionRotaryEmbeddingFast(dim=C/2, pt_seq_len=pt, ft_seq_len=grid) buffers, float32 as official."""
    half = C // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    t = torch.arange(grid) / grid * pt
    f = (t[:, None] * freqs).repeat_interleave(2, dim=-1)  # (grid, half)
    table = torch.cat([f[:, None, :].expand(grid, grid, half), f[None, :, :].expand(grid, grid, half)], dim=-1)
    return table.cos().reshape(-1, C), table.sin().reshape(-1, C)


def test_official_rope_tables_are_checked_and_left_out(caplog):
    kw = dict(img_size=64, embed_dim=16, depth=1, d_state=4, class_token=False, global_pool="avg")
    model = VisionMamba(**kw, rope=True)
    cos, sin = _official_rope_tables(16, 4)
    sd = dict(model.state_dict(), **{"rope.freqs_cos": cos, "rope.freqs_sin": sin})
    with caplog.at_level(logging.WARNING, logger="vision_ssm.models.vim"):
        out = checkpoint_filter_fn(sd, model)
    assert "rope.freqs_cos" not in out and "rope.freqs_sin" not in out and not caplog.records
    with caplog.at_level(logging.WARNING, logger="vision_ssm.models.vim"):
        checkpoint_filter_fn(dict(sd, **{"rope.freqs_sin": -sin}), model)
    assert any("rope.freqs_sin" in r.getMessage() and "differs" in r.getMessage() for r in caplog.records)
    plain = VisionMamba(**kw)  # without rope=True the tables stay, for the loader to report
    assert "rope.freqs_cos" in checkpoint_filter_fn(sd, plain)


def test_timm_training_helpers():
    model = timm.create_model("vim_tiny_patch16_224", img_size=32, **TINY, num_classes=5)
    nwd = model.no_weight_decay()
    assert {"pos_embed", "cls_token", "layers.0.mixer.A_log", "layers.0.mixer.A_b_log", "layers.1.mixer.D",
            "layers.1.mixer.D_b"} <= nwd
    groups = timm.optim.param_groups_weight_decay(model, 0.05, no_weight_decay_list=nwd)
    no_decay = {id(p) for p in groups[0]["params"]}
    assert id(model.layers[0].mixer.A_log) in no_decay
    layer_groups = timm.models.group_parameters(model, model.group_matcher())
    assert len(layer_groups) == 2 + 2  # stem, 2 blocks, norm_f
    model.reset_classifier(7)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    model.reset_classifier(0, "avg")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 16)
    # gradient checkpointing: same gradients
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, **TINY, num_classes=3)
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for a, p in zip(ref, model.parameters()):
        torch.testing.assert_close(p.grad, a)


def test_init_like_official():
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, embed_dim=32, depth=4, d_state=4)
    w = model.layers[0].mixer.out_proj.weight
    assert w.abs().max() <= 1 / math.sqrt(64) / math.sqrt(4) + 1e-6  # kaiming_uniform(a=√5) / √depth
    assert 0.01 < model.pos_embed.std() < 0.03 and model.cls_token.abs().max() < 0.1  # trunc_normal_(std=.02)
    assert torch.all(model.head.bias == 0) and torch.all(model.patch_embed.proj.bias == 0)
    assert torch.all(model.layers[2].mixer.dt_proj_b.bias == 0)
    assert F.softplus(model.layers[2].mixer.dt_proj.bias).max() <= 0.1 + 1e-6


# ------------------------------------------------------------------------------------------ sizes and errors
def test_bad_input_sizes():
    model = VisionMamba(img_size=64, **TINY)
    with pytest.raises(ValueError, match="48x48"):
        model(torch.randn(1, 3, 48, 48))
    dyn = VisionMamba(img_size=64, dynamic_img_size=True, **TINY)
    with pytest.raises(ValueError, match="50x64"):
        dyn(torch.randn(1, 3, 50, 64))
    s8 = VisionMamba(img_size=64, stride=8, dynamic_img_size=True, **TINY)
    with pytest.raises(ValueError, match="68x64"):
        s8(torch.randn(1, 3, 68, 64))
    with pytest.raises(ValueError, match="8x8"):
        dyn(torch.randn(1, 3, 8, 8))  # smaller than one patch
    with pytest.raises(ValueError, match="50"):
        VisionMamba(img_size=50, **TINY)
    padded = VisionMamba(img_size=64, dynamic_img_size=True, dynamic_img_pad=True, **TINY)
    assert padded.forward_features(torch.randn(1, 3, 50, 70)).shape == (1, 4 * 5 + 1, 16)
    assert padded.forward_intermediates(torch.randn(1, 3, 50, 70), intermediates_only=True)[0].shape == (1, 16, 4, 5)


def test_img_size_that_does_not_fit_names_the_argument():
    with pytest.raises(ValueError, match=r"^img_size 70x70: height 70 does not fit patches of 16 with stride 16 .*"
                                         r"pass an img_size whose sides fit \(e\.g\. 64 or 80\)"):
        timm.create_model("vim_tiny_patch16_224", img_size=70, **TINY)
    with pytest.raises(ValueError, match=r"^img_size 64x60: width 60 .*\(e\.g\. 56 or 64\)"):
        VisionMamba(img_size=(64, 60), stride=8, **TINY)


def test_dynamic_img_size_matches_model_built_at_that_size():
    torch.manual_seed(0)
    model = VisionMamba(img_size=64, dynamic_img_size=True, **TINY, num_classes=3).eval()
    x = torch.randn(2, 3, 96, 80)
    other = VisionMamba(img_size=(96, 80), **TINY, num_classes=3).eval()
    # a square checkpoint resampled by checkpoint_filter_fn to a non-square grid
    other.load_state_dict(checkpoint_filter_fn(model.state_dict(), other))
    torch.testing.assert_close(model(x), other(x))
    pe = resample_pos_embed_mid_cls(model.pos_embed, (6, 5), old_size=(4, 4))
    torch.testing.assert_close(other.pos_embed, pe)
    assert torch.equal(pe[0, 15], model.pos_embed[0, 8])


def test_bf16_autocast_keeps_residual_fp32():
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, **TINY, num_classes=3).eval()
    dtypes = []
    hooks = [b.register_forward_hook(lambda m, i, o: dtypes.append((i[0].dtype, o.dtype))) for b in model.layers]
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    dtypes.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert dtypes == [(torch.float32, torch.float32)] * 2
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    for h in hooks:
        h.remove()


def test_torch_compile_cpu():
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, embed_dim=16, depth=1, d_state=4, num_classes=3)
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    ref.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager")
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.slow
def test_torch_compile_inductor_cpu():
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, embed_dim=16, depth=1, d_state=4, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length", [1, 3, 9])
def test_causal_depthwise_conv_equals_conv1d(length):
    """The token-major per-direction conv equals nn.Conv1d(padding=W-1) truncated to L, in value and gradient."""
    from vision_ssm.layers.bimamba import causal_depthwise_conv

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, length, 5, generator=g, dtype=torch.float64, requires_grad=True)  # (B, K, L, D)
    w = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = causal_depthwise_conv(x, w, b)
    ref = torch.stack([F.conv1d(x[:, k].transpose(1, 2), w[k].unsqueeze(1), b[k], padding=3, groups=5)[..., :length]
                       for k in range(3)], 1).transpose(-1, -2)
    torch.testing.assert_close(out, ref)
    traced = torch.jit.trace(lambda *a: causal_depthwise_conv(*a), (x, w, b), check_trace=False)  # the FLOP-count path
    torch.testing.assert_close(traced(x, w, b), ref)
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    for got, want in zip(torch.autograd.grad((out * weights).sum(), (x, w, b)),
                         torch.autograd.grad((ref * weights).sum(), (x, w, b))):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("length", [1, 3, 9])
def test_directional_conv_is_the_causal_conv_of_the_flipped_sequence(length):
    """A backward direction's conv in token order equals the causal conv run on the flipped sequence
    and flipped back (official Vim's conv1d_b), in value and gradient; the traced path too."""
    from vision_ssm.layers.bimamba import causal_depthwise_conv, directional_depthwise_conv

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, length, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = directional_depthwise_conv(x, w, b, (False, True))
    ref = torch.stack([causal_depthwise_conv(x[:, :1], w[:1], b[:1])[:, 0],
                       causal_depthwise_conv(x[:, 1:].flip(2), w[1:], b[1:]).flip(2)[:, 0]], 1)
    torch.testing.assert_close(out, ref)
    traced = torch.jit.trace(lambda *a: directional_depthwise_conv(*a, (False, True)), (x, w, b), check_trace=False)
    torch.testing.assert_close(traced(x, w, b), ref)
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    for got, want in zip(torch.autograd.grad((out * weights).sum(), (x, w, b)),
                         torch.autograd.grad((ref * weights).sum(), (x, w, b))):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("merge", ["mean", "sum"])
def test_forward_backward_directions_run_in_token_order(merge, monkeypatch):
    """Official Vim's fwd / bwd orders take the path with no per-direction copies (the scan gates,
    reads through the orders and merges); it computes what the gathering path computes."""
    from vision_ssm.layers import bimamba

    torch.manual_seed(0)
    mixer = bimamba.BiMamba(16, d_state=4, merge=merge, scan_backend="ref").double()
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    assert bimamba.monotone_directions(mixer.default_orders(2, 9)) == (False, True)
    assert bimamba.monotone_directions(torch.stack([torch.randperm(9), torch.arange(9)])) is None
    fast = mixer(x)
    fast_grads = torch.autograd.grad(fast.square().sum(), [x, *mixer.parameters()])
    monkeypatch.setattr(bimamba, "monotone_directions", lambda orders: None)
    slow = mixer(x)
    slow_grads = torch.autograd.grad(slow.square().sum(), [x, *mixer.parameters()])
    torch.testing.assert_close(fast, slow)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b)
