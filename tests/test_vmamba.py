"""VMamba as timm models: published architectures, checkpoints, timm API, SS2D semantics.

References used here are independent of the implementation: the manifests of the official
models (parameter counts, state-dict keys and shapes, constructor kwargs) and, for SS2D, a
re-implementation of VMamba's original computation (explicit CrossScan by flatten / transpose /
flip, einsum projections, one plain selective scan per direction, CrossMerge by the inverse
flips / transposes) in float64.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

import timm
import vision_ssm.models.vmamba as vmamba_module  # registers the models with timm
from vision_ssm.layers.ss2d import SS2D
from vision_ssm.models._builder import PretrainedLoadError
from vision_ssm.models.vmamba import VMamba, checkpoint_filter_fn
from vision_ssm.ops import selective_scan

MANIFESTS = Path("/work/shared/reference/manifests")
MODELS = {  # manifest -> registered timm name
    "vmamba_v0_tiny": "vanilla_vmamba_tiny",
    "vmamba_v0_small": "vanilla_vmamba_small",
    "vmamba_v0_base": "vanilla_vmamba_base",
    "vmamba_v2_tiny_s1l8": "vmamba_tiny_s1l8",
    "vmamba_v2_small_s1l20": "vmamba_small_s1l20",
    "vmamba_v2_base_s1l20": "vmamba_base_s1l20",
    "vmamba_v2_tiny_s2l5": "vmamba_tiny_s2l5",
    "vmamba_v2_small_s2l15": "vmamba_small_s2l15",
    "vmamba_v2_base_s2l15": "vmamba_base_s2l15",
}
SMALL = dict(dims=16, depths=(1, 1, 2, 1))  # tiny overrides for behaviour tests
V0, V2 = "vanilla_vmamba_tiny", "vmamba_tiny_s1l8"


def _manifest(name):
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"manifest {path} not available")
    return json.loads(path.read_text())


def _slow_unless(manifest, fast):
    marks = () if manifest in fast else (pytest.mark.slow,)
    return pytest.param(manifest, MODELS[manifest], marks=marks, id=MODELS[manifest])


ALL = [pytest.param(m, n, id=n) for m, n in MODELS.items()]
# fvcore traces a full model at 224x224 (~20-60 s each on one core): one in the default run
FLOPS = [_slow_unless(m, fast=("vmamba_v2_tiny_s1l8",)) for m in MODELS]


def _small(name, **kw):
    torch.manual_seed(0)
    return timm.create_model(name, **{**SMALL, "num_classes": 10, **kw})


# ----------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("manifest,name", ALL)
def test_published_architecture_matches_manifest(manifest, name, monkeypatch):
    m = _manifest(manifest)
    with torch.device("meta"):
        model = timm.create_model(name)
        from_kwargs = VMamba(**m["kwargs"])
    assert sum(p.numel() for p in model.parameters()) == m["num_params"]
    assert sum(p.numel() for p in from_kwargs.parameters()) == m["num_params"]
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == m["state_dict"]  # identical official key names and shapes

    captured = {}
    monkeypatch.setattr(vmamba_module, "build_ssm_model",
                        lambda cls, variant, pretrained, **kw: captured.update(kw))
    getattr(vmamba_module, name)()
    for key, value in m["kwargs"].items():
        if key in captured:
            got = list(captured[key]) if isinstance(captured[key], tuple) else captured[key]
            assert got == value, (key, got, value)


# ----------------------------------------------------------------------------- checkpoints
def _manifest_state_dict(m):
    """Distinct values in every tensor (a permutation or transpose would be caught)."""
    sd = {}
    for i, (key, shape) in enumerate(m["state_dict"].items()):
        n = 1
        for s in shape:
            n *= s
        sd[key] = (torch.arange(n, dtype=torch.float32) * 1e-6 + i).reshape(shape)
    return sd


def _assert_equal_weights(model, sd):
    msd = model.state_dict()
    assert set(msd) == set(sd)
    for k, v in sd.items():
        assert torch.equal(msd[k], v), k


@pytest.mark.parametrize("manifest,name", ALL)
def test_official_checkpoint_loads_exactly(manifest, name, tmp_path, caplog):
    m = _manifest(manifest)
    sd = _manifest_state_dict(m)
    pth = tmp_path / "ckpt.pth"
    torch.save({"model": sd, "epoch": 1, "args": argparse.Namespace(model=name, lr=1e-3)}, pth)
    paths = [pth]
    if "tiny" in manifest:
        st = tmp_path / "ckpt.safetensors"
        save_file(sd, str(st))
        paths.append(st)
    for path in paths:
        with caplog.at_level(logging.WARNING):
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        assert "missing" not in caplog.text and "unexpected" not in caplog.text
        _assert_equal_weights(model, sd)
        del model


def _to_legacy_v0(sd):
    """The key names of the original #v0cls training code (PatchEmbed2D, VSSBlock.ln_1 /
    self_attention, top-level norm / head), saved from DDP (``module.`` prefix)."""
    out = {}
    for k, v in sd.items():
        k = k.replace("patch_embed.0.", "patch_embed.proj.").replace("patch_embed.2.", "patch_embed.norm.")
        k = k.replace(".op.", ".self_attention.")
        if ".blocks." in k and ".norm." in k and ".self_attention." not in k:
            k = k.replace(".norm.", ".ln_1.")
        k = k.replace("classifier.norm.", "norm.").replace("classifier.head.", "head.")
        out["module." + k] = v
    return out


def test_legacy_v0_checkpoint_loads(tmp_path):
    m = _manifest("vmamba_v0_tiny")
    sd = _manifest_state_dict(m)
    legacy = _to_legacy_v0(sd)
    assert "module.layers.0.blocks.0.ln_1.weight" in legacy
    assert "module.layers.0.blocks.0.self_attention.x_proj_weight" in legacy
    assert "module.layers.0.blocks.0.self_attention.out_norm.weight" in legacy
    assert "module.norm.weight" in legacy and "module.head.weight" in legacy
    path = tmp_path / "vssmtiny_dp01_ckpt_epoch_292.pth"
    torch.save({"model": legacy, "epoch": 292, "args": argparse.Namespace(lr=1e-3)}, path)
    model = timm.create_model(V0, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    _assert_equal_weights(model, sd)


def test_single_file_v0_downsample_layout_converts():
    model = _small(V0)
    sd = model.state_dict()
    renamed = {k.replace("downsample.norm.", "downsample.1.").replace("downsample.reduction.", "downsample.2."): v
               for k, v in sd.items()}
    assert any(".downsample.2.weight" in k for k in renamed)
    converted = checkpoint_filter_fn(renamed, model)
    assert set(converted) == set(sd) and all(torch.equal(converted[k], sd[k]) for k in sd)


def test_head_mismatch_dropped_and_reported(tmp_path, caplog):
    model = _small(V2)
    path = tmp_path / "small.pth"
    torch.save({"model": model.state_dict()}, path)
    with caplog.at_level(logging.WARNING):
        other = timm.create_model(V2, **SMALL, num_classes=7, pretrained=True,
                                  pretrained_cfg_overlay=dict(file=str(path)))
    assert "classifier.head.weight" in caplog.text
    assert torch.equal(other.layers[2].blocks[1].op.A_logs, model.layers[2].blocks[1].op.A_logs)


def test_in_memory_training_dict_loads_strictly():
    """pretrained_cfg_overlay=dict(state_dict=...) goes through the strict loader like file=: a missing
    key is an error also when num_classes differs from the default 1000."""
    source = _small(V2)
    sd = source.state_dict()
    training = {"model": sd, "args": argparse.Namespace(lr=1e-3), "epoch": 3}
    model = timm.create_model(V2, **SMALL, num_classes=10, pretrained=True,
                              pretrained_cfg_overlay=dict(state_dict=training))
    _assert_equal_weights(model, sd)
    incomplete = {k: v for k, v in sd.items() if k != "layers.1.blocks.0.op.Ds"}
    missing = r"in-memory checkpoint: 1 missing keys: layers\.1\.blocks\.0\.op\.Ds\b"
    with pytest.raises(PretrainedLoadError, match=missing):
        timm.create_model(V2, **SMALL, num_classes=10, pretrained=True,
                          pretrained_cfg_overlay=dict(state_dict={"model": incomplete}))


def test_foreign_pickled_class_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("never",))

    path = tmp_path / "evil.pth"
    torch.save({"model": _small(V2).state_dict(), "x": Payload()}, path)
    with pytest.raises(RuntimeError, match="refusing"):
        timm.create_model(V2, **SMALL, num_classes=10, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_wrong_architecture_fails_clearly(tmp_path):
    path = tmp_path / "v2.pth"
    torch.save({"model": _small(V2).state_dict()}, path)
    with pytest.raises(PretrainedLoadError) as err:
        timm.create_model(V0, **SMALL, num_classes=10, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    msg = str(err.value)
    assert "missing keys" in msg and "unexpected keys" in msg and "mismatched shapes" in msg
    assert "patch_embed.0.weight (checkpoint (8, 3, 3, 3) vs model (16, 3, 4, 4))" in msg
    assert "layers.0.blocks.0.op.in_proj.weight" in msg  # v0's gated in_proj: (64, 16) vs (16, 16)
    assert "patch_embed.5.weight" in msg  # a v2 stem key the v0 model does not have


def test_pretrained_cfgs_have_release_urls():
    for name in MODELS.values():
        cfg = timm.models.get_pretrained_cfg(f"{name}.in1k")
        assert cfg.url.startswith("https://github.com/MzeroMiko/VMamba/releases/download/%23v")
        assert not cfg.custom_load and cfg.classifier == "classifier.head" and cfg.first_conv == "patch_embed.0"
    assert timm.models.get_pretrained_cfg("vmamba_tiny_s1l8.in1k").url.endswith(
        "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth")
    assert timm.models.get_pretrained_cfg("vanilla_vmamba_tiny.in1k").url.endswith(
        "%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth")


def test_pretrained_true_fetches_release_url(tmp_path, monkeypatch):
    import timm.models._builder as timm_builder
    source = _small(V2)
    path = tmp_path / "vssm1_tiny_0230s_ckpt_epoch_264.pth"
    torch.save({"model": source.state_dict(), "args": argparse.Namespace(lr=1e-3)}, path)
    urls = []
    monkeypatch.setattr(timm_builder, "download_cached_file", lambda url, **kw: urls.append(url) or str(path))
    model = timm.create_model(V2, **SMALL, num_classes=10, pretrained=True)
    assert urls == ["https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth"]
    _assert_equal_weights(model, source.state_dict())


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("name", list(MODELS.values()))
def test_every_model_forward_backward(name):
    model = _small(name)
    x = torch.randn(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", [V0, V2])
def test_full_size_tiny_forward(name):
    model = timm.create_model(name).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 64))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", [V0, V2])
def test_features_only(name):
    model = timm.create_model(name, **SMALL, features_only=True, out_indices=(0, 1, 2, 3))
    feats = model(torch.randn(2, 3, 64, 96))
    assert model.feature_info.channels() == [16, 32, 64, 128]
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    for f, c, r in zip(feats, model.feature_info.channels(), model.feature_info.reduction()):
        assert f.shape == (2, c, 64 // r, 96 // r)
    partial = timm.create_model(name, **SMALL, features_only=True, out_indices=(1, 2))
    assert [f.shape[1] for f in partial(torch.randn(1, 3, 64, 64))] == [32, 64]
    assert len(partial.model.layers) == 3  # pruned after stage 2


def test_features_only_pretrained(tmp_path):
    source = _small(V2).eval()
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    backbone = timm.create_model(V2, **SMALL, num_classes=10, features_only=True, pretrained=True,
                                 pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(backbone(x), source.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(a, b)


def test_scan_strategy_sets_direction_count():
    cross = _small(V2, scan="cross")
    bidi = _small(V2, scan="bidirectional")
    for model, K in ((cross, 4), (bidi, 2)):
        op = model.layers[0].blocks[0].op
        D, N = op.d_inner, op.d_state
        assert op.x_proj_weight.shape == (K, op.dt_rank + 2 * N, D)
        assert op.dt_projs_weight.shape == (K, D, op.dt_rank)
        assert op.dt_projs_bias.shape == (K, D)
        assert op.A_logs.shape == (K * D, N) and op.Ds.shape == (K * D,)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert _small(V0, scan=("local", dict(window=2))).layers[0].blocks[0].op.num_directions >= 1


def test_non_multiple_input_is_padded_not_cropped():
    model = _small(V0).eval()
    x = torch.randn(1, 3, 70, 50)
    with torch.no_grad():
        y = model(x)
        # v1 patch embedding: zero padding to a multiple of 4 is explicit, so 70x50 == padded 72x52
        torch.testing.assert_close(y, model(F.pad(x, (0, 2, 0, 2))), rtol=1e-5, atol=1e-6)
        x2 = x.clone()
        x2[..., -1, :] += 1.0  # the last row and column must reach the output
        x3 = x.clone()
        x3[..., :, -1] += 1.0
        assert not torch.allclose(model(x2), y) and not torch.allclose(model(x3), y)
        feats = model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(f.shape[-2:]) for f in feats] == [(18, 13), (9, 7), (5, 4), (3, 2)]
    v2 = _small(V2).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 70, 50)
        feats = v2.forward_intermediates(x, intermediates_only=True)
        x2 = x.clone()
        x2[..., -1, -1] += 1.0
        assert not torch.allclose(v2(x2), v2(x))
    assert [tuple(f.shape[-2:]) for f in feats] == [(18, 13), (9, 7), (5, 4), (3, 2)]


@pytest.mark.parametrize("name", [V0, V2])
def test_pos_embed_is_on_the_padded_patch_grid(name, tmp_path):
    """The patch embedding pads 66 to 68: the position embedding is on its 17x17 grid, so a checkpoint
    at that size loads unchanged."""
    model = _small(name, posembed=True, img_size=66).eval()
    grid = model.patch_embed(torch.zeros(1, 3, 66, 66)).shape
    assert model.pos_embed.shape[-2:] == (17, 17) == (grid[-2:] if model.channel_first else grid[1:3])
    assert _small(name, posembed=True).pos_embed.shape[-2:] == (56, 56)  # the official 224 // 4
    path = tmp_path / "posembed.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = timm.create_model(name, **SMALL, num_classes=10, posembed=True, img_size=66, pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(loaded.pos_embed, model.pos_embed)


def test_unknown_scan_backend_fails_at_construction():
    with pytest.raises(ValueError, match=r"scan_backend must be one of \('auto', .*\), got 'tritonn'"):
        _small(V2, scan_backend="tritonn")
    with pytest.raises(ValueError, match="scan_backend must be one of"):
        SS2D(d_model=8, scan_backend="tritonn")


def test_too_small_input_errors_clearly():
    model = _small(V2)
    with pytest.raises(ValueError, match=r"input 16x64 is too small.*>= 32"):
        model(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match="img_size 16x16 is too small"):
        timm.create_model(V2, **SMALL, img_size=16)
    assert timm.create_model(V2, **SMALL, img_size=(32, 48)) is not None


# ----------------------------------------------------------------------------- SS2D semantics
def _reference_ss2d(op: SS2D, x: torch.Tensor) -> torch.Tensor:
    """VMamba's original SS2D with explicit CrossScan / CrossMerge and a scan per direction."""
    cf = op.channel_first
    xc = x if cf else x.permute(0, 3, 1, 2)  # (B, C, H, W)
    h = torch.einsum("bchw,oc->bohw", xc, op.in_proj.weight)
    if op.gated:
        h, z = h.chunk(2, dim=1)
        z = F.silu(z)
    h = F.conv2d(h, op.conv2d.weight, op.conv2d.bias, padding=1, groups=h.shape[1])
    h = F.silu(h)
    B, D, H, W = h.shape
    L, K, N, R = H * W, 4, op.d_state, op.dt_rank
    row = h.reshape(B, D, L)
    col = h.transpose(2, 3).reshape(B, D, L)  # column-major flattening
    xs = torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)  # CrossScan (B, 4, D, L)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, op.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, op.dt_projs_weight)
    As = -torch.exp(op.A_logs).view(K, D, N)
    Ds = op.Ds.view(K, D)
    ys = torch.stack([
        selective_scan(xs[:, k].contiguous(), dts[:, k].contiguous(), As[k], Bs[:, k].contiguous(),
                       Cs[:, k].contiguous(), D=Ds[k], delta_bias=op.dt_projs_bias[k],
                       delta_softplus=True, backend="ref")
        for k in range(K)], dim=1)
    # CrossMerge: undo the flips, then the transpose of the column-major directions
    y_row = ys[:, 0] + ys[:, 2].flip(-1)
    y_col = ys[:, 1] + ys[:, 3].flip(-1)
    y = y_row + y_col.reshape(B, D, W, H).transpose(2, 3).reshape(B, D, L)
    y = F.layer_norm(y.transpose(1, 2), (D,), op.out_norm.weight, op.out_norm.bias)  # (B, L, D)
    if op.gated:
        y = y * z.flatten(2).transpose(1, 2)
    out = y @ op.out_proj.weight.T  # (B, L, C)
    out = out.reshape(B, H, W, -1)
    return out.permute(0, 3, 1, 2) if cf else out


