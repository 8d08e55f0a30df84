"""vision_ssm.models._builder: timm's build_model_with_cfg with a checkpoint filter, the safe reader and
the zoo's key report, on a tiny model built the way the zoo's model files build theirs."""
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
from timm.models import load_checkpoint
from vision_ssm.checkpoint import CorruptCheckpointError
from vision_ssm.models._builder import (PretrainedLoadError, PretrainedLoaderMixin, adapt_to_model,
                                        build_ssm_model, load_pretrained_checkpoint)

URL = "https://example.invalid/weights/tiny.pth"


def checkpoint_filter_fn(state_dict, model):
    """As a model file's: a legacy name converted, then the stem / classifier adapted."""
    state_dict = {k.replace("old_stem.", "stem."): v for k, v in state_dict.items()}
    return adapt_to_model(state_dict, model, first_conv="stem", classifier="head")


class TinyNet(PretrainedLoaderMixin, nn.Module):
    checkpoint_filter_fn = staticmethod(checkpoint_filter_fn)

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 4):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Conv2d(in_chans, width, 3)
        self.body = nn.Linear(width, width)
        self.head = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        return self.head(self.body(self.stem(x).mean((2, 3))))


def _cfg(**kw):
    return dict(url=URL, num_classes=10, input_size=(3, 8, 8), first_conv="stem", classifier="head", **kw)


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


def _build(pretrained=True, cfg=None, **kwargs):
    kwargs.setdefault("pretrained_filter_fn", checkpoint_filter_fn)
    return build_ssm_model(TinyNet, "tinynet", pretrained, pretrained_cfg=cfg or _cfg(), **kwargs)


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


def test_zoo_cfgs_use_timms_standard_loading():
    import vision_ssm.models  # noqa: F401
    for name in timm.list_models(module=["vmamba", "vim"], pretrained=True):
        cfg = timm.models.get_pretrained_cfg(name)
        assert not cfg.custom_load and cfg.first_conv and cfg.classifier, name


def test_file_overlay_pth_training_dict(training_ckpt):
    path, sd = training_ckpt
    model = _build(pretrained_cfg_overlay=dict(file=str(path)))
    _assert_loaded(model, sd)  # module. stripped, legacy names filtered, Namespace allowed
    assert "state_dict" not in model.pretrained_cfg  # the weights read are not kept in the cfg


def test_file_overlay_safetensors(tmp_path):
    sd = _state_dict(seed=1)
    path = tmp_path / "w.safetensors"
    save_file(sd, str(path))
    _assert_loaded(_build(pretrained_cfg_overlay=dict(file=str(path))), sd)


def test_url_downloads_with_timm_then_uses_safe_reader(training_ckpt, monkeypatch):
    path, sd = training_ckpt
    seen = []
    monkeypatch.setattr(timm_builder, "download_cached_file", lambda url, **kw: seen.append(url) or str(path))
    _assert_loaded(_build(), sd)
    assert seen == [URL]


def test_hf_hub_file_is_read_by_timm_with_the_allow_list(training_ckpt, monkeypatch):
    path, sd = training_ckpt
    seen = []

    def fake_hub_download(repo_id, filename, revision=None, cache_dir=None, **kw):
        seen.append((repo_id, filename))
        if filename != "train.pth":  # timm first asks for a safetensors alternative
            raise timm_hub.EntryNotFoundError(filename)
        return str(path)

    monkeypatch.setattr(timm_builder, "has_hf_hub", lambda necessary=False: True)
    monkeypatch.setattr(timm_hub, "has_hf_hub", lambda necessary=False: True)
    monkeypatch.setattr(timm_hub, "hf_hub_download", fake_hub_download)
    cfg = _cfg(hf_hub_id="org/tiny", hf_hub_filename="train.pth")
    # the training dict holds an argparse.Namespace and a module. prefix; the filter unwraps it
    _assert_loaded(_build(cfg=cfg), sd)
    assert seen[-1] == ("org/tiny", "train.pth")


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


def test_head_of_another_width_is_dropped_whole(tmp_path, caplog):
    sd = _canonical(_state_dict())
    sd["head.weight"] = torch.randn(10, 6)
    path = tmp_path / "head6.safetensors"
    save_file(sd, str(path))
    with caplog.at_level(logging.WARNING):
        model = _build(pretrained_cfg_overlay=dict(file=str(path)))
    assert not torch.equal(model.head.bias, sd["head.bias"])
    _assert_loaded(model, sd, skip=("head.weight", "head.bias"))
    assert "head.weight checkpoint (10, 6) vs model (10, 4)" in caplog.text


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
    for num_classes in (10, 5):  # also where timm itself would load non-strictly
        with pytest.raises(PretrainedLoadError) as err:
            _build(num_classes=num_classes, pretrained_cfg_overlay=dict(file=str(path)))
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


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_is_a_corrupt_checkpoint(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    sd = _canonical(_state_dict())
    save_file(sd, str(good)) if suffix == ".safetensors" else torch.save({"model": sd}, good)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CorruptCheckpointError):
        _build(pretrained_cfg_overlay=dict(file=str(bad)))


