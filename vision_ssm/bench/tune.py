"""Tuning of the Triton selective-scan launch settings on a GPU: the table ``triton_config`` reads.

For each state class (N = 1: VMamba-T's four stages; N > 1: Vim-T at 224 and 1248 px) and
element size, every candidate setting is timed at every shape of its class; the setting with
the smallest geometric mean of (its time / the best time at that shape) wins. The inference
forward is tuned alone; the training forward and the backward share the tile, so they are
tuned together on the sum of their times.

Compiling the candidates dominates a cold run; with ``workers`` > 0 they are compiled first in
parallel worker processes (one small launch each, filling Triton's on-disk cache).
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date

import torch

from ..ops.selective_scan import triton_config
from ..ops.selective_scan.canonical import canonicalize
from ..files import write_text_atomic
from .kernels import DTYPES, ScanShape, default_shapes, larger_shapes, make_inputs

# (block_t, row bytes, num_warps): row bytes / element size = channels per program. The
# candidates hold 8-16 values of a tile per thread for fp32 (ptxas: spill-free on sm_90).
FWD_CANDIDATES = [(64, 32, 2), (128, 32, 4), (32, 32, 1)]
STEP_CANDIDATES = [(32, 32, 1), (64, 32, 2), (64, 16, 1)]  # training forward and backward together


def tuning_shapes(batch: int = 32) -> dict:
    """The shapes each state class is tuned on."""
    every = {s.name: s for s in default_shapes(batch) + larger_shapes(batch)}
    n1 = [every[f"vmamba_t_s1l8.stage{i}"] for i in range(1, 5)]
    nN = [every["vim_t"], replace(every["vim_t.1248px"], batch=max(1, batch // 4))]
    return {"n1": n1, "nN": nN}


def _config(block_t: int, row_bytes: int, num_warps: int, element_size: int):
    return triton_config.LaunchConfig(block_t, max(1, row_bytes // element_size), num_warps)


def _set_override(cfg):
    triton_config.BLOCK_T_OVERRIDE = None if cfg is None else cfg.block_t
    triton_config.BLOCK_D_OVERRIDE = None if cfg is None else cfg.block_d
    triton_config.NUM_WARPS_OVERRIDE = None if cfg is None else cfg.num_warps


def _prepared(shape: ScanShape, dtype: torch.dtype, device):
    from ..ops.selective_scan.triton_scan import int32_index
    inp = make_inputs(shape, device, dtype=dtype)
    args, _ = canonicalize(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                           inp["delta_bias"], True, inp["index"],
                           "sum" if inp["index"] is not None else "none")
    index = int32_index(args.index) if args.index is not None else None
    return args, index


def _fwd_call(args, index, training):
    from ..ops.selective_scan.triton_scan import _launch_fwd
    return lambda: _launch_fwd(args.u, args.delta, args.A, args.B, args.C, args.D, args.z, args.delta_bias,
                               index, True, args.merge, training, False)


def _bwd_call(args, index, saved):
    from ..ops.selective_scan.triton_scan import _launch_bwd
    y, states, _last, ypre, block_t = saved
    gy = torch.randn_like(y)
    return lambda: _launch_bwd(gy, None, args.u, args.delta, args.A, args.B, args.C, args.D, args.z,
                               args.delta_bias, index, states, ypre, block_t, True, args.merge)


def _jobs(shapes_by_class, dtypes):
    """Every (class, dtype, pass, config) to compile."""
    jobs = []
    for cls in shapes_by_class:
        for dname in dtypes:
            size = torch.empty((), dtype=DTYPES[dname]).element_size()
            for cand in FWD_CANDIDATES:
                jobs.append((cls, dname, "fwd", tuple(_config(*cand, size))))
            for cand in STEP_CANDIDATES:
                cfg = tuple(_config(*cand, size))
                jobs.append((cls, dname, "train", cfg))
                jobs.append((cls, dname, "bwd", cfg))
    return jobs


def _compile_worker(jobs, shapes_by_class):
    """Runs each job once on batch-1 inputs (same kernel specialisation), filling the cache."""
    failures = []
    device = torch.device("cuda")
    for cls, dname, pass_, cfg in jobs:
        for shape in shapes_by_class[cls]:  # tiles clipped to short sequences are other variants
            try:
                args, index = _prepared(replace(shape, batch=1), DTYPES[dname], device)
                _set_override(triton_config.LaunchConfig(*cfg))
                if pass_ == "bwd":
                    _bwd_call(args, index, _fwd_call(args, index, True)())()
                else:
                    _fwd_call(args, index, pass_ == "train")()
                torch.cuda.synchronize()
            except Exception as err:  # noqa: BLE001 - reported, the candidate is skipped later
                failures.append((cls, dname, pass_, cfg, shape.name, repr(err)[:300]))
    return failures


def precompile(shapes_by_class, dtypes, workers: int = 8, progress=print) -> list:
    jobs = _jobs(shapes_by_class, dtypes)
    t0 = time.perf_counter()
    chunks = [jobs[i::workers] for i in range(workers)]
    ctx = torch.multiprocessing.get_context("spawn")
    failures = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for result in pool.map(_compile_worker, chunks, [shapes_by_class] * workers):
            failures += result
    progress(f"  compiled {len(jobs)} kernel variants in {time.perf_counter() - t0:.1f} s "
             f"({len(failures)} failed)")
    return failures


def _time(fn) -> float:
    from triton.testing import do_bench
    return do_bench(fn, warmup=5, rep=20, return_mode="median") / 1e3


def _geomean_slowdown(times: dict, keys) -> dict:
    """{candidate: geometric mean over shapes of time / best time at that shape}."""
    best = {s: min(t[s] for t in times.values() if s in t) for s in keys}
    return {c: math.exp(sum(math.log(t[s] / best[s]) for s in keys) / len(keys))
            for c, t in times.items() if all(s in t for s in keys)}


def tune(batch: int = 32, dtypes=("fp32", "bf16"), workers: int = 0, progress=print) -> dict:
    device = torch.device("cuda")
    shapes_by_class = tuning_shapes(batch)
    failures = precompile(shapes_by_class, dtypes, workers, progress) if workers > 0 else []
    configs, details = {}, []
    try:
        for cls, shapes in shapes_by_class.items():
            for dname in dtypes:
                dtype = DTYPES[dname]
                size = torch.empty((), dtype=dtype).element_size()
                prepared = {s.name: _prepared(s, dtype, device) for s in shapes}
                names = list(prepared)
                fwd_times = {}
                for cand in FWD_CANDIDATES:
                    cfg = _config(*cand, size)
                    _set_override(cfg)
                    fwd_times[cfg] = {}
                    for name, (args, index) in prepared.items():
                        try:
                            fwd_times[cfg][name] = _time(_fwd_call(args, index, False))
                        except Exception as err:  # noqa: BLE001
                            details.append(dict(cls=cls, dtype=dname, pass_="fwd", config=list(cfg), error=repr(err)[:200]))
                fwd_score = _geomean_slowdown(fwd_times, names)
                best_fwd = min(fwd_score, key=fwd_score.get)
                train_times, bwd_times = {}, {}
                for cand in STEP_CANDIDATES:
                    cfg = _config(*cand, size)
                    _set_override(cfg)
                    train_times[cfg], bwd_times[cfg] = {}, {}
                    for name, (args, index) in prepared.items():
                        try:
                            train_times[cfg][name] = _time(_fwd_call(args, index, True))
                            saved = _fwd_call(args, index, True)()
                            bwd_times[cfg][name] = _time(_bwd_call(args, index, saved))
                            del saved
                        except Exception as err:  # noqa: BLE001
                            details.append(dict(cls=cls, dtype=dname, pass_="train", config=list(cfg),
                                                error=repr(err)[:200]))
                step_times = {c: {n: train_times[c][n] + bwd_times[c][n] for n in names
                                  if n in train_times[c] and n in bwd_times[c]} for c in train_times}
                step_score = _geomean_slowdown(step_times, names)
                bt_train = bt_bwd = min(step_score, key=step_score.get)
                for pass_, cfg in (("fwd", best_fwd), ("train", bt_train), ("bwd", bt_bwd)):
                    configs.setdefault(pass_, {}).setdefault(cls, {})[str(size)] = cfg._asdict()
                ms = lambda times: {str(list(c)): {n: t * 1e3 for n, t in ts.items()} for c, ts in times.items()}  # noqa: E731
                details.append(dict(cls=cls, dtype=dname, shapes=names, fwd=ms(fwd_times), train=ms(train_times),
                                    bwd=ms(bwd_times), fwd_score={str(list(c)): v for c, v in fwd_score.items()},
                                    step_score={str(list(c)): v for c, v in step_score.items()},
                                    chosen={"fwd": list(best_fwd), "train": list(bt_train), "bwd": list(bt_bwd)}))
                progress(f"  {cls} {dname}: fwd {tuple(best_fwd)}, train {tuple(bt_train)}, bwd {tuple(bt_bwd)}")
                del prepared
                torch.cuda.empty_cache()
    finally:
        _set_override(None)
    for pass_ in configs:  # element sizes not tuned take the tuned one's tile and channels
        for cls, sizes in configs[pass_].items():
            for dname in DTYPES:
                size = str(torch.empty((), dtype=DTYPES[dname]).element_size())
                if size not in sizes and sizes:
                    sizes[size] = dict(next(iter(sizes.values())), inherited=True)
    import triton
    return dict(configs=configs, device=torch.cuda.get_device_name(device), date=date.today().isoformat(),
                torch=torch.__version__, triton=triton.__version__, batch=batch,
                command="python tools/tune_kernels.py", compile_failures=[list(f) for f in failures],
                details=details)


def write_table(result: dict, path=None) -> None:
    """Writes the table the kernels read (the configs plus where they were measured)."""
    path = path or triton_config.TABLE_PATH
    table = {k: result[k] for k in ("configs", "device", "date", "torch", "triton", "batch", "command")}
    write_text_atomic(path, json.dumps(table, indent=1))
    triton_config.load_table.cache_clear()