def _random_ss2d(**kw):
    torch.manual_seed(0)
    op = SS2D(**kw).double()
    with torch.no_grad():
        for name, p in op.named_parameters():
            if name == "A_logs":
                p.copy_(torch.empty_like(p).uniform_(-1.0, 1.0))
            elif name.endswith("weight") and "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return op


@pytest.mark.parametrize("forward_type,channel_first,conv_bias", [("v0", False, True), ("v05_noz", True, False)])
def test_ss2d_matches_original_cross_scan(forward_type, channel_first, conv_bias):
    op = _random_ss2d(d_model=6, d_state=3, ssm_ratio=2.0, forward_type=forward_type,
                      channel_first=channel_first, conv_bias=conv_bias)
    assert op.num_directions == 4
    shape = (2, 6, 5, 3) if channel_first else (2, 5, 3, 6)  # H != W catches transposes
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    y = op(x)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = _reference_ss2d(op, x_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-10)


def test_ss2d_backends_agree():
    op = _random_ss2d(d_model=6, d_state=2, forward_type="v05_noz", channel_first=True, conv_bias=False)
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    y = op(x)
    op.scan_backend = "ref"
    torch.testing.assert_close(op(x), y, rtol=1e-10, atol=1e-10)
    model = _small(V2, scan_backend="ref")
    assert all(b.op.scan_backend == "ref" for s in model.layers for b in s.blocks)


