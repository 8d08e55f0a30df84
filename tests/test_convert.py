"""tools/convert_checkpoint.py: synthetic official-layout checkpoints -> safetensors -> timm.

The synthetic checkpoints take their keys and shapes from the official-code manifests
(``VISION_SSM_MANIFESTS``, default /work/shared/reference/manifests), random values, inside a
training dict with an ``argparse.Namespace`` like the released files; tests needing a manifest
are skipped without them.
"""
import argparse
import importlib
import json
import os
import re
from pathlib import Path

import pytest
import torch

MANIFEST_DIR = Path(os.environ.get("VISION_SSM_MANIFESTS", "/work/shared/reference/manifests"))


def _tool(name):
    """The tool's command line, vision_ssm.cli.NAME (tools/NAME.py and vssm-NAME call its main)."""
    return importlib.import_module(f"vision_ssm.cli.{name}")


@pytest.fixture(scope="module")
def convert_tool():
    return _tool("convert_checkpoint")


def _manifest(name):
    path = MANIFEST_DIR / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"reference manifest {path} not available")
    return json.loads(path.read_text())


def _random_state_dict(manifest, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*shape, generator=g) * 0.02 for k, shape in manifest["state_dict"].items()}


def _training_dict(model_sd, ema_sd=None, model_name="official"):
    ckpt = {"model": model_sd, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "epoch": 299,
            "lr_scheduler": {"last_epoch": 299}, "scaler": {"scale": 65536.0},
            "args": argparse.Namespace(model=model_name, input_size=224, lr=5e-4, batch_size=128)}
    if ema_sd is not None:
        ckpt["model_ema"] = ema_sd
    return ckpt


def _load_via_timm(name, path, **kwargs):
    import timm

    from vision_ssm.bench.models import register_models
    register_models()  # the VMamba family too
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)


def _assert_same(model, reference, skip=()):
    """The model holds every reference tensor as is: the official layouts are the model's, so no
    reshape is expected (a reshape here would hide values scrambled between layouts)."""
    own = model.state_dict()
    assert set(own) == set(reference)
    for k, v in reference.items():
        if k in skip:
            continue
        assert own[k].shape == v.shape, (k, tuple(own[k].shape), tuple(v.shape))
        assert torch.equal(own[k], v), k


def test_vmamba_v2_training_dict(tmp_path, convert_tool, capsys):
    sd = _random_state_dict(_manifest("vmamba_v2_tiny_s1l8"), 0)
    src = tmp_path / "vssm1_tiny_0230s_ckpt_epoch_264.pth"
    torch.save(_training_dict(sd, model_name="vssm1_tiny"), src)
    out = tmp_path / "vmamba_tiny_s1l8.safetensors"
    assert convert_tool.main(["--model", "vmamba_tiny_s1l8", str(src), "-o", str(out)]) == 0
    assert "30,249,064 parameters" in capsys.readouterr().out

    from vision_ssm.convert import read_metadata
    meta = read_metadata(out)
    assert meta["model_name"] == "vmamba_tiny_s1l8"
    assert meta["source_file"] == src.name and len(meta["source_sha256"]) == 64
    assert meta["use_ema"] == "false" and meta["source_args_model"] == "vssm1_tiny"
    from safetensors.torch import load_file
    assert set(load_file(out)) == set(sd)  # the state dict only, under the model's keys

    model = _load_via_timm("vmamba_tiny_s1l8", out)
    _assert_same(model, sd)


def test_vmamba_v0_legacy_names(tmp_path, convert_tool):
    """The original #v0cls names (patch_embed.proj, ln_1, self_attention, top-level norm/head) and
    a DDP ``module.`` prefix convert to the current layout."""
    sd = _random_state_dict(_manifest("vmamba_v0_tiny"), 1)
    legacy_rules = [(r"^patch_embed\.0\.", "patch_embed.proj."), (r"^patch_embed\.2\.", "patch_embed.norm."),
                    (r"^(layers\.\d+\.blocks\.\d+)\.norm\.", r"\1.ln_1."),
                    (r"^(layers\.\d+\.blocks\.\d+)\.op\.", r"\1.self_attention."),
                    (r"^classifier\.norm\.", "norm."), (r"^classifier\.head\.", "head.")]
    legacy = {}
    for k, v in sd.items():
        for pattern, repl in legacy_rules:
            k = re.sub(pattern, repl, k)
        legacy["module." + k] = v
    assert len(set(legacy) & {"module." + k for k in sd}) < len(sd) // 2  # really renamed
    src = tmp_path / "vssmtiny_dp01_ckpt_epoch_292.pth"
    torch.save({"model": legacy, "epoch": 292}, src)
    out = tmp_path / "vanilla.safetensors"
    assert convert_tool.main(["--model", "vanilla_vmamba_tiny", str(src), "-o", str(out)]) == 0
    _assert_same(_load_via_timm("vanilla_vmamba_tiny", out), sd)


