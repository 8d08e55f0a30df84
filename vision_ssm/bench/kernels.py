"""Selective-scan benchmark: every backend at the shapes of VMamba-T[s1l8] and Vim-T.

Reports forward and forward+backward time and peak memory, index-map mode against an explicit
gather of the K reordered sequences, and, on CUDA:

* ``copy_frac``: a device-to-device copy of the operator's minimal bytes, timed in the same run,
  over the operator's time (1.0 = the operator runs at the speed of moving its bytes once);
* ``device_ms``: the same call replayed from a CUDA graph, which leaves out the host's work
  (argument checks, launches); ``ms`` - ``device_ms`` is the host overhead the GPU waited for;
* the launch setting (tile, channels, warps) of the Triton kernels.

``launch_plan`` gives the launch geometry without a GPU; ``host_overhead_us`` the wrapper's
time per call with the kernel launch stubbed out.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import date

import torch

from ..ops import selective_scan
from ..ops.selective_scan import resolve_backend, triton_available
from .measure import device_name, markdown_table, peak_memory, sync, time_call

# Peak DRAM bandwidth (bytes/s) of devices we may meet, by a substring of their name.
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "A100-SXM4-80GB": 2.04e12,
                  "A100": 1.555e12, "L40S": 0.864e12, "RTX 4090": 1.008e12}


@dataclass
class ScanShape:
    name: str
    batch: int
    directions: int
    dim: int
    height: int
    width: int
    d_state: int
    scan: str  # strategy giving the index map
    shared_u: bool = True  # VMamba: one u for all directions; Vim: per-direction u after the conv
    gate: bool = False  # Vim applies silu(z) inside the scan

    @property
    def length(self):
        return self.height * self.width


def default_shapes(batch: int = 32) -> list[ScanShape]:
    """VMamba-T[s1l8] stages 1-4 at 224x224 (d_inner = dim, N = 1, 4 directions) and Vim-T."""
    shapes = [ScanShape(f"vmamba_t_s1l8.stage{i + 1}", batch, 4, 96 * 2 ** i, 56 >> i, 56 >> i, 1, "cross")
              for i in range(4)]
    shapes.append(ScanShape("vim_t", batch, 2, 384, 1, 197, 16, "bidirectional", shared_u=False, gate=True))
    return shapes


def larger_shapes(batch: int = 32) -> list[ScanShape]:
    """The other published sizes: VMamba-S/B stage 1 (d_inner = 2 dim) and Vim-S at 224, Vim-T/S at
    1248x1248 (78 x 78 patches and the class token)."""
    vim = dict(shared_u=False, gate=True)
    return [ScanShape("vmamba_s_s1l20.stage1", batch, 4, 192, 56, 56, 1, "cross"),
            ScanShape("vmamba_b_s1l20.stage1", batch, 4, 256, 56, 56, 1, "cross"),
            ScanShape("vim_s", batch, 2, 768, 1, 197, 16, "bidirectional", **vim),
            ScanShape("vim_t.1248px", batch, 2, 384, 1, 78 * 78 + 1, 16, "bidirectional", **vim),
            ScanShape("vim_s.1248px", batch, 2, 768, 1, 78 * 78 + 1, 16, "bidirectional", **vim)]


def make_inputs(shape: ScanShape, device, dtype=torch.float32, seed: int = 0) -> dict:
    """Realistic inputs: dt = softplus(delta + bias) in about [0.001, 0.1], A = -(1..N)."""
    import scans

    g = torch.Generator(device="cpu").manual_seed(seed)
    gd = torch.Generator(device=device).manual_seed(seed)  # large tensors drawn on the device
    B, K, D, L, N = shape.batch, shape.directions, shape.dim, shape.length, shape.d_state
    rand = lambda *s: torch.randn(*s, generator=gd, device=device).to(dtype)  # noqa: E731
    # laid out as the backbones make them: token-major, (B, [K,] L, C) in memory (SS2D's
    # channels-last conv output, the projections' outputs, Vim's u and z)
    token_major = lambda *s: rand(*s[:-2], s[-1], s[-2]).transpose(-1, -2)  # noqa: E731
    dt_init = torch.exp(torch.rand(K, D, generator=g) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3)))
                        + torch.log(torch.tensor(1e-3)))
    inputs = dict(
        u=token_major(B, D, L) if shape.shared_u else token_major(B, K, D, L),
        delta=token_major(B, K, D, L) * 0.1,
        A=-torch.arange(1, N + 1, dtype=torch.float32).repeat(K, D, 1).to(device),
        B=token_major(B, K, N, L), C=token_major(B, K, N, L),
        D=torch.ones(K, D, device=device),
        delta_bias=(dt_init + torch.log(-torch.expm1(-dt_init))).to(device),
        z=token_major(B, K, D, L) if shape.gate else None,
        index=scans.get_scan(shape.scan).orders(shape.height, shape.width, device),
    )
    if not shape.shared_u:  # sequences already in scan order (as after Vim's causal conv)
        inputs["index"] = None
    return inputs


def _grad_tensors(inputs):
    return [v for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]


def _index_mode(inputs, backend):
    return selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], D=inputs["D"],
                          z=inputs["z"], delta_bias=inputs["delta_bias"], delta_softplus=True, backend=backend,
                          index=inputs["index"], merge="sum")


def _explicit_gather(inputs, backend):
    """The copy-based alternative: materialise K reordered sequences, scan, map back, sum."""
    index = inputs["index"]
    B, K, D, L = inputs["delta"].shape
    along = lambda t, idx: torch.gather(t, -1, idx.view(1, K, *([1] * (t.dim() - 3)), L).expand(*t.shape[:-1], L))  # noqa: E731
    u = inputs["u"].unsqueeze(1).expand(B, K, D, L) if inputs["u"].dim() == 3 else inputs["u"]
    z = inputs["z"]
    y = selective_scan(along(u, index), along(inputs["delta"], index), inputs["A"], along(inputs["B"], index),
                       along(inputs["C"], index), D=inputs["D"], z=None if z is None else along(z, index),
                       delta_bias=inputs["delta_bias"], delta_softplus=True, backend=backend, merge="none")
    return along(y, index.argsort(-1)).sum(1)


MODES = {"index": _index_mode, "explicit_gather": _explicit_gather}


def _step(inputs, backend, mode, backward):
    def run():
        if backward:
            for t in _grad_tensors(inputs):
                t.requires_grad_(True)
                t.grad = None
            MODES[mode](inputs, backend).float().square().mean().backward()
        else:
            with torch.no_grad():
                MODES[mode](inputs, backend)
    return run


def bytes_moved(shape: ScanShape, element_size: int, backward: bool) -> int:
    """Bytes the operator must move: read u, delta, B, C (z), write y; the backward reads them
    again with grad_y and writes their gradients."""
    B, K, D, L, N = shape.batch, shape.directions, shape.dim, shape.length, shape.d_state
    u = B * D * L * (1 if shape.shared_u else K)
    y = B * D * L * (1 if shape.shared_u else K)  # summed over directions, or one per direction
    per_token = u + B * K * D * L + 2 * B * K * N * L + (B * K * D * L if shape.gate else 0)
    fwd = (per_token + y) * element_size
    if not backward:
        return fwd
    return fwd + (2 * per_token + y) * element_size


def time_kernel(fn, device: torch.device, repeats: int, warmup: int, budget_s: float | None = None) -> float:
    """Seconds per call.  CUDA: the median of Triton's ``do_bench`` (CUDA events, the L2 cache
    flushed before every call, calls queued without host synchronisation); CPU: ``time_call``."""
    if device.type == "cuda":
        from triton.testing import do_bench
        with torch.cuda.device(device):
            return do_bench(fn, warmup=25, rep=max(100, 20 * repeats), return_mode="median") / 1e3
    return time_call(fn, device, repeats=repeats, warmup=warmup, budget_s=budget_s)


def graph_time(fn, device: torch.device) -> float | None:
    """Seconds per call replayed from a CUDA graph (device time only), or None if ``fn`` cannot be
    captured."""
    if device.type != "cuda":
        return None
    from triton.testing import do_bench_cudagraph
    try:
        with torch.cuda.device(device):
            return do_bench_cudagraph(fn, rep=100, return_mode="median") / 1e3
    except Exception:  # noqa: BLE001 - a call that syncs or allocates outside the pool
        return None


def copy_time(nbytes: int, device: torch.device) -> float | None:
    """Seconds of a device-to-device copy moving ``nbytes`` (half read, half written)."""
    if device.type != "cuda":
        return None
    src = torch.empty(max(1, nbytes // 8), device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    seconds = time_kernel(lambda: dst.copy_(src), device, repeats=10, warmup=3)
    del src, dst
    return seconds


def copy_bandwidth(device: torch.device, nbytes: int = 2 << 30) -> float | None:
    """Measured device-to-device copy rate (bytes read + written per second), a practical ceiling."""
    seconds = copy_time(2 * nbytes, device)
    torch.cuda.empty_cache() if device.type == "cuda" else None
    return None if seconds is None else 2 * nbytes / seconds


def peak_bandwidth(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BANDWIDTH.items():
        if key in name:
            return value
    return None


def available_backends(device: torch.device, include_ref: bool = True) -> list[str]:
    backends = ["ref"] if include_ref else []
    backends.append("torch")
    if device.type == "cpu":
        from ..ops.selective_scan.cpu_scan import available
        if available():
            backends.append("cpu")
    if triton_available(device) and device.type == "cuda":
        backends.append("triton")
    return backends


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def launch_settings(shape: ScanShape, dtype: torch.dtype) -> dict:
    """The Triton launch settings used at this shape: inference forward, training forward, backward."""
    from ..ops.selective_scan import triton_config
    size = torch.empty((), dtype=dtype).element_size()
    D, L, N = shape.dim, shape.length, shape.d_state
    train = triton_config.choose("train", D, L, N, size)
    return {p: list(c) for p, c in (("fwd", triton_config.choose("fwd", D, L, N, size)), ("train", train),
                                    ("bwd", triton_config.choose("bwd", D, L, N, size, block_t=train.block_t)))}


def launch_plan(shapes: list[ScanShape], dtypes=("fp32", "bf16"), device_name: str = "H100") -> list[dict]:
    """Launch geometry of every pass at every shape, for the GPU named (its SM count): needs no GPU."""
    from ..ops.selective_scan import triton_config
    sms = triton_config.sm_count(device_name) or 132
    rows = []
    for shape in shapes:
        for dname in dtypes:
            size = torch.empty((), dtype=DTYPES[dname]).element_size()
            fwd_bytes = bytes_moved(shape, size, backward=False)
            bwd_bytes = bytes_moved(shape, size, backward=True) - fwd_bytes
            train = triton_config.choose("train", shape.dim, shape.length, shape.d_state, size)
            for pass_, nbytes in (("fwd", fwd_bytes), ("train", fwd_bytes), ("bwd", bwd_bytes)):
                geometry = triton_config.plan(shape.batch, shape.directions, shape.dim, shape.length, shape.d_state,
                                              size, nbytes, sms=sms, pass_=pass_,
                                              block_t=train.block_t if pass_ == "bwd" else None)
                rows.append(dict(shape=shape.name, dtype=dname, sms=sms, **geometry))
    return rows


def host_overhead_us(shape: ScanShape, device: torch.device, repeats: int = 200, backward: bool = False) -> dict:
    """Microseconds per call of the Triton wrapper (argument checks, allocations, launch argument
    packing) with the kernel launches replaced by no-ops: the host cost that is not the kernel."""
    from ..ops.selective_scan import triton_scan

    class _Stub:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: None

    inputs = make_inputs(shape, device)
    saved = triton_scan.selective_scan_fwd_kernel, triton_scan.selective_scan_bwd_kernel
    triton_scan.selective_scan_fwd_kernel = triton_scan.selective_scan_bwd_kernel = _Stub()
    try:
        fn = _step(inputs, "triton", "index", backward)
        fn()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync(device)
        return dict(shape=shape.name, pass_="fwd+bwd" if backward else "fwd",
                    host_us=(time.perf_counter() - t0) / repeats * 1e6)
    finally:
        triton_scan.selective_scan_fwd_kernel, triton_scan.selective_scan_bwd_kernel = saved


def run_suite(shapes: list[ScanShape], device: torch.device, backends: list[str], repeats: int = 3,
              ref_budget_s: float = 60.0, memory: bool = True, progress=print, dtypes=("fp32",),
              gather: bool = True) -> dict:
    """Times every (shape, dtype, backend, mode, pass) and returns rows plus derived ratios."""
    rows = []
    peak_bw, copy_bw = peak_bandwidth(device), copy_bandwidth(device)
    if copy_bw:
        progress(f"  device-to-device copy: {copy_bw / 1e12:.2f} TB/s"
                 + (f" ({copy_bw / peak_bw:.0%} of the {peak_bw / 1e12:.2f} TB/s peak)" if peak_bw else ""))
    for shape in shapes:
        for dname in dtypes:
            dtype = DTYPES[dname]
            inputs = make_inputs(shape, device, dtype=dtype)
            size = inputs["B"].element_size()
            copies = {bw: copy_time(bytes_moved(shape, size, bw), device) for bw in (False, True)}
            for backend in backends:
                if backend == "ref" and dtype != torch.float32:
                    continue
                modes = ["index"] if (backend == "ref" or inputs["index"] is None or not gather) \
                    else ["index", "explicit_gather"]
                for mode in modes:
                    for backward in (False, True):
                        fn = _step(inputs, resolve_backend(backend, device), mode, backward)
                        budget = ref_budget_s if backend == "ref" else None
                        seconds = time_kernel(fn, device, repeats=1 if backend == "ref" else repeats,
                                              warmup=0 if backend == "ref" else 1, budget_s=budget)
                        row = dict(shape=shape.name, dtype=dname, backend=backend, mode=mode,
                                   pass_="fwd+bwd" if backward else "fwd", ms=seconds * 1e3)
                        if backend == "triton" and mode == "index":
                            device_s = graph_time(fn, device)
                            if device_s is not None:
                                row["device_ms"] = device_s * 1e3
                            row["launch"] = launch_settings(shape, dtype)
                        if memory:
                            row["peak_mib"] = peak_memory(fn, device) / 2 ** 20
                        if backend != "ref":
                            nbytes = bytes_moved(shape, size, backward)
                            row["bytes"] = nbytes
                            if copies[backward]:
                                row["copy_ms"] = copies[backward] * 1e3
                                row["copy_frac"] = copies[backward] / seconds
                            if peak_bw:
                                row["bandwidth_frac"] = nbytes / seconds / peak_bw
                        rows.append(row)
                        progress(f"  {shape.name:24s} {dname:5s} {backend:6s} {mode:15s} {row['pass_']:7s} "
                                 f"{row['ms']:10.3f} ms" + (f" {row['peak_mib']:9.1f} MiB" if memory else "")
                                 + (f"  copy_frac {row['copy_frac']:.2f}" if "copy_frac" in row else ""))
            del inputs
    return dict(rows=rows, ratios=ratios(rows), shapes=[asdict(s) for s in shapes], device=device_name(device),
                peak_bandwidth=peak_bw, copy_bandwidth=copy_bw, dtypes=list(dtypes),
                date=date.today().isoformat(), torch=torch.__version__, triton=_triton_version(),
                threads=torch.get_num_threads())


def _triton_version():
    try:
        import triton
        return triton.__version__
    except ImportError:
        return None


def _lookup(rows, **match):
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def ratios(rows: list[dict]) -> list[dict]:
    """torch-vs-ref and triton-vs-torch speed-ups, index-vs-gather peak memory, and the backward's
    cost in forwards, per shape, dtype and pass."""
    out = []
    for shape, dname in dict.fromkeys((r["shape"], r.get("dtype", "fp32")) for r in rows):
        for pass_ in ("fwd", "fwd+bwd"):
            get = lambda **m: _lookup(rows, shape=shape, dtype=dname, pass_=pass_, **m)  # noqa: E731
            entry = dict(shape=shape, dtype=dname, pass_=pass_)
            ref, torch_, triton = (get(backend=b, mode="index") for b in ("ref", "torch", "triton"))
            if ref and torch_:
                entry["torch_speedup_vs_ref"] = ref["ms"] / torch_["ms"]
            if triton and torch_:
                entry["triton_speedup_vs_torch"] = torch_["ms"] / triton["ms"]
            cpu = get(backend="cpu", mode="index")
            if cpu and torch_:
                entry["cpu_speedup_vs_torch"] = torch_["ms"] / cpu["ms"]
            if cpu and ref:
                entry["cpu_speedup_vs_ref"] = ref["ms"] / cpu["ms"]
            if pass_ == "fwd+bwd" and triton:
                fwd = _lookup(rows, shape=shape, dtype=dname, pass_="fwd", backend="triton", mode="index")
                if fwd:
                    entry["triton_fwd_bwd_over_fwd"] = triton["ms"] / fwd["ms"]
            for backend in ("torch", "cpu", "triton"):
                idx, gat = get(backend=backend, mode="index"), get(backend=backend, mode="explicit_gather")
                if idx and gat and "peak_mib" in idx and gat["peak_mib"] > 0:
                    entry[f"{backend}_index_vs_gather_memory"] = idx["peak_mib"] / gat["peak_mib"]
            out.append(entry)
    return out


def report(result: dict) -> str:
    rows = result["rows"]
    cols = ["shape", "dtype", "backend", "mode", "pass_", "ms"]
    cols += [c for c in ("device_ms", "peak_mib", "copy_frac", "bandwidth_frac") if any(c in r for r in rows)]
    ratio_cols = ["shape", "dtype", "pass_"] + sorted({k for r in result["ratios"] for k in r} - {"shape", "dtype", "pass_"})
    bandwidth = ""
    if result.get("copy_bandwidth"):
        peak = result.get("peak_bandwidth")
        peak = f"peak {peak / 1e12:.2f} TB/s (datasheet), " if peak else ""
        bandwidth = (f"memory bandwidth: {peak}device-to-device copy {result['copy_bandwidth'] / 1e12:.2f} TB/s "
                     "(measured); copy_frac = a copy of the operator's minimal bytes, timed in this run, over "
                     "the operator's time\n\n")
    return (f"selective-scan benchmark on {result['device']}, torch {result['torch']}, {result['date']}\n\n"
            + bandwidth + markdown_table(rows, cols) + "\n\n" + markdown_table(result["ratios"], ratio_cols))


def plot(result: dict, path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["mode"] == "index" and r.get("dtype", "fp32") == "fp32"]
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(backends))
    for ax, pass_ in zip(axes, ("fwd", "fwd+bwd")):
        for i, backend in enumerate(backends):
            vals = [(_lookup(rows, shape=s, backend=backend, pass_=pass_) or {}).get("ms", float("nan")) for s in shapes]
            ax.bar([j + i * width for j in range(len(shapes))], vals, width, label=backend)
        ax.set_yscale("log")
        ax.set_xticks([j + width * (len(backends) - 1) / 2 for j in range(len(shapes))])
        ax.set_xticklabels([s.replace("vmamba_t_s1l8.", "") for s in shapes], rotation=20)
        ax.set_ylabel("ms (log)")
        ax.set_title(f"selective scan {pass_} (fp32)")
        ax.legend()
    fig.suptitle(result["device"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