def test_ssm_init_matches_vmamba():
    op = SS2D(d_model=32, d_state=4, ssm_ratio=2.0, forward_type="v05_noz", channel_first=True)
    dt = F.softplus(op.dt_projs_bias)
    assert dt.min() >= 1e-4 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.min() < 0.01
    assert torch.allclose(op.A_logs, torch.log(torch.arange(1, 5, dtype=torch.float32)).expand(4 * 64, 4))
    assert torch.equal(op.Ds, torch.ones(4 * 64))
    bound = op.dt_rank ** -0.5
    assert op.dt_projs_weight.abs().max() <= bound


# ----------------------------------------------------------------------------- timm API
@pytest.mark.parametrize("name", [V0, V2])
def test_forward_intermediates_and_prune(name):
    model = _small(name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, feats = model.forward_intermediates(x)
        assert [f.shape[1] for f in feats] == [16, 32, 64, 128]
        torch.testing.assert_close(final, model.forward_features(x))
        torch.testing.assert_close(model.forward_head(final), model(x))
        normed = model.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)
        torch.testing.assert_close(normed[0], model.classifier.norm(feats[3]))
        nhwc = model.forward_intermediates(x, indices=2, output_fmt="NHWC", intermediates_only=True)
        torch.testing.assert_close(nhwc[1], feats[3].permute(0, 2, 3, 1))
        early, few = model.forward_intermediates(x, indices=[1], stop_early=True)
        torch.testing.assert_close(few[0], feats[1])
        assert early.shape[1] == 64  # after stage 1's downsample
        pre = model.forward_head(final, pre_logits=True)
        assert pre.shape == (2, 128)
        kept = model.prune_intermediate_layers([0, 1], prune_norm=True)
        assert kept == [0, 1] and len(model.layers) == 2 and isinstance(model.layers[1].downsample, nn.Identity)
        pruned = model.forward_intermediates(x, intermediates_only=True, indices=[0, 1])
        torch.testing.assert_close(pruned[1], feats[1])


