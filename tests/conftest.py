"""Shared fixtures.  Triton kernels run on the CPU through the interpreter when no GPU is present."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=[(1, "two-level"), (5, "two-level"), (256, "two-level"), (5, "step-by-step"),
                        (256, "step-by-step")], ids=lambda p: f"blocks-of-{p[0]}-{p[1]}")
def small_blocks(request, monkeypatch):
    """Makes the torch path cut sequences into blocks of 1 or 5 steps, so block carries are exercised
    (with sub-chunk tails inside a block of 5), or into one block for the tests' lengths; blocks are
    scanned two-level or step by step (the tests' steps are narrower than the width that picks it)."""
    from vision_ssm.ops.selective_scan import chunked
    block_len, scan = request.param
    monkeypatch.setattr(chunked, "DEFAULT_BLOCK_LEN", block_len)
    monkeypatch.setattr(chunked, "MIN_BLOCK_LEN", 1)
    monkeypatch.setattr(chunked, "STEP_BY_STEP_WIDTH", 1 if scan == "step-by-step" else 1 << 62)