def test_use_ema(tmp_path):
    path = tmp_path / "ema.pth"
    plain, ema = _state_dict(seed=1), _state_dict(seed=2)
    torch.save({"model": plain, "model_ema": ema}, path)
    _assert_loaded(_build(pretrained_cfg_overlay=dict(file=str(path))), plain)
    _assert_loaded(_build(pretrained_use_ema=True, pretrained_cfg_overlay=dict(file=str(path))), ema)


def test_in_memory_state_dict_goes_through_the_strict_check():
    """pretrained_cfg_overlay=dict(state_dict=...) behaves like file=: unwrapped, filtered, strict."""
    sd = _state_dict()
    training = {"model": {"module." + k: v for k, v in sd.items()}, "args": argparse.Namespace(lr=0.1), "epoch": 3}
    _assert_loaded(_build(pretrained_cfg_overlay=dict(state_dict=training)), sd)
    other = _build(num_classes=5, pretrained_cfg_overlay=dict(state_dict=training))
    _assert_loaded(other, sd, skip=("head.weight", "head.bias"))
    incomplete = {k: v for k, v in sd.items() if k != "body.bias"}
    with pytest.raises(PretrainedLoadError, match=r"in-memory checkpoint: 1 missing keys: body\.bias"):
        _build(num_classes=5, pretrained_cfg_overlay=dict(state_dict=incomplete))
    assert not torch.equal(_build(pretrained=False, pretrained_cfg_overlay=dict(state_dict=training)).body.weight,
                           _canonical(sd)["body.weight"])  # pretrained=False: not loaded


def test_built_model_loads_with_timms_load_checkpoint_and_the_zoo_loader(training_ckpt, tmp_path):
    path, sd = training_ckpt
    model = _build(pretrained=False)
    assert not torch.equal(model.body.weight, _canonical(sd)["body.weight"])
    load_checkpoint(model, str(path), filter_fn=checkpoint_filter_fn)
    _assert_loaded(model, sd)

    model = _build(pretrained=False)
    report = load_pretrained_checkpoint(model, path)  # the model's own filter by default
    assert report == dict(missing=[], unexpected=[], mismatched=[])
    _assert_loaded(model, sd)
    model = _build(pretrained=False)
    model.load_pretrained(str(path))
    _assert_loaded(model, sd)


def test_failed_download_names_the_source_and_the_local_file_option(tmp_path, monkeypatch):
    import vision_ssm.models.vmamba  # noqa: F401
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = "http://127.0.0.1:9/missing_weights.pth"  # nothing listens on the discard port
    with pytest.raises(PretrainedLoadError, match="missing_weights.pth") as info:
        timm.create_model("vmamba_tiny_s1l8", pretrained=True, depths=[1, 1, 1, 1], dims=16,
                          pretrained_cfg_overlay=dict(url=url, hf_hub_id=None))
    assert "pretrained_cfg_overlay=dict(file=" in str(info.value)


def test_zoo_model_loads_through_timm_load_checkpoint(tmp_path):
    """An official-layout checkpoint (legacy VMamba names, a training dict) into a built zoo model."""
    from vision_ssm.models.vmamba import checkpoint_filter_fn as vmamba_filter
    kw = dict(depths=[1, 1, 1, 1], dims=16, num_classes=10)
    source = timm.create_model("vanilla_vmamba_tiny", **kw)
    legacy = {k.replace("classifier.head.", "head.").replace("classifier.norm.", "norm."): v
              for k, v in source.state_dict().items()}
    path = tmp_path / "legacy.pth"
    torch.save({"model": legacy, "args": argparse.Namespace(lr=1e-3)}, path)
    model = timm.create_model("vanilla_vmamba_tiny", **kw)
    load_checkpoint(model, str(path), filter_fn=vmamba_filter)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())
    overlay = timm.create_model("vanilla_vmamba_tiny", pretrained=True, **kw,
                                pretrained_cfg_overlay=dict(file=str(path)))
    assert all(torch.equal(overlay.state_dict()[k], v) for k, v in source.state_dict().items())