def test_reset_classifier_and_pooling():
    model = _small(V2).eval()
    assert model.get_classifier() is model.classifier.head
    model.reset_classifier(5)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 128)
    model.reset_classifier(3, global_pool="max")
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert timm.create_model(V0, **SMALL, num_classes=0, global_pool="").forward_head(
        torch.randn(1, 128, 2, 2), pre_logits=True).shape == (1, 128, 2, 2)


def test_no_weight_decay_lists_ssm_parameters():
    model = _small(V0)
    names = model.no_weight_decay()
    expected = {n for n, _ in model.named_parameters() if n.split(".")[-1] in ("A_logs", "Ds")}
    assert len(expected) == 2 * 5 and expected <= names
    assert "pos_embed" in _small(V2, posembed=True, img_size=64).no_weight_decay()
    from timm.optim import param_groups_weight_decay
    groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    no_decay = {id(p) for p in groups[0]["params"]}
    assert all(id(p) in no_decay for n, p in model.named_parameters() if n in expected)


def test_group_matcher():
    from timm.models import group_parameters
    model = _small(V2)
    fine = group_parameters(model, model.group_matcher())
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    names = {n for n, _ in model.named_parameters()}
    assert set().union(*map(set, fine.values())) == names
    fine_groups = list(fine.values())

    def group_of(prefix):
        found = {i for i, g in enumerate(fine_groups) for n in g if n.startswith(prefix)}
        assert len(found) == 1, (prefix, found)
        return found.pop()

    assert group_of("patch_embed") == 0
    assert group_of("classifier.head") == len(fine_groups) - 1
    # one group per block; a stage's downsample (which ends the stage) joins its last block's
    # group, and the head norm the last block's (timm's MATCH_PREV_GROUP)
    last_blocks = [0, 0, 1, 0]
    blocks = [group_of(f"layers.{i}.blocks.{j}.") for i, d in enumerate((1, 1, 2, 1)) for j in range(d)]
    assert blocks == list(range(1, 6))
    for i in range(3):
        assert group_of(f"layers.{i}.downsample") == group_of(f"layers.{i}.blocks.{last_blocks[i]}.")
    assert group_of("classifier.norm") == group_of("layers.3.blocks.0.")
    assert len(fine_groups) == 1 + 5 + 1
    assert len(coarse) == 1 + 4 + 1  # stem, 4 stages, head


