"""Benchmarks the selective-scan backends (ref, torch, triton) at VMamba-T and Vim-T shapes.

Prints a markdown table and writes JSON (and a PNG chart) to --out.
    python tools/benchmark_kernels.py --out outputs/kernels            # full: batch 32
    python tools/benchmark_kernels.py --batch 4 --quick                  # a quick look
    python tools/benchmark_kernels.py --plan                             # launch geometry, no GPU needed
    python tools/benchmark_kernels.py --host-overhead                    # the wrapper's time per call
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from vision_ssm.bench import kernels
from vision_ssm.bench.measure import markdown_table
from vision_ssm.cli import recorded_command
from vision_ssm.files import write_text_atomic


def run(argv=None):
    """The tool's work: the --plan / --host-overhead rows, or the suite's result (also written to --out)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/benchmark_kernels", help="output directory for JSON and PNG")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32, as in the targets)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backends", nargs="+", action="extend", choices=["ref", "torch", "cpu", "triton"], help="default: all available")
    parser.add_argument("--shapes", nargs="+", action="extend", help="shape names (default: VMamba-T[s1l8] stages 1-4 and Vim-T; "
                        "'all' adds VMamba-S/B stage 1, Vim-S, and Vim-T/S at 1248 px)")
    parser.add_argument("--dtypes", nargs="+", action="extend", choices=sorted(kernels.DTYPES),
                        help="input dtypes (default: fp32 on CPU, fp32 and bf16 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ref-budget", type=float, default=120.0, help="seconds allowed per ref measurement")
    parser.add_argument("--quick", action="store_true", help="one repeat, no ref on the largest stage")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    parser.add_argument("--no-gather", action="store_true", help="skip the explicit-gather comparison")
    parser.add_argument("--plan", action="store_true",
                        help="print the Triton launch geometry of every shape and pass (grid, programs per SM, "
                             "serial tiles, bytes per program) and exit; needs no GPU")
    parser.add_argument("--plan-device", default="H100", help="GPU whose SM count --plan uses (default H100: 132)")
    parser.add_argument("--host-overhead", action="store_true",
                        help="time the Triton wrapper per call with the kernel launches stubbed out, and exit")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")

    device = torch.device(args.device)
    shapes = kernels.default_shapes(args.batch)
    if args.shapes:
        every = shapes + kernels.larger_shapes(args.batch)
        known = {s.name for s in every}
        unknown = set(args.shapes) - known - {"all"}
        if unknown:
            parser.error(f"--shapes: unknown {sorted(unknown)}; choose from {sorted(known)} or 'all'")
        shapes = every if "all" in args.shapes else [s for s in every if s.name in args.shapes]
    dtypes = args.dtypes or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    out = Path(args.out)

    if args.plan:
        rows = kernels.launch_plan(shapes, dtypes, args.plan_device)
        print(markdown_table(rows, ["shape", "dtype", "pass_", "block_t", "block_d", "num_warps", "programs",
                                    "programs_per_sm", "warps_per_sm", "serial_tiles", "state_loop",
                                    "bytes_per_program"]))
        return rows
    if args.host_overhead:
        rows = [kernels.host_overhead_us(s, device, backward=bw) for s in shapes for bw in (False, True)]
        print(markdown_table(rows, ["shape", "pass_", "host_us"]))
        return rows

    backends = args.backends or kernels.available_backends(device)
    print(f"benchmarking {backends} {dtypes} on {kernels.device_name(device)} (batch {args.batch})", flush=True)
    result = kernels.run_suite(shapes, device, backends, repeats=1 if args.quick else args.repeats,
                               ref_budget_s=args.ref_budget, memory=not args.no_memory, dtypes=dtypes,
                               gather=not args.no_gather, progress=lambda line: print(line, flush=True))
    result["command"] = recorded_command("benchmark_kernels", argv)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "benchmark_kernels.json", json.dumps(result, indent=2))
    kernels.plot(result, str(out / "benchmark_kernels.png"))
    print()
    print(kernels.report(result))
    print(f"\nwrote {out / 'benchmark_kernels.json'} and {out / 'benchmark_kernels.png'}")
    return result


def main(argv=None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
