"""vision_ssm.models._builder: timm construction with pretrained weights through the safe loader."""
from __future__ import annotations

import argparse
import logging

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

import timm
import timm.models._builder as timm_builder
import timm.models._hub as timm_hub
from vision_ssm.models._builder import (PretrainedLoadError, PretrainedLoaderMixin, build_ssm_model,
                                        load_pretrained_checkpoint, make_cfg)

URL = "https://example.invalid/weights/tiny.pth"


def _legacy_filter(state_dict, model):
    return {k.replace("old_stem.", "stem."): v for k, v in state_dict.items()}


class TinyNet(PretrainedLoaderMixin, nn.Module):
    checkpoint_filter_fn = staticmethod(_legacy_filter)

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 4):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Conv2d(in_chans, width, 3)
        self.body = nn.Linear(width, width)
        self.head = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        return self.head(self.body(self.stem(x).mean((2, 3))))


class PlainNet(nn.Module):  # no mixin: the builder binds load_pretrained
    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Conv2d(in_chans, 4, 3)
        self.head = nn.Linear(4, num_classes)


def _cfg(**kw):
    return make_cfg(url=URL, num_classes=10, first_conv="stem", classifier="head", **kw)


def _state_dict(width=4, num_classes=10, legacy=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {
        "stem.weight": torch.randn(width, 3, 3, 3, generator=g),
        "stem.bias": torch.randn(width, generator=g),
        "body.weight": torch.randn(width, width, generator=g),
        "body.bias": torch.randn(width, generator=g),
        "head.weight": torch.randn(num_classes, width, generator=g),
        "head.bias": torch.randn(num_classes, generator=g),
    }
    if legacy:
        sd = {k.replace("stem.", "old_stem."): v for k, v in sd.items()}
    return sd


def _canonical(sd):
    return {k.replace("old_stem.", "stem."): v for k, v in sd.items()}


def _build(pretrained=True, cls=TinyNet, **kwargs):
    return build_ssm_model(cls, "tinynet", pretrained, pretrained_cfg=_cfg(), **kwargs)


def _assert_loaded(model, sd, skip=()):
    msd = model.state_dict()
    for k, v in _canonical(sd).items():
        if k not in skip:
            assert torch.equal(msd[k], v), k


@pytest.fixture
def training_ckpt(tmp_path):
    sd = {"module." + k: v for k, v in _state_dict().items()}
    path = tmp_path / "train.pth"
    torch.save({"model": sd, "epoch": 3, "args": argparse.Namespace(lr=0.1, model="tiny")}, path)
    return path, _state_dict()


def test_make_cfg_routes_to_custom_loader():
    cfg = make_cfg(url=URL, first_conv="stem", classifier="head")
    assert cfg["custom_load"] and cfg["url"] == URL and "hf_hub_id" not in cfg
    assert cfg["first_conv"] == "stem" and cfg["classifier"] == "head"
    hub = make_cfg(hf_hub_id="org/repo")
    assert hub["custom_load"] == "hf" and hub["hf_hub_filename"] == "model.safetensors"
    assert make_cfg(url=URL, crop_pct=0.9, license="mit")["crop_pct"] == 0.9


def test_file_overlay_pth_training_dict(training_ckpt):
    path, sd = training_ckpt
    model = _build(pretrained_cfg_overlay=dict(file=str(path)))
    _assert_loaded(model, sd)  # module. stripped, legacy names filtered, Namespace allowed


def test_file_overlay_safetensors(tmp_path):
    sd = _state_dict(seed=1)
    path = tmp_path / "w.safetensors"
    save_file(sd, str(path))
    model = _build(pretrained_cfg_overlay=dict(file=str(path)))
    _assert_loaded(model, sd)


def test_url_source_downloads_then_uses_safe_loader(training_ckpt, monkeypatch):
    path, sd = training_ckpt
    seen = []

    def fake_download(url, **kwargs):
        seen.append(url)
        return str(path)

    monkeypatch.setattr(timm_builder, "download_cached_file", fake_download)
    model = _build()
    assert seen == [URL]
    _assert_loaded(model, sd)


def test_hf_hub_source_uses_safe_loader(training_ckpt, monkeypatch):
    path, sd = training_ckpt
    seen = []

    def fake_hub_download(repo_id, filename, revision=None, cache_dir=None, **kw):
        seen.append((repo_id, filename))
        return str(path)

    monkeypatch.setattr(timm_builder, "has_hf_hub", lambda necessary=False: True)
    monkeypatch.setattr(timm_hub, "has_hf_hub", lambda necessary=False: True)
    monkeypatch.setattr(timm_hub, "hf_hub_download", fake_hub_download)
    cfg = make_cfg(hf_hub_id="org/tiny", hf_hub_filename="train.pth", num_classes=10, first_conv="stem",
                   classifier="head")
    # a training dict holding an argparse.Namespace only loads through our allow-list loader
    model = build_ssm_model(TinyNet, "tinynet", True, pretrained_cfg=cfg)
    assert seen == [("org/tiny", "train.pth")]
    _assert_loaded(model, sd)


def test_head_dropped_when_num_classes_changes(training_ckpt, caplog):
    path, sd = training_ckpt
    with caplog.at_level(logging.WARNING):
        model = _build(num_classes=5, pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.weight.shape == (5, 4)
    _assert_loaded(model, sd, skip=("head.weight", "head.bias"))
    assert "head.weight" in caplog.text and "num_classes" in caplog.text
    headless = _build(num_classes=0, pretrained_cfg_overlay=dict(file=str(path)))
    assert isinstance(headless.head, nn.Identity)
    _assert_loaded(headless, sd, skip=("head.weight", "head.bias"))


def test_in_chans_adapts_first_conv(training_ckpt):
    path, sd = training_ckpt
    model = _build(in_chans=1, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.allclose(model.stem.weight, _canonical(sd)["stem.weight"].sum(1, keepdim=True))


def test_strict_error_names_keys_and_non_strict_warns(tmp_path, caplog):
    sd = _canonical(_state_dict())
    sd.pop("body.bias")
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(PretrainedLoadError) as err:
        _build(pretrained_cfg_overlay=dict(file=str(path)))
    assert "body.bias" in str(err.value) and "extra.weight" in str(err.value)
    with caplog.at_level(logging.WARNING):
        model = _build(pretrained_strict=False, pretrained_cfg_overlay=dict(file=str(path)))
    assert "body.bias" in caplog.text and "extra.weight" in caplog.text
    assert torch.equal(model.body.weight, sd["body.weight"])


def test_shape_mismatch_is_named(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save({"model": _state_dict(width=6)}, path)
    with pytest.raises(PretrainedLoadError, match=r"stem\.weight \(checkpoint \(6, 3, 3, 3\) vs model \(4, 3, 3, 3\)\)"):
        _build(pretrained_cfg_overlay=dict(file=str(path)))


class _Foreign:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_foreign_pickled_class_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": _state_dict(), "payload": _Foreign()}, path)
    with pytest.raises(RuntimeError, match="refusing"):
        _build(pretrained_cfg_overlay=dict(file=str(path)))


def test_use_ema(tmp_path):
    path = tmp_path / "ema.pth"
    plain, ema = _state_dict(seed=1), _state_dict(seed=2)
    torch.save({"model": plain, "model_ema": ema}, path)
    _assert_loaded(_build(pretrained_cfg_overlay=dict(file=str(path))), plain)
    _assert_loaded(_build(pretrained_use_ema=True, pretrained_cfg_overlay=dict(file=str(path))), ema)


def test_model_without_mixin_gets_loader(tmp_path):
    sd = {k: v for k, v in _canonical(_state_dict()).items() if k.startswith(("stem", "head"))}
    path = tmp_path / "plain.safetensors"
    save_file(sd, str(path))
    model = build_ssm_model(PlainNet, "plainnet", True, pretrained_cfg=_cfg(),
                            pretrained_cfg_overlay=dict(file=str(path)))
    _assert_loaded(model, sd)


def test_direct_call_and_random_init_without_pretrained(training_ckpt):
    path, sd = training_ckpt
    model = _build(pretrained=False)
    assert not torch.equal(model.body.weight, _canonical(sd)["body.weight"])
    result = load_pretrained_checkpoint(model, path, filter_fn=_legacy_filter)
    assert result["missing"] == [] and result["unexpected"] == []
    _assert_loaded(model, sd)


def test_in_memory_state_dict_goes_through_the_strict_loader():
    """pretrained_cfg_overlay=dict(state_dict=...) behaves like file=: unwrapped, filtered, strict."""
    sd = _state_dict()
    training = {"model": {"module." + k: v for k, v in sd.items()}, "args": argparse.Namespace(lr=0.1), "epoch": 3}
    _assert_loaded(_build(pretrained_cfg_overlay=dict(state_dict=training)), sd)
    # another num_classes: the head is dropped, everything else must still fit
    other = _build(num_classes=5, pretrained_cfg_overlay=dict(state_dict=training))
    _assert_loaded(other, sd, skip=("head.weight", "head.bias"))
    incomplete = {k: v for k, v in sd.items() if k != "body.bias"}
    with pytest.raises(PretrainedLoadError, match=r"in-memory checkpoint: 1 missing keys: body\.bias"):
        _build(num_classes=5, pretrained_cfg_overlay=dict(state_dict=incomplete))
    assert not torch.equal(_build(pretrained=False, pretrained_cfg_overlay=dict(state_dict=training)).body.weight,
                           sd["body.weight"])  # pretrained=False: not loaded


def test_head_of_another_width_is_dropped_whole(tmp_path, caplog):
    """num_classes matches but the head's input width does not: weight and bias are left out together
    and the warning names the shapes."""
    sd = _canonical(_state_dict())
    sd["head.weight"] = torch.randn(10, 6)
    path = tmp_path / "head6.safetensors"
    save_file(sd, str(path))
    with caplog.at_level(logging.WARNING):
        model = _build(pretrained_cfg_overlay=dict(file=str(path)))
    assert not torch.equal(model.head.bias, sd["head.bias"])
    _assert_loaded(model, sd, skip=("head.weight", "head.bias"))
    assert "head.weight checkpoint (10, 6) vs model (10, 4), head.bias checkpoint (10,) vs model (10,)" in caplog.text
    assert "not loaded (random init): head.weight, head.bias" in caplog.text


def test_failed_download_names_the_source_and_the_local_file_option(tmp_path, monkeypatch):
    import vision_ssm.models.vmamba  # noqa: F401
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = "http://127.0.0.1:9/missing_weights.pth"  # nothing listens on the discard port
    with pytest.raises(PretrainedLoadError, match="missing_weights.pth") as info:
        timm.create_model("vmamba_tiny_s1l8", pretrained=True, depths=[1, 1, 1, 1], dims=16,
                          pretrained_cfg_overlay=dict(url=url, hf_hub_id=None))
    assert "pretrained_cfg_overlay=dict(file=" in str(info.value)