def test_grad_checkpointing_same_outputs_and_grads():
    model = _small(V2).eval()
    x = torch.randn(2, 3, 64, 64)
    y = model(x)
    y.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    assert all(s.grad_checkpointing for s in model.layers)
    y2 = model(x)
    y2.sum().backward()
    torch.testing.assert_close(y2, y)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)


def test_bf16_autocast_and_fp32():
    model = _small(V2).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
    assert torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05
    v0 = _small(V0).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(v0(x)).all()


# ----------------------------------------------------------------------------- FLOPs
@pytest.mark.parametrize("manifest,name", FLOPS)
def test_gflops_match_manifest(manifest, name):
    flops = pytest.importorskip("vision_ssm.flops")
    m = _manifest(manifest)
    model = timm.create_model(name).eval()
    gflops = flops.count_gflops(model, input_size=(3, 224, 224))
    assert abs(gflops - m["gflops_224"]) / m["gflops_224"] < 0.02, (gflops, m["gflops_224"])


# ----------------------------------------------------------------------------- torch.compile
@pytest.mark.slow
@pytest.mark.parametrize("backend,name", [("aot_eager", V2), ("inductor", V0)])
def test_torch_compile_cpu(backend, name):
    """Dynamo + AOTAutograd (forward and backward), and Inductor with static shapes."""
    model = _small(name).eval()
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    if backend == "inductor":
        compiled = torch.compile(model, backend="inductor", dynamic=False)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), ref.detach(), rtol=1e-4, atol=1e-5)
        return
    compiled = torch.compile(model, backend=backend)
    y = compiled(x)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- review fixes
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name,forward_type", [(V0, None), (V0, "v2"), (V2, "v1"), (V2, "v03"), (V2, None)])
def test_low_precision_weights_match_fp32(name, forward_type, dtype):
    """A model cast to bf16 / fp16 (the fp32-scan forward types included) runs in that dtype and
    matches the float32 model with the same weights within the dtype's precision."""
    import copy
    kw = {} if forward_type is None else dict(forward_type=forward_type)
    model = _small(name, **kw).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        low = copy.deepcopy(model).to(dtype)
        y = low(x.to(dtype))
    assert y.dtype == dtype
    tol = 0.03 if dtype == torch.bfloat16 else 0.005  # bf16: 8-bit mantissa, fp16: 11-bit
    assert (y.float() - ref).abs().max() <= tol * ref.abs().max(), (y.float() - ref).abs().max()


