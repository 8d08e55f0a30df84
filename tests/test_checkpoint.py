"""vision_ssm.checkpoint: the safe loader and the training dicts it must read.

VMamba's Swin-style ``save_checkpoint`` stores the training config, a yacs ``CfgNode``, under
``config``.  The loader must never import yacs: the tests pickle an instance of a look-alike
class registered under the module name ``yacs.config`` (a dict subclass keeping its flags in
``__dict__``, like yacs' CfgNode), then remove the module; where yacs is installed, a real
CfgNode's pickle is checked as well.
"""
from __future__ import annotations

import argparse
import sys
import types

import pytest
import torch

import timm
import vision_ssm.models.vmamba  # noqa: F401  (registers the models)
from vision_ssm.checkpoint import ConfigNode, load_checkpoint_file, unwrap_state_dict


def _fake_yacs_module():
    module = types.ModuleType("yacs.config")

    class CfgNode(dict):  # the parts of yacs' CfgNode that shape its pickle
        IMMUTABLE = "__immutable__"

        def __init__(self, init_dict=None, new_allowed=False):
            items = {k: CfgNode(v) if isinstance(v, dict) else v for k, v in (init_dict or {}).items()}
            super().__init__(items)
            self.__dict__["__immutable__"] = False
            self.__dict__["__deprecated_keys__"] = set()
            self.__dict__["__renamed_keys__"] = {}
            self.__dict__["__new_allowed__"] = new_allowed

        def __getattr__(self, name):
            if name in self:
                return self[name]
            raise AttributeError(name)

        def __setattr__(self, name, value):
            self[name] = value

    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    module.CfgNode = CfgNode
    return module


CONFIG = {"MODEL": {"TYPE": "vssm", "NAME": "vssm1_tiny_0230s", "VSSM": {"DEPTHS": [1, 1, 2, 1], "EMBED_DIM": 16}},
          "TRAIN": {"EPOCHS": 300, "BASE_LR": 1e-3}, "SEED": 0, "TAG": "default"}


@pytest.fixture
def swin_style_checkpoint(tmp_path, monkeypatch):
    """A training dict like VMamba's save_checkpoint writes, with a CfgNode under 'config'."""
    module = _fake_yacs_module()
    monkeypatch.setitem(sys.modules, "yacs", types.ModuleType("yacs"))
    monkeypatch.setitem(sys.modules, "yacs.config", module)
    torch.manual_seed(0)
    model = timm.create_model("vmamba_tiny_s1l8", dims=16, depths=(1, 1, 2, 1), num_classes=10)
    config = module.CfgNode(CONFIG)
    path = tmp_path / "ckpt_epoch_9.pth"
    torch.save({"model": model.state_dict(), "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]},
                "lr_scheduler": {"last_epoch": 9}, "max_accuracy": 12.5, "scaler": {"scale": 65536.0},
                "epoch": 9, "config": config}, path)
    monkeypatch.delitem(sys.modules, "yacs.config")
    monkeypatch.delitem(sys.modules, "yacs")
    return path, model.state_dict()


def test_yacs_config_checkpoint_loads_without_yacs(swin_style_checkpoint):
    path, sd = swin_style_checkpoint
    assert b"yacs.config" in path.read_bytes() and "yacs.config" not in sys.modules
    ckpt = load_checkpoint_file(path)
    assert "yacs" not in sys.modules and "yacs.config" not in sys.modules  # never imported
    cfg = ckpt["config"]
    assert type(cfg) is ConfigNode and type(cfg["MODEL"]) is ConfigNode and type(cfg["MODEL"]["VSSM"]) is ConfigNode
    assert cfg == CONFIG and not vars(cfg)  # the entries only, none of yacs' attribute state
    state = unwrap_state_dict(ckpt)
    assert set(state) == set(sd) and all(torch.equal(state[k], v) for k, v in sd.items())


def test_yacs_config_checkpoint_loads_into_model(swin_style_checkpoint):
    path, sd = swin_style_checkpoint
    model = timm.create_model("vmamba_tiny_s1l8", dims=16, depths=(1, 1, 2, 1), num_classes=10, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


def test_real_yacs_cfgnode_pickle_loads(tmp_path):
    """Where yacs is installed: a real, frozen CfgNode's pickle loads through the stand-in too."""
    yacs_config = pytest.importorskip("yacs.config")
    cfg = yacs_config.CfgNode(CONFIG, new_allowed=True)
    cfg.freeze()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"w": torch.ones(3)}, "config": cfg, "epoch": 1}, path)
    ckpt = load_checkpoint_file(path)
    assert type(ckpt["config"]) is ConfigNode and ckpt["config"] == CONFIG
    assert type(ckpt["config"]["TRAIN"]) is ConfigNode
    assert torch.equal(unwrap_state_dict(ckpt)["w"], torch.ones(3))


def test_other_classes_stay_refused(tmp_path, monkeypatch):
    """The stand-in covers exactly yacs.config.CfgNode: another class of that module is refused."""
    module = types.ModuleType("yacs.config")

    class Other(dict):
        pass

    Other.__module__, Other.__qualname__ = "yacs.config", "Other"
    module.Other = Other
    monkeypatch.setitem(sys.modules, "yacs.config", module)
    path = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "x": Other(a=1)}, path)
    monkeypatch.delitem(sys.modules, "yacs.config")
    with pytest.raises(RuntimeError, match="refusing to load"):
        load_checkpoint_file(path)


def test_namespace_training_dict_still_loads(tmp_path):
    path = tmp_path / "vim.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1e-3), "epoch": 1}, path)
    ckpt = load_checkpoint_file(path)
    assert ckpt["args"].lr == 1e-3 and torch.equal(unwrap_state_dict(ckpt)["w"], torch.ones(2))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_broken_file_is_reported_as_corrupt_not_refused(tmp_path, suffix, damage):
    from safetensors.torch import save_file
    from vision_ssm.checkpoint import CorruptCheckpointError, load_checkpoint_file
    good = tmp_path / f"good{suffix}"
    weights = {"w": torch.randn(64, 64)}
    save_file(weights, good) if suffix == ".safetensors" else torch.save({"model": weights}, good)
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"\x00not a checkpoint" * 8)
    with pytest.raises(CorruptCheckpointError, match="corrupt or truncated"):
        load_checkpoint_file(bad)


def test_forbidden_object_is_still_refused_by_the_allow_list(tmp_path):
    from vision_ssm.checkpoint import CorruptCheckpointError, load_checkpoint_file
    path = tmp_path / "odd.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _NotAllowed()}, path)
    with pytest.raises(RuntimeError, match="allow-list") as info:
        load_checkpoint_file(path)
    assert not isinstance(info.value, CorruptCheckpointError)


class _NotAllowed:
    pass
