"""``scan_backend``: which selective-scan implementation a layer runs, checked when the layer is built."""
from __future__ import annotations

from vision_ssm.ops.selective_scan import BACKENDS

__all__ = ["SCAN_BACKENDS", "check_scan_backend"]

SCAN_BACKENDS = ("auto",) + tuple(BACKENDS)  # "auto": triton on CUDA, torch otherwise


def check_scan_backend(scan_backend: str) -> str:
    """Returns ``scan_backend`` if ``selective_scan`` accepts it, else raises a ValueError naming the choices."""
    if scan_backend not in SCAN_BACKENDS:
        raise ValueError(f"scan_backend must be one of {SCAN_BACKENDS}, got {scan_backend!r}")
    return scan_backend