def test_catavgmax_head_takes_both_pools():
    model = _small(V2, global_pool="catavgmax").eval()
    assert model.classifier.head.in_features == 2 * 128
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        normed = model.classifier.norm(model.forward_features(x))
        pooled = torch.cat([normed.mean(dim=(2, 3)), normed.amax(dim=(2, 3))], dim=1)  # timm: (avg, max)
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True), pooled)
        torch.testing.assert_close(model(x), F.linear(pooled, model.classifier.head.weight,
                                                      model.classifier.head.bias))
    model.reset_classifier(5)  # keeps catavgmax
    assert model.classifier.head.in_features == 256 and model(x).shape == (2, 5)
    model.reset_classifier(3, global_pool="avg")
    assert model.classifier.head.in_features == 128 and model(x).shape == (2, 3)


def test_no_pooling_with_classes_errors():
    with pytest.raises(ValueError, match="global_pool='' .*num_classes=0"):
        _small(V2, global_pool="")
    model = _small(V2, num_classes=0, global_pool="")
    with pytest.raises(ValueError, match="global_pool=''"):
        model.reset_classifier(5)  # still without pooling
    assert model.num_classes == 0 and isinstance(model.classifier.head, nn.Identity)
    other = _small(V2)
    with pytest.raises(ValueError, match="global_pool=''"):
        other.reset_classifier(5, global_pool="")
    assert other.num_classes == 10 and other(torch.randn(1, 3, 64, 64)).shape == (1, 10)  # unchanged
    model.reset_classifier(5, global_pool="max")
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


