"""Pluggable 2D scan strategies for vision state-space models.

A strategy turns an H×W grid into K token orders, ``strategy.orders(H, W, device)``: a cached
(K, H*W) int64 index map whose row k lists the row-major positions (p = i*W + j) in the order
direction k visits them.  Pass it to the selective scan as ``index=`` (every per-token tensor
stays in image order), or use ``gather`` / ``scatter`` / ``merge_outputs`` / ``scan_merge`` for
blocks that need sequences in scan order::

    import scans
    strategy = scans.get_scan("cross")                # or "local", window=7 ...
    y = selective_scan(u, delta, A, B, C, D=Ds, delta_bias=bias, delta_softplus=True,
                       index=strategy.orders(H, W, u.device), merge="sum")

Built in (``scans.list_scans()``): raster, column, bidirectional, cross, oblique, cross_oblique, zigzag,
local, atrous, hilbert, spiral, random.

A third-party strategy registers the same way::

    import numpy as np
    import scans

    @scans.register_scan("column_major")
    class ColumnMajor(scans.ScanStrategy):
        direction_names = ("col",)          # K = 1

        def build_orders(self, H, W):       # one permutation of range(H*W) per direction
            return [np.arange(H * W).reshape(H, W).T.reshape(-1)]

    strategy = scans.get_scan("column_major")
"""
from .base import MERGES, ScanStrategy
from .registry import get_scan, list_scans, register_scan, resolve_scan, unregister_scan

# Built-in families (importing registers them, in this order).
from .raster import BidirectionalScan, ColumnScan, RasterScan
from .cross import CrossScan
from .oblique import CrossObliqueScan, ObliqueScan
from .zigzag import ZigzagScan
from .local import LocalScan
from .atrous import AtrousScan
from .hilbert import HilbertScan, gilbert_order
from .spiral import SpiralScan
from .random import RandomScan

__all__ = [
    "ScanStrategy", "MERGES", "register_scan", "unregister_scan", "get_scan", "list_scans", "resolve_scan",
    "RasterScan", "ColumnScan", "BidirectionalScan", "CrossScan", "ObliqueScan", "CrossObliqueScan",
    "ZigzagScan", "LocalScan", "AtrousScan", "HilbertScan", "SpiralScan", "RandomScan", "gilbert_order",
]
