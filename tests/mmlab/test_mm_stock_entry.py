"""The toy configs through OpenMMLab's own entry points: mmdet's and mmseg's packaged tools/train.py
(``<package>/.mim/tools/train.py``, what ``mim train`` runs) and tools/test.py, in a fresh process.

Nothing of ours runs besides the configs' ``custom_imports`` (``vision_ssm.mmlab``): training and the
validation at its end need no fix of ``vision_ssm.mmlab.compat``.  Loading a checkpoint does (mmengine
0.10 reads it with torch's ``weights_only`` default), so the stock test.py runs behind a one-line
wrapper that calls ``compat.apply()`` first, as configs/README.md says.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from conftest import CONFIGS, REPO  # noqa: E402

pytestmark = pytest.mark.mmlab

TOY_SEG = CONFIGS / "segmentation/toy/upernet_vmamba-toy_ade20k-64x64.py"
TOY_DET = CONFIGS / "detection/toy/mask-rcnn_vmamba-toy_fpn_1x_coco.py"
# the stock test.py after compat.apply() (mmengine's checkpoint reader under torch >= 2.6)
WITH_COMPAT = ("import runpy, sys; from vision_ssm.mmlab import compat; compat.apply(); "
               "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _stock_tool(package: str, name: str) -> Path:
    """``<package>/.mim/tools/NAME.py``, the script ``mim train / test PACKAGE`` runs."""
    module = pytest.importorskip(package)
    path = Path(os.path.dirname(module.__file__)) / ".mim" / "tools" / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"{package} ships no {path}")
    return path


@pytest.fixture
def run_dir(toy_root, tmp_path) -> Path:
    """A working directory whose ``data/toy`` is the session's toy data (the configs' relative data_root)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy").symlink_to(toy_root, target_is_directory=True)
    return tmp_path


def _run(args: list[str], cwd: Path, timeout: int = 300) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the plugin must be importable: installed, or the checkout on PYTHONPATH
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        print("STDOUT (tail):\n" + proc.stdout[-3000:])
        print("STDERR (tail):\n" + proc.stderr[-6000:])
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited with {proc.returncode}"


def _records(work: Path, pattern: str) -> list[dict]:
    files = sorted(work.glob(pattern))
    assert files, f"no {pattern} under {work}"
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def _scalars(work: Path) -> list[dict]:
    """What a training run logged (mmengine's ``<timestamp>/vis_data/scalars.json``)."""
    return _records(work, "*/vis_data/scalars.json")


def _metric(records: list[dict], key: str) -> float:
    found = [rec[key] for rec in records if key in rec]
    assert found, f"{key} was not logged: {records[-1:]}"
    return float(found[-1])


def _test_metric(work: Path, key: str) -> float:
    """The metric a test run logged (its ``<timestamp>/<timestamp>.json``)."""
    return _metric(_records(work, "*/[0-9]*.json"), key)


def _check_training(work: Path, checkpoint: str, metric: str, lo: float, hi: float) -> None:
    assert (work / checkpoint).is_file(), sorted(p.name for p in work.iterdir())
    losses = [rec["loss"] for rec in _scalars(work) if "loss" in rec]
    assert losses and all(math.isfinite(v) for v in losses), losses
    value = _metric(_scalars(work), metric)  # the validation at the end of training
    assert lo <= value <= hi, (metric, value)


def test_mmseg_stock_train_and_test(run_dir):
    train, test = _stock_tool("mmseg", "train"), _stock_tool("mmseg", "test")
    work = run_dir / "work"
    _run([str(train), str(TOY_SEG), "--work-dir", str(work), "--cfg-options",
          "train_cfg.max_iters=4", "train_cfg.val_interval=4", "default_hooks.checkpoint.interval=4",
          "default_hooks.logger.interval=1"], run_dir)
    _check_training(work, "iter_4.pth", "mIoU", 0.0, 100.0)

    test_work = run_dir / "test"
    _run(["-c", WITH_COMPAT, str(test), str(TOY_SEG), str(work / "iter_4.pth"), "--work-dir", str(test_work)],
         run_dir)
    # the same weights on the same images as the validation at the end of training
    assert _test_metric(test_work, "mIoU") == pytest.approx(_metric(_scalars(work), "mIoU"), abs=1e-6)


def test_mmdet_stock_train_and_test(run_dir):
    train, test = _stock_tool("mmdet", "train"), _stock_tool("mmdet", "test")
    work = run_dir / "work"
    # one epoch of 8 training images (2 iterations at batch 4), then the validation on the whole toy val set
    _run([str(train), str(TOY_DET), "--work-dir", str(work), "--cfg-options",
          "train_cfg.max_epochs=1", "train_cfg.val_interval=1", "default_hooks.checkpoint.interval=1",
          "default_hooks.logger.interval=1", "train_dataloader.dataset.indices=8"], run_dir)
    _check_training(work, "epoch_1.pth", "coco/bbox_mAP", -1.0, 1.0)
    assert -1.0 <= _metric(_scalars(work), "coco/segm_mAP") <= 1.0

    test_work = run_dir / "test"
    _run(["-c", WITH_COMPAT, str(test), str(TOY_DET), str(work / "epoch_1.pth"), "--work-dir", str(test_work)],
         run_dir)
    for key in ("coco/bbox_mAP", "coco/segm_mAP"):
        assert _test_metric(test_work, key) == pytest.approx(_metric(_scalars(work), key), abs=1e-6)
