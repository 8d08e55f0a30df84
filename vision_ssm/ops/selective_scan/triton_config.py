"""Launch settings of the Triton selective-scan kernels: no autotuning at run time.

A setting is (BLOCK_T steps per tile, BLOCK_D channels per program, num_warps). It comes from,
in this order:

1. overrides: the module attributes ``BLOCK_T_OVERRIDE`` / ``BLOCK_D_OVERRIDE`` /
   ``NUM_WARPS_OVERRIDE``, or the environment variables ``VISION_SSM_SCAN_BLOCK_T`` /
   ``VISION_SSM_SCAN_BLOCK_D`` / ``VISION_SSM_SCAN_NUM_WARPS`` (tests, tuning);
2. the table ``tuned_configs.json`` beside this file, written on a GPU by
   ``tools/tune_kernels.py``;
3. the heuristic in ``default_config``: rows of 32 bytes (8 fp32 or 16 bf16 channels), tiles of
   64 steps for inference and 32 for training.

Settings are keyed by the pass ("fwd": inference forward, "train": a forward that a backward
follows, "bwd"), by N = 1 or N > 1 and by the element size of u; never by the sequence length,
so a new image size reuses the compiled kernels. The tile is clipped to the sequence (at least
16 steps) and the channel block to the channels. A training forward and its backward share the
tile, since the backward restarts from the states the forward saved at tile ends.

Under the CPU interpreter (``TRITON_INTERPRET=1``) a small setting is used (tiles of at most 16
steps and 4 channels).
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

PASSES = ("fwd", "train", "bwd")
TABLE_PATH = Path(__file__).with_name("tuned_configs.json")

BLOCK_T_OVERRIDE: Optional[int] = None
BLOCK_D_OVERRIDE: Optional[int] = None
NUM_WARPS_OVERRIDE: Optional[int] = None

# SM counts for --plan and for the small-grid rule, by a substring of the device name
SM_COUNTS = {"H200": 132, "H100 PCIe": 114, "H100": 132, "A100": 108, "L40S": 142, "RTX 4090": 128}
ROW_BYTES = 32  # a token row of one program: one 32-byte sector
MIN_BLOCK_T = 16


class LaunchConfig(NamedTuple):
    block_t: int
    block_d: int
    num_warps: int


def interpreter_active() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def next_pow2(x: int) -> int:
    return 1 if x <= 1 else 1 << (int(x) - 1).bit_length()


def _override(env_name: str, value: Optional[int]) -> Optional[int]:
    if value is None:
        raw = os.environ.get(env_name)
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"selective_scan (triton): {env_name} must be a power of two, got {raw!r}") from None
    if value < 1 or value & (value - 1):
        raise ValueError(f"selective_scan (triton): {env_name} must be a power of two, got {value}")
    return value


def _state_class(N: int) -> str:
    return "n1" if N == 1 else "nN"


def default_config(pass_: str, N: int, element_size: int) -> LaunchConfig:
    """The heuristic setting before clipping to the shape: 32-byte rows, 8 values of a tile per
    thread (the backward is spill-free with ptxas for sm_90 at N = 1 and 16)."""
    block_d = max(1, ROW_BYTES // element_size)
    block_t = 64 if pass_ == "fwd" else 32
    return LaunchConfig(block_t, block_d, max(1, block_t * block_d // (32 * 8)))


@lru_cache(maxsize=None)
def load_table(path: str) -> dict:
    """{pass: {state class: {element size: LaunchConfig}}} from a tuning file, {} if none."""
    p = Path(path)
    if not p.is_file():
        return {}
    raw = json.loads(p.read_text())
    table = {}
    for pass_, classes in raw.get("configs", {}).items():
        if pass_ not in PASSES:
            raise ValueError(f"{p}: unknown pass {pass_!r}, expected one of {PASSES}")
        for cls, sizes in classes.items():
            for size, cfg in sizes.items():
                table.setdefault(pass_, {}).setdefault(cls, {})[int(size)] = LaunchConfig(
                    int(cfg["block_t"]), int(cfg["block_d"]), int(cfg["num_warps"]))
    return table


def base_config(pass_: str, N: int, element_size: int) -> LaunchConfig:
    """The tuned setting from the table, else the heuristic one (before clipping to a shape)."""
    tuned = load_table(str(TABLE_PATH)).get(pass_, {}).get(_state_class(N), {}).get(element_size)
    return tuned or default_config(pass_, N, element_size)


def choose(pass_: str, D: int, L: int, N: int, element_size: int,
           block_t: Optional[int] = None) -> LaunchConfig:
    """The launch setting of one pass at one shape (``block_t``: the tile a backward must use,
    that of its forward)."""
    if pass_ not in PASSES:
        raise ValueError(f"selective_scan (triton): pass must be one of {PASSES}, got {pass_!r}")
    bt = _override("VISION_SSM_SCAN_BLOCK_T", BLOCK_T_OVERRIDE)
    bd = _override("VISION_SSM_SCAN_BLOCK_D", BLOCK_D_OVERRIDE)
    nw = _override("VISION_SSM_SCAN_NUM_WARPS", NUM_WARPS_OVERRIDE)
    if interpreter_active():
        base = LaunchConfig(16, 4, 1)
    else:
        base = base_config(pass_, N, element_size)
    if pass_ == "bwd" and block_t is not None:
        bt = block_t
    bt = bt or min(base.block_t, max(MIN_BLOCK_T, next_pow2(L)))
    bd = bd or min(base.block_d, next_pow2(D))
    return LaunchConfig(bt, bd, nw or base.num_warps)


def sm_count(device_name: str) -> Optional[int]:
    for key, count in SM_COUNTS.items():
        if key in device_name:
            return count
    return None


def grid_size(batch: int, K: int, D: int, cfg: LaunchConfig) -> int:
    return batch * K * -(-D // cfg.block_d)


def plan(batch: int, K: int, D: int, L: int, N: int, element_size: int, bytes_moved: int,
         sms: int = 132, pass_: str = "fwd", block_t: Optional[int] = None) -> dict:
    """Launch geometry of one pass: grid, programs per SM, serial tiles per program, and the
    minimal bytes each program moves (``bytes_moved`` spread over the grid)."""
    cfg = choose(pass_, D, L, N, element_size, block_t=block_t)
    programs = grid_size(batch, K, D, cfg)
    return dict(pass_=pass_, block_t=cfg.block_t, block_d=cfg.block_d, num_warps=cfg.num_warps,
                programs=programs, programs_per_sm=programs / sms, warps_per_sm=programs * cfg.num_warps / sms,
                waves=-(-programs // sms), serial_tiles=-(-L // cfg.block_t),
                state_loop=N, bytes_per_program=bytes_moved / programs)
