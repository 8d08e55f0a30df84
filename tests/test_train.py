"""Training engine: end to end, exact resume, atomic checkpoints, DDP == one process, clear errors."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from vision_ssm.checkpoint import load_checkpoint_file
from vision_ssm.train import TrainConfig, train
from vision_ssm.train.checkpointing import save_atomic
from vision_ssm.train.cli import train_main
from vision_ssm.train.optim import WarmupCosineScheduler, create_optimizer, param_groups

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A ViT small enough for milliseconds a step; LayerNorm only (no batch norm), no dropout.
TINY = dict(model="vit_tiny_patch16_224", model_kwargs=dict(patch_size=4, embed_dim=32, depth=2, num_heads=2),
            img_size=16, dataset="digits", train_samples=64, val_samples=32, batch_size=16, epochs=2,
            warmup_epochs=1, lr=2e-3, seed=0, progress="none", plot=False)


def tiny(tmp_path, name="run", **kw):
    return {**TINY, "output": str(tmp_path / name), **kw}


def _steps(path):
    with open(os.path.join(path, "steps.csv")) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------- end to end
def test_train_end_to_end_writes_everything(tmp_path):
    res = train(tiny(tmp_path, plot=True, model_ema=True, model_ema_decay=0.9))
    out = res["output_dir"]
    for name in ("last.pth", "best.pth", "metrics.csv", "metrics.json", "steps.csv", "curves.png", "config.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert res["epochs_completed"] == 2 and res["steps"] == 8 and not res["stopped_early"]
    assert len(res["history"]) == 2 and 0.0 <= res["final_top1"] <= 100.0
    ckpt = load_checkpoint_file(os.path.join(out, "last.pth"))  # weights_only=True + allow-list
    for key in ("model", "model_ema", "optimizer", "scheduler", "epoch", "step", "rng", "args"):
        assert key in ckpt, key
    assert ckpt["epoch"] == 2 and ckpt["step"] == 8
    assert set(ckpt["rng"][0]) >= {"python", "numpy", "torch", "data_generator"}
    assert ckpt["args"]["model"] == TINY["model"] and isinstance(ckpt["args"], dict)
    best = load_checkpoint_file(os.path.join(out, "best.pth"))
    assert best["metrics"]["val_top1"] == res["best_top1"]


def test_config_accepts_namespace_and_rejects_unknown():
    import argparse
    cfg = TrainConfig.from_any(argparse.Namespace(**TINY))
    assert cfg.model == TINY["model"]
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_any(dict(TINY, learning_rate=1))


# ------------------------------------------------------------------------------ exact resume
def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    extra = dict(epochs=3, model_ema=True, model_ema_decay=0.9, mixup=0.8, cutmix=1.0, drop_path=0.1,
                 smoothing=0.1, clip_grad=1.0)
    full = train(tiny(tmp_path, "full", **extra))
    # "killed" in the middle of epoch 2: only the epoch-1 checkpoint exists
    cut = train(tiny(tmp_path, "cut", stop_after_steps=6, **extra))
    assert cut["stopped_early"] and cut["epochs_completed"] == 1
    assert load_checkpoint_file(tmp_path / "cut" / "last.pth")["epoch"] == 1
    resumed = train(tiny(tmp_path, "cut", resume=str(tmp_path / "cut" / "last.pth"), **extra))
    assert resumed["epochs_completed"] == 3 and resumed["steps"] == full["steps"] == 12

    a = load_checkpoint_file(tmp_path / "full" / "last.pth")
    b = load_checkpoint_file(tmp_path / "cut" / "last.pth")
    for part in ("model", "model_ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(sa[k], sb[k])
    assert a["history"][-1]["val_top1"] == b["history"][-1]["val_top1"]
    assert _steps(tmp_path / "full") == _steps(tmp_path / "cut")


# ------------------------------------------------------------------------- atomic checkpoints
def _crashing_save(real_save):
    def save(obj, f, *args, **kwargs):
        import io
        buf = io.BytesIO()
        real_save(obj, buf)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])  # half the file, then the "crash"
        raise OSError("simulated crash while writing")
    return save


def test_save_atomic_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_atomic({"w": torch.arange(1000.0), "epoch": 1}, path)
    monkeypatch.setattr(torch, "save", _crashing_save(torch.save))
    with pytest.raises(OSError, match="simulated crash"):
        save_atomic({"w": torch.zeros(1000), "epoch": 2}, path)
    monkeypatch.undo()
    ckpt = load_checkpoint_file(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["w"], torch.arange(1000.0))
    assert os.listdir(tmp_path) == ["last.pth"], "temporary files must be removed"


def test_crash_during_training_checkpoint_keeps_previous(tmp_path, monkeypatch):
    cfg = tiny(tmp_path, epochs=2)
    train(dict(cfg, stop_after_steps=4))  # epoch 1 completes and is saved
    monkeypatch.setattr(torch, "save", _crashing_save(torch.save))
    with pytest.raises(OSError, match="simulated crash"):
        train(dict(cfg, resume=cfg["output"]))
    monkeypatch.undo()
    ckpt = load_checkpoint_file(tmp_path / "run" / "last.pth")
    assert ckpt["epoch"] == 1
    assert sorted(f for f in os.listdir(tmp_path / "run") if f.endswith(".tmp")) == []
    done = train(dict(cfg, resume=cfg["output"]))  # and the run can still go on
    assert done["epochs_completed"] == 2


# ---------------------------------------------------------------------------------------- DDP
def test_ddp_two_processes_match_one_process(tmp_path):
    """torchrun, 2 CPU processes (gloo) x batch 8 == 1 process x batch 16, step by step."""
    single = train(tiny(tmp_path, "single", batch_size=16))
    kwargs = [f"{k}={v}" for k, v in TINY["model_kwargs"].items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(REPO, "tools", "train.py"), "--model", TINY["model"], "--model-kwargs", *kwargs,
           "--img-size", "16", "--dataset", "digits", "--train-samples", "64", "--val-samples", "32",
           "--batch-size", "8", "--epochs", "2", "--warmup-epochs", "1", "--lr", "2e-3", "--seed", "0",
           "--progress", "none", "--no-plot", "--output", str(tmp_path / "ddp")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp_loss, one_loss = _steps(tmp_path / "ddp"), _steps(tmp_path / "single")
    assert len(ddp_loss) == len(one_loss) == 8
    assert max(abs(a - b) for a, b in zip(ddp_loss, one_loss)) < 1e-4, (ddp_loss, one_loss)
    ckpt = load_checkpoint_file(tmp_path / "ddp" / "last.pth")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert abs(ckpt["metrics"]["val_loss"] - single["final_val_loss"]) < 1e-3
    assert ckpt["metrics"]["val_top1"] == pytest.approx(single["final_top1"], abs=100 / 32 + 1e-6)
    assert not (tmp_path / "ddp" / "last.pth.tmp").exists()


# ----------------------------------------------------------------------------- clear errors
@pytest.mark.parametrize("override,pattern", [
    (dict(model="vit_tiny_patch16_22"), r"--model 'vit_tiny_patch16_22' is not a registered.*vit_tiny_patch16_224"),
    (dict(scan="no_such_scan"), r"--scan 'no_such_scan' is unknown.*available scans: .*raster"),
    (dict(scan="raster"), r"--scan 'raster': model 'vit_tiny_patch16_224' does not take a scan="),
    (dict(data_dir="/no/such/dir", dataset=None, train_samples=None, val_samples=None),
     r"--data-dir '/no/such/dir' does not exist"),
    (dict(data_dir="/no/such/dir"), r"--dataset, --train-samples, --val-samples cannot be combined with --data-dir"),
    (dict(epochs=2, warmup_epochs=2), r"--warmup-epochs \(2\) must be less than --epochs \(2\)"),
    (dict(drop=0.3, model_kwargs=dict(TINY["model_kwargs"], drop_rate=0.1)),
     r"--drop 0.3 conflicts with --model-kwargs drop_rate=0.1"),
    (dict(dataset="imagenet"), r"unknown dataset 'imagenet'"),
    (dict(model_kwargs=dict(TINY["model_kwargs"], img_size=16), img_size=50), r"--img-size 50: model .* cannot take 50x50"),
    (dict(lr=-1.0), r"--lr must be in \(0.0, inf\)"),
    (dict(epochs=0), r"--epochs must be >= 1"),
    (dict(batch_size=0), r"--batch-size must be >= 1"),
    (dict(smoothing=1.5), r"--smoothing must be in \[0.0, 1.0\)"),
    (dict(warmup_epochs=-1), r"--warmup-epochs must be in \[0.0, inf\)"),
    (dict(amp=True, amp_dtype="float16", device="cpu"), r"--amp-dtype float16 is not supported on CPU"),
    (dict(amp_dtype="fp8"), r"--amp-dtype must be one of"),
    (dict(batch_size=128), r"--batch-size 128 x 1 process\(es\) is larger than the 64 training samples"),
    (dict(model=None), r"--model is required"),
    (dict(model_kwargs=dict(TINY["model_kwargs"], no_such_arg=1)), r"--model-kwargs .*rejects its arguments"),
])
def test_bad_arguments_give_clear_errors(tmp_path, override, pattern):
    with pytest.raises(ValueError, match=pattern):
        train(tiny(tmp_path, **override))


def test_img_size_too_small_for_model(tmp_path):
    # a 4-pixel image has no 16x16 patch at all: the model's own error, re-raised naming --img-size
    with pytest.raises(ValueError, match=r"--img-size 4"):
        train(tiny(tmp_path, model_kwargs=dict(TINY["model_kwargs"], patch_size=16), img_size=4))


def test_cli_errors_exit_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["--model", "resnet10t", "--lr", "-1", "--output", str(tmp_path)])
    assert exc.value.code == 2
    assert "--lr must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--model", "resnet10t", "--lr", "abc"])
    assert "--lr" in capsys.readouterr().err
    code = train_main(["--model", "resnett10", "--output", str(tmp_path / "x"), "--progress", "none"])
    assert code == 2
    assert "resnet10t" in capsys.readouterr().err


# ---------------------------------------------------------------------- optimizer & schedule
class _SSMish(nn.Module):
    def __init__(self):
        super().__init__()
        self.A_logs = nn.Parameter(torch.zeros(8, 4))
        self.Ds = nn.Parameter(torch.ones(8))
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.conv = nn.Conv2d(8, 8, 3)

    def no_weight_decay(self):
        return {"pos_embed"}


def test_param_groups_weight_decay_exemptions():
    m = _SSMish()
    names = {id(p): n for n, p in m.named_parameters()}
    groups = param_groups(m, weight_decay=0.05)
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {"proj.weight", "conv.weight"}
    assert sum(len(g["params"]) for g in groups) == len(names)


def test_layer_decay_groups_and_schedule():
    import timm
    model = timm.create_model(TINY["model"], num_classes=10, img_size=16, **TINY["model_kwargs"])
    opt = create_optimizer(model, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    assert len(scales) >= 3 and scales[-1] == 1.0 and scales[0] < 0.2
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            if p.ndim <= 1 or names[id(p)] in ("pos_embed", "cls_token"):
                assert g["weight_decay"] == 0.0, names[id(p)]
    sched = WarmupCosineScheduler(opt, 1e-3, total_steps=100, warmup_steps=10, min_lr=1e-5, warmup_lr=1e-6)
    assert sched.value(0) < sched.value(5) < sched.value(9) == pytest.approx(1e-3)
    assert sched.value(10) == pytest.approx(1e-3) and sched.value(99) == pytest.approx(1e-5, abs=1e-6)
    sched.step_update(50)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(sched.value(50) * g["lr_scale"])
    state = sched.state_dict()
    other = WarmupCosineScheduler(opt, 1e-3, total_steps=100, warmup_steps=10, min_lr=1e-5, warmup_lr=1e-6)
    assert other.last_step == 0
    other.load_state_dict(state)  # the position comes back; the shape is the configuration's
    assert other.last_step == 50
    assert opt.param_groups[-1]["lr"] == pytest.approx(sched.value(50) * opt.param_groups[-1]["lr_scale"])


def test_amp_bf16_on_cpu_and_layer_decay_run(tmp_path):
    res = train(tiny(tmp_path, epochs=1, warmup_epochs=0, amp=True, amp_dtype="bfloat16", layer_decay=0.75,
                     device="cpu"))
    assert res["epochs_completed"] == 1 and res["final_val_loss"] < 10


def test_pretrained_path_loads_local_weights(tmp_path):
    import timm
    src = timm.create_model(TINY["model"], num_classes=10, img_size=16, **TINY["model_kwargs"])
    torch.save(src.state_dict(), tmp_path / "weights.pth")
    res = train(tiny(tmp_path, epochs=1, warmup_epochs=0, pretrained_path=str(tmp_path / "weights.pth"),
                     train_samples=16, lr=1e-12, min_lr=0.0, warmup_lr=0.0, weight_decay=0.0))
    ckpt = load_checkpoint_file(os.path.join(res["output_dir"], "last.pth"))
    assert torch.allclose(ckpt["model"]["patch_embed.proj.weight"], src.state_dict()["patch_embed.proj.weight"],
                          atol=1e-6)
    with pytest.raises(ValueError, match="--pretrained-path"):
        train(tiny(tmp_path, pretrained_path=str(tmp_path / "missing.pth")))


# --------------------------------------------------------------------------- the zoo's models
def test_vmamba_trains_with_scan(tmp_path):
    pytest.importorskip("vision_ssm.models.vmamba")
    res = train(tiny(tmp_path, model="vmamba_tiny_s1l8", model_kwargs=dict(dims=16, depths=[1, 1, 1, 1]),
                     img_size=32, train_samples=32, batch_size=16, epochs=1, warmup_epochs=0, scan="bidirectional"))
    assert res["epochs_completed"] == 1 and res["steps"] == 2
    ckpt = load_checkpoint_file(os.path.join(res["output_dir"], "last.pth"))
    assert ckpt["args"]["scan"] == "bidirectional"
    # the model trained really scanned 2 directions (the default cross scan has 4): per-direction projections
    x_proj = [v for k, v in ckpt["model"].items() if k.endswith("x_proj_weight")]
    assert len(x_proj) == 4 and all(w.shape[0] == 2 for w in x_proj)


def test_model_kwargs_given_twice_is_an_error():
    from vision_ssm.train.config import parse_kwargs
    assert parse_kwargs(["a=1", "b=[1,2]"]) == {"a": 1, "b": [1, 2]}
    with pytest.raises(ValueError, match="--model-kwargs: 'a' is given twice"):
        parse_kwargs(["a=1", "a=2"])
