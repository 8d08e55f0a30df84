"""Timing and peak-memory measurement shared by the benchmark tools."""
from __future__ import annotations

import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch


def device_name(device: torch.device | str) -> str:
    """The GPU's name, or the CPU's with the torch thread count (as result files record it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# glibc malloc: M_TRIM_THRESHOLD and M_MMAP_THRESHOLD (mallopt parameters), and the values its dynamic
# thresholds settle at once a process has freed large blocks (32 MiB mmap, twice that trim, 64-bit).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_STEADY = (32 << 20, 64 << 20)
_RETURN_AT_ONCE = (64 << 10, 128 << 10)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _glibc()


def _malloc_thresholds(mmap_bytes: int, trim_bytes: int) -> None:
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_bytes)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, trim_bytes)


def steady_allocator() -> None:
    """Timing conditions: glibc's thresholds as a long-running process reaches them, so that freed
    tensors are reused from the heap rather than faulted in afresh each call (as every allocator
    in real use does); all backends and models are timed under the same setting."""
    _malloc_thresholds(*_STEADY)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1,
              budget_s: float | None = None) -> float:
    """Median wall time of ``fn`` in seconds (after warm-up); stops early past ``budget_s``."""
    if device.type == "cpu":
        steady_allocator()
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return statistics.median(times)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def reset_peak_rss():
    """Resets the kernel's high-water mark of this process (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak extra memory (bytes) that ``fn`` allocates above what is live before the call.

    CUDA: the caching allocator's peak.  CPU: the process's resident high-water mark, reset
    just before the call (Linux), minus the resident size at that moment; during the call glibc
    maps every block above 64 KiB on its own and unmaps it when freed, so the high-water mark
    follows the bytes alive (the allocator returns to its timing setting afterwards).
    """
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    if _LIBC is None:
        raise RuntimeError("CPU peak memory needs glibc (mallopt) to return freed blocks at once")
    _malloc_thresholds(*_RETURN_AT_ONCE)
    _LIBC.malloc_trim(0)
    try:
        if not reset_peak_rss():
            raise RuntimeError("cannot reset the peak RSS on this system (needs Linux /proc/self/clear_refs)")
        base = _rss_bytes()
        fn()
        return max(0, _peak_rss_bytes() - base)
    finally:
        steady_allocator()


def run_isolated(module: str, payload: dict, timeout: float = 1800) -> dict:
    """Runs ``python -m module`` with a JSON payload on stdin in a fresh process; returns its JSON."""
    proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
