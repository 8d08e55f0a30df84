"""Shared fixtures.  Triton kernels run on the CPU through the interpreter when no GPU is present."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=[1, 5, 256], ids=lambda n: f"blocks-of-{n}")
def small_blocks(request, monkeypatch):
    """Makes the torch path cut sequences into blocks of 1 or 5 steps, so block carries are exercised
    (with sub-chunk tails inside a block of 5), or into one block for the tests' lengths."""
    from vision_ssm.ops.selective_scan import chunked
    monkeypatch.setattr(chunked, "DEFAULT_BLOCK_LEN", request.param)
    monkeypatch.setattr(chunked, "MIN_BLOCK_LEN", 1)