@pytest.mark.parametrize("coarse", [True, False])
def test_group_matcher_head_norm_joins_last_stage(coarse):
    from timm.models import group_parameters
    model = _small(V0)
    groups = list(group_parameters(model, model.group_matcher(coarse=coarse)).values())
    names = [n for n, _ in model.named_parameters()]
    flat = [n for g in groups for n in g]
    assert sorted(flat) == sorted(names)  # every parameter in exactly one group
    group = {n: i for i, g in enumerate(groups) for n in g}
    last = "layers.3.blocks.0.op.A_logs"
    assert group["classifier.norm.weight"] == group["classifier.norm.bias"] == group[last]
    assert group["classifier.head.weight"] == len(groups) - 1 != group[last]
    if coarse:
        assert all(group[n] == group[last] for n in names if n.startswith("layers.3."))


def _ss2d_keys(sd, key):
    return sorted(k for k in sd if k.endswith(".op." + key))


def test_checkpoint_of_other_scan_layout_is_reported_not_reshaped(tmp_path):
    """K=4, ssm_ratio=1 tensors hold as many values as K=2, ssm_ratio=2 ones (x_proj_weight
    (4, 3, 16) vs (2, 3, 32)): they are not layouts of each other and must stay mismatched."""
    kw = dict(depths=(1, 1, 1, 1), num_classes=10)
    source = _small(V2, ssm_ratio=1.0, **kw)
    target = _small(V2, ssm_ratio=2.0, scan="bidirectional", **kw)
    sd, tsd = source.state_dict(), target.state_dict()
    key = "layers.0.blocks.0.op.x_proj_weight"
    assert sd[key].shape == (4, 3, 16) and tsd[key].shape == (2, 3, 32)
    converted = checkpoint_filter_fn(sd, target)
    for name in ("x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"):
        for k in _ss2d_keys(sd, name):
            assert converted[k] is sd[k] or torch.equal(converted[k], sd[k]), k
            assert converted[k].shape == sd[k].shape, k
    path = tmp_path / "cross_ratio1.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(PretrainedLoadError) as err:
        timm.create_model(V2, **SMALL | kw, ssm_ratio=2.0, scan="bidirectional", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path)))
    msg = str(err.value)
    assert "layers.0.blocks.0.op.x_proj_weight (checkpoint (4, 3, 16) vs model (2, 3, 32))" in msg
    assert "layers.0.blocks.0.op.dt_projs_bias (checkpoint (4, 16) vs model (2, 32))" in msg


