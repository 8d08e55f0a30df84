"""tools/mm_train.py and tools/mm_test.py end to end on a toy config: train, resume, test, and
mmengine checkpoints loading under torch's weights_only default through our allow-list only."""
from __future__ import annotations

import importlib
import math

import pytest

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

import torch  # noqa: E402

from conftest import CONFIGS, REPO, toy_data_root  # noqa: E402

pytestmark = pytest.mark.mmlab

TOY_SEG = CONFIGS / "segmentation/toy/upernet_vmamba-toy_ade20k-64x64.py"


def _tool(name):
    """The tool's command line, vision_ssm.cli.NAME (tools/NAME.py and vssm-NAME call its main)."""
    return importlib.import_module(f"vision_ssm.cli.{name}")


def test_train_resume_test(toy_root, tmp_path):
    from mmengine.config import Config

    from vision_ssm.mmlab.compat import mmengine_checkpoint_globals
    data_root = toy_data_root(toy_root, Config.fromfile(str(TOY_SEG)))
    work = tmp_path / "work"
    train, test = _tool("mm_train"), _tool("mm_test")
    common = [str(TOY_SEG), "--work-dir", str(work), "--data-root", data_root]
    train.main(common + ["--cfg-options", "train_cfg.max_iters=4", "train_cfg.val_interval=4",
                         "default_hooks.checkpoint.interval=2"])
    assert (work / "iter_4.pth").is_file()

    # mmengine checkpoints hold HistoryBuffers, NumPy arrays / scalars / dtypes and the buffers'
    # statistics methods: all of it (and nothing else) is on the allow-list
    registered = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        names = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(work / "iter_4.pth")))
    finally:
        torch.serialization.add_safe_globals(registered)
    allowed = {f"{o.__module__}.{o.__qualname__}" if not isinstance(o, tuple) else o[1]
               for o in mmengine_checkpoint_globals()}
    assert names and names <= allowed, names - allowed
    ckpt = torch.load(str(work / "iter_4.pth"), map_location="cpu")  # weights_only=True (torch default)
    assert ckpt["meta"]["iter"] == 4

    train.main(common + ["--resume", "--cfg-options", "train_cfg.max_iters=6", "train_cfg.val_interval=6",
                         "default_hooks.checkpoint.interval=2"])
    assert (work / "iter_6.pth").is_file()
    assert torch.load(str(work / "iter_6.pth"), map_location="cpu")["meta"]["iter"] == 6

    metrics = test.run([str(TOY_SEG), str(work / "iter_6.pth"), "--work-dir", str(tmp_path / "test"),
                         "--data-root", data_root, "--out", str(tmp_path / "preds.pkl")])
    assert math.isfinite(metrics["mIoU"])
    assert (tmp_path / "preds.pkl").is_file()


def test_amp_flag_switches_the_optim_wrapper(tmp_path):
    train = _tool("mm_train")
    args = train.parse_args([str(TOY_SEG), "--amp", "--work-dir", str(tmp_path)])
    cfg = train.build_config(args)
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.loss_scale == "dynamic"
    args = train.parse_args([str(TOY_SEG), "--launcher", "pytorch", "--resume", "x.pth"])
    cfg = train.build_config(args)
    assert cfg.launcher == "pytorch" and cfg.resume and cfg.load_from == "x.pth"


@pytest.mark.slow
def test_torchrun_two_processes(toy_root, tmp_path):
    """--launcher pytorch under torchrun (2 processes; gloo and DDP on the CPU when there is no CUDA)."""
    import os
    import subprocess
    import sys
    from mmengine.config import Config
    config = CONFIGS / "detection/toy/mask-rcnn_vmamba-toy_fpn_1x_coco.py"
    data_root = toy_data_root(toy_root, Config.fromfile(str(config)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    subprocess.run(torchrun + [str(REPO / "tools/mm_train.py"), str(config), "--launcher", "pytorch",
                               "--work-dir", str(tmp_path / "train"), "--data-root", data_root,
                               "--cfg-options", "train_cfg.max_epochs=1", "train_cfg.val_interval=1"],
                   check=True, env=env, cwd=REPO)
    assert (tmp_path / "train" / "epoch_1.pth").is_file()
    out = subprocess.run(torchrun + [str(REPO / "tools/mm_test.py"), str(config), str(tmp_path / "train/epoch_1.pth"),
                                     "--launcher", "pytorch", "--work-dir", str(tmp_path / "test"),
                                     "--data-root", data_root],
                         check=True, env=env, cwd=REPO, capture_output=True, text=True)
    assert "coco/bbox_mAP" in out.stdout + out.stderr


def test_data_root_must_cover_every_dataset(tmp_path):
    """ByteTrack reads CrowdHuman next to MOT17: --data-root alone would leave it behind silently."""
    from vision_ssm.mmlab import cli
    config = str(CONFIGS / "tracking/bytetrack_yolox-vmamba-t-s1l8_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py")
    parser = cli.common_parser("test")
    with pytest.raises(SystemExit, match=r"also reads \['data/crowdhuman'\]"):
        cli.load_config(cli.parse(parser, [config, "--data-root", str(tmp_path / "mot")]))
    ch = str(tmp_path / "crowdhuman")
    datasets = "train_dataloader.dataset.dataset.datasets"  # MOT17 half-train, CrowdHuman train and val
    cfg = cli.load_config(cli.parse(parser, [config, "--data-root", str(tmp_path / "mot"), "--cfg-options",
                                             f"{datasets}.1.data_root={ch}", f"{datasets}.2.data_root={ch}"]))
    roots = [d.data_root.rstrip("/") for d in cfg.train_dataloader.dataset.dataset.datasets]
    assert roots == [str(tmp_path / "mot"), ch, ch]
