"""Per-epoch metrics (CSV + JSON), the loss/accuracy plot, and progress output."""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
import time
from typing import Any, Sequence

from ..files import atomic_path, write_text_atomic

__all__ = ["write_metrics", "plot_curves", "Progress", "get_logger"]


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (so redirections and capture work)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def get_logger() -> logging.Logger:
    logger = logging.getLogger("vision_ssm.train")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def write_metrics(output_dir: str, history: Sequence[dict[str, Any]], summary: dict[str, Any] | None = None,
                  step_log: Sequence[dict[str, Any]] | None = None) -> None:
    """``metrics.csv`` (one row an epoch), ``metrics.json`` (epochs + summary) and ``steps.csv``."""
    os.makedirs(output_dir, exist_ok=True)
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    write_text_atomic(os.path.join(output_dir, "metrics.csv"), buf.getvalue())
    write_text_atomic(os.path.join(output_dir, "metrics.json"),
                json.dumps({"epochs": list(history), "summary": summary or {}}, indent=2) + "\n")
    if step_log is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["step", "epoch", "loss", "lr"], lineterminator="\n")
        writer.writeheader()
        for row in step_log:
            writer.writerow(row)
        write_text_atomic(os.path.join(output_dir, "steps.csv"), buf.getvalue())


def plot_curves(output_dir: str, history: Sequence[dict[str, Any]], title: str = "") -> str | None:
    """``curves.png``: train/val loss and val top-1 (and EMA top-1) against epochs (matplotlib Agg)."""
    if not history:
        return None
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [r.get("train_loss", math.nan) for r in history], "o-", label="train loss")
    ax1.plot(epochs, [r.get("val_loss", math.nan) for r in history], "s-", label="val loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.plot(epochs, [r.get("val_top1", math.nan) for r in history], "o-", label="val top-1")
    if any("ema_val_top1" in r for r in history):
        ax2.plot(epochs, [r.get("ema_val_top1", math.nan) for r in history], "s--", label="EMA val top-1")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.grid(alpha=0.3)
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.path.join(output_dir, "curves.png")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    return path


class Progress:
    """A tqdm bar on a terminal, else a line every ``log_interval`` steps (and none off rank 0)."""

    def __init__(self, total: int, desc: str, mode: str = "auto", log_interval: int = 50,
                 enabled: bool = True, logger: logging.Logger | None = None):
        self.total, self.desc, self.log_interval = total, desc, max(1, log_interval)
        self.logger = logger or get_logger()
        self.enabled = enabled and mode != "none"
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.bar = None
        self.count = 0
        self.start = time.time()
        if self.enabled and mode == "bar":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, **metrics: float) -> None:
        self.count += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
        elif self.count % self.log_interval == 0 or self.count == self.total:
            rate = self.count / max(1e-9, time.time() - self.start)
            text = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            self.logger.info(f"{self.desc} [{self.count}/{self.total}] {text} ({rate:.1f} it/s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