def test_official_flattened_ssm_layouts_convert():
    """(K*C, D, 1) x_proj / (K*D, R, 1) dt_projs conv weights, (K*D,) dt bias, (K, D, N) A_logs and
    (K, D) Ds: each is split / joined along the directions, value for value."""
    model = _small(V2, depths=(1, 1, 1, 1), ssm_d_state=2)
    sd = model.state_dict()
    sd = {k: torch.randn_like(v) for k, v in sd.items()}
    stored = {}
    for k, v in sd.items():
        if k.endswith(("x_proj_weight", "dt_projs_weight")):  # (K, a, b) -> K blocks stacked as rows
            stored[k] = torch.cat([v[i] for i in range(v.shape[0])], dim=0)[..., None]
        elif k.endswith("dt_projs_bias"):
            stored[k] = torch.cat([v[i] for i in range(v.shape[0])])
        elif k.endswith(("A_logs", "Ds")):  # (K*D, ...) -> (K, D, ...)
            stored[k] = torch.stack(v.chunk(4, dim=0))
        else:
            stored[k] = v
    assert stored["layers.0.blocks.0.op.x_proj_weight"].shape == (4 * 5, 16, 1)  # R + 2N = 5, d_inner 16
    assert stored["layers.0.blocks.0.op.A_logs"].shape == (4, 16, 2)
    converted = checkpoint_filter_fn(stored, model)
    assert set(converted) == set(sd)
    for k, v in sd.items():
        assert torch.equal(converted[k], v), k


def test_prune_keeps_model_consistent():
    model = _small(V2).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_intermediates(x, intermediates_only=True)
    model.prune_intermediate_layers([0, 1], prune_norm=False, prune_head=False)
    assert model.feature_info == [dict(num_chs=16, reduction=4, module="layers.0.blocks"),
                                  dict(num_chs=32, reduction=8, module="layers.1.blocks")]
    assert model.num_features == model.head_hidden_size == 32
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        assert [f.shape[1] for f in inter] == [fi["num_chs"] for fi in model.feature_info]
        torch.testing.assert_close(inter[1], feats[1])
        torch.testing.assert_close(final, feats[1])  # the last stage's downsample is gone
        normed = model.forward_intermediates(x, indices=[1], norm=True, intermediates_only=True)[0]
        torch.testing.assert_close(normed, F.layer_norm(feats[1].permute(0, 2, 3, 1), (32,)).permute(0, 3, 1, 2))
        assert model(x).shape == (2, 10)  # a new classifier for the new width
        assert model.forward_head(final, pre_logits=True).shape == (2, 32)

    # timm's defaults (prune_head): no classifier, no pooling; with prune_norm model(x) is the stage map
    v0 = _small(V0).eval()
    with torch.no_grad():
        feats_v0 = v0.forward_intermediates(x, intermediates_only=True)
    v0.prune_intermediate_layers([0, 1], prune_norm=True)
    assert [fi["num_chs"] for fi in v0.feature_info] == [16, 32] and v0.num_features == 32
    with torch.no_grad():
        torch.testing.assert_close(v0(x), feats_v0[1])
        torch.testing.assert_close(v0.forward_intermediates(x, intermediates_only=True)[1], feats_v0[1])


def test_even_ssm_conv_rejected():
    with pytest.raises(ValueError, match="ssm_conv must be odd.*ssm_conv=4"):
        _small(V2, ssm_conv=4)
    with pytest.raises(ValueError, match="d_conv must be odd.*d_conv=2"):
        SS2D(d_model=8, d_conv=2)
    model = _small(V2, ssm_conv=5)
    assert model.layers[0].blocks[0].op.conv2d.padding == (2, 2)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