def test_vim_ema_and_img_size(tmp_path, convert_tool):
    manifest = _manifest("vim_tiny")
    sd, ema = _random_state_dict(manifest, 2), _random_state_dict(manifest, 3)
    src = tmp_path / "vim_t_midclstok_76p1acc.pth"
    torch.save(_training_dict(sd, ema, model_name="vim_tiny_patch16_224_bimambav2"), src)

    out = tmp_path / "vim_t_ema.safetensors"
    assert convert_tool.main(["--model", "vim_tiny_patch16_224", str(src), "-o", str(out), "--use-ema"]) == 0
    _assert_same(_load_via_timm("vim_tiny_patch16_224", out), ema)

    out256 = tmp_path / "vim_t_256.safetensors"
    assert convert_tool.main(["--model", "vim_tiny_patch16_224", str(src), "-o", str(out256),
                              "--img-size", "256", "--json"]) == 0
    from vision_ssm.convert import read_metadata
    assert read_metadata(out256)["img_size"] == "256"
    model = _load_via_timm("vim_tiny_patch16_224", out256, img_size=256)
    assert model.pos_embed.shape == (1, 257, 192)
    _assert_same(model, sd, skip=("pos_embed",))
    # the class token's embedding (the middle one) is carried over unchanged
    assert torch.equal(model.pos_embed[0, 128], sd["pos_embed"][0, 98])


def test_incompatible_checkpoint_fails_listing_keys(tmp_path, convert_tool, capsys):
    sd = _random_state_dict(_manifest("vim_tiny"), 4)
    sd.pop("norm_f.weight")
    sd["layers.0.mixer.bogus"] = torch.zeros(3)
    src = tmp_path / "broken.pth"
    torch.save(_training_dict(sd), src)
    out = tmp_path / "broken.safetensors"
    assert convert_tool.main(["--model", "vim_tiny_patch16_224", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 missing keys: norm_f.weight" in err and "1 unexpected keys: layers.0.mixer.bogus" in err
    assert not out.exists()

    # --use-ema without EMA weights
    assert convert_tool.main(["--model", "vim_tiny_patch16_224", str(src), "-o", str(out), "--use-ema"]) == 1
    assert "EMA" in capsys.readouterr().err


def test_bad_arguments(tmp_path, convert_tool, capsys):
    src = tmp_path / "x.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, src)
    with pytest.raises(SystemExit) as exc:
        convert_tool.main(["--model", "vim_tinyy_patch16_224", str(src)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'vim_tinyy_patch16_224'" in err and "vim_tiny_patch16_224" in err
    with pytest.raises(SystemExit):
        convert_tool.main(["--model", "vim_tiny_patch16_224", str(tmp_path / "missing.pth")])
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_tool.main([str(src)])  # --model is required


def test_check_forward_uses_the_models_input_size_and_channels(tmp_path):
    """--check-forward feeds the model an input of its own img_size and in_chans (model_kwargs)."""
    import timm

    from vision_ssm.convert import convert_checkpoint
    kwargs = dict(depth=2, embed_dim=16, d_state=4, num_classes=10, img_size=64, in_chans=1)
    source = timm.create_model("vim_tiny_patch16_224", **kwargs)
    src = tmp_path / "gray.pth"
    torch.save(_training_dict(source.state_dict()), src)
    report = convert_checkpoint(src, "vim_tiny_patch16_224", tmp_path / "gray.safetensors", model_kwargs=kwargs,
                                check_forward=True)
    assert report["metadata"]["img_size"] == "64"
    model = _load_via_timm("vim_tiny_patch16_224", report["out"], **kwargs)
    _assert_same(model, source.state_dict())
    # the size as the img_size argument: the single input channel still comes from the model
    kwargs.pop("img_size")
    convert_checkpoint(src, "vim_tiny_patch16_224", tmp_path / "gray64.safetensors", img_size=64,
                       model_kwargs=kwargs, check_forward=True)
