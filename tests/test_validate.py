"""tools/validate.py: reproduces train.py's accuracy from its checkpoints; official files; errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from vision_ssm.checkpoint import load_checkpoint_file
from vision_ssm.train import train, validate
from vision_ssm.train.cli import validate_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_KW = dict(patch_size=4, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "run"
    res = train(dict(model="vit_tiny_patch16_224", model_kwargs=TINY_KW, img_size=16, dataset="digits",
                     train_samples=128, val_samples=48, batch_size=16, validation_batch_size=20, epochs=2,
                     warmup_epochs=1, lr=3e-3, seed=1, model_ema=True, model_ema_decay=0.8,
                     output=str(out), progress="none", plot=False))
    return res


def test_validate_reproduces_training_accuracy(run):
    last = os.path.join(run["output_dir"], "last.pth")
    got = validate(checkpoint=last, quiet=True)
    final = run["history"][-1]
    assert got["samples"] == 48 and got["img_size"] == 16 and got["dataset"] == "digits"
    assert got["top1"] == pytest.approx(final["val_top1"], abs=1e-9)
    assert got["top5"] == pytest.approx(final["val_top5"], abs=1e-9)
    assert got["loss"] == pytest.approx(final["val_loss"], rel=1e-5)
    ema = validate(checkpoint=last, use_ema=True, quiet=True)
    assert ema["top1"] == pytest.approx(final["ema_val_top1"], abs=1e-9)
    best = validate(checkpoint=os.path.join(run["output_dir"], "best.pth"), quiet=True)
    assert best["top1"] == pytest.approx(run["best_top1"], abs=1e-9)


def test_validate_cli_table_and_json(run, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = validate_main(["--checkpoint", run["output_dir"], "--output", str(out), "--batch-size", "7"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "top1" in printed and "top5" in printed
    data = json.loads(out.read_text())
    assert data["top1"] == pytest.approx(run["final_top1"], abs=1e-9)
    assert data["checkpoint_epoch"] == 2


def test_validate_script_runs_as_a_program(run, tmp_path):
    out = tmp_path / "res.json"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "validate.py"), "--checkpoint",
                           os.path.join(run["output_dir"], "last.pth"), "--output", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["top1"] == pytest.approx(run["final_top1"], abs=1e-9)


def test_validate_other_image_size(run):
    # the ViT is rebuilt for 24x24 and its position embedding resampled by timm's checkpoint filter
    got = validate(checkpoint=os.path.join(run["output_dir"], "last.pth"), img_size=24, quiet=True)
    assert got["img_size"] == 24 and got["samples"] == 48 and 0.0 <= got["top1"] <= 100.0


def test_validate_official_style_state_dict(run, tmp_path):
    """A bare (DDP-prefixed) state dict, as official releases ship, loads through the model's loader."""
    ckpt = load_checkpoint_file(os.path.join(run["output_dir"], "last.pth"))
    path = tmp_path / "official.pth"
    torch.save({"model": {f"module.{k}": v for k, v in ckpt["model"].items()}}, path)
    got = validate(checkpoint=str(path), model="vit_tiny_patch16_224", model_kwargs=TINY_KW, num_classes=10,
                   dataset="digits", img_size=16, val_samples=48, quiet=True)
    assert got["top1"] == pytest.approx(run["final_top1"], abs=1e-9)


def test_validate_errors(run, tmp_path, capsys):
    with pytest.raises(ValueError, match="--checkpoint .* is not a file"):
        validate(checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="--model is required"):
        validate(pretrained=True)
    with pytest.raises(ValueError, match="give --checkpoint FILE, --pretrained"):
        validate(model="resnet10t")
    assert validate_main(["--checkpoint", str(tmp_path / "missing.pth")]) == 2
    assert "is not a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        validate_main(["--checkpoint", run["output_dir"], "--img-size", "0"])
    # EMA weights asked for but absent
    ckpt = load_checkpoint_file(os.path.join(run["output_dir"], "last.pth"))
    ckpt.pop("model_ema")
    torch.save(ckpt, tmp_path / "no_ema.pth")
    with pytest.raises((ValueError, KeyError), match="EMA"):
        validate(checkpoint=str(tmp_path / "no_ema.pth"), use_ema=True, quiet=True)


def test_validate_data_choice_and_weights_conflicts(run):
    last = os.path.join(run["output_dir"], "last.pth")
    with pytest.raises(ValueError, match="--dataset .* or --data-dir .*, not both"):
        validate(checkpoint=last, dataset="digits", data_dir="/somewhere", quiet=True)
    with pytest.raises(ValueError, match="--checkpoint cannot be combined with --pretrained"):
        validate(checkpoint=last, pretrained=True, quiet=True)
    with pytest.raises(ValueError, match="applies to digits and pathfinder, not to the ImageFolder"):
        validate(checkpoint=last, data_dir=os.path.dirname(last), val_samples=4, quiet=True)


def test_validate_explicit_dataset_wins_over_the_checkpoints_folder(run, tmp_path):
    """A run trained on a folder, validated on --dataset digits: the folder is not used."""
    ckpt = load_checkpoint_file(os.path.join(run["output_dir"], "last.pth"))
    ckpt["args"] = dict(ckpt["args"], dataset=None, data_dir=str(tmp_path / "no_such_tree"), val_samples=None)
    torch.save(ckpt, tmp_path / "folder_run.pth")
    got = validate(checkpoint=str(tmp_path / "folder_run.pth"), dataset="digits", val_samples=48, quiet=True)
    assert got["dataset"] == "digits" and got["samples"] == 48
    assert got["top1"] == pytest.approx(run["final_top1"], abs=1e-9)
