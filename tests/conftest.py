"""Shared fixtures.  Triton kernels run on the CPU through the interpreter when no GPU is present."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=["two-level", "step-by-step"])
def small_blocks(request, monkeypatch):
    """Makes the torch path cut sequences into blocks of 5 steps, so block carries are exercised,
    and runs each test with both in-block scans (sub-chunks side by side, and one step at a time)."""
    from vision_ssm.ops.selective_scan import chunked
    monkeypatch.setattr(chunked, "DEFAULT_BLOCK_LEN", 5)
    monkeypatch.setattr(chunked, "SEQUENTIAL_MIN_WIDTH", 2 ** 62 if request.param == "two-level" else 1)
