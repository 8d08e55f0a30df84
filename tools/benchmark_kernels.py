#!/usr/bin/env python
"""Benchmarks the selective-scan backends (ref, torch, triton) at VMamba-T and Vim-T shapes.

Prints a markdown table and writes JSON (and a PNG chart) to --out.
    python tools/benchmark_kernels.py --out outputs/kernels            # full: batch 32
    python tools/benchmark_kernels.py --batch 4 --quick                  # a quick look
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402

from vision_ssm.bench import kernels  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/benchmark_kernels", help="output directory for JSON and PNG")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32, as in the targets)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backends", nargs="+", action="extend", choices=["ref", "torch", "triton"], help="default: all available")
    parser.add_argument("--shapes", nargs="+", action="extend", help="shape names (default: VMamba-T[s1l8] stages 1-4 and Vim-T; "
                        "'all' adds VMamba-S/B stage 1, Vim-S, and Vim-T/S at 1248 px)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ref-budget", type=float, default=120.0, help="seconds allowed per ref measurement")
    parser.add_argument("--quick", action="store_true", help="one repeat, no ref on the largest stage")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
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
    backends = args.backends or kernels.available_backends(device)
    print(f"benchmarking {backends} on {kernels.device_name(device)} (batch {args.batch})", flush=True)
    result = kernels.run_suite(shapes, device, backends, repeats=1 if args.quick else args.repeats,
                               ref_budget_s=args.ref_budget, memory=not args.no_memory,
                               progress=lambda line: print(line, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark_kernels.json").write_text(json.dumps(result, indent=2))
    kernels.plot(result, str(out / "benchmark_kernels.png"))
    print()
    print(kernels.report(result))
    print(f"\nwrote {out / 'benchmark_kernels.json'} and {out / 'benchmark_kernels.png'}")


if __name__ == "__main__":
    main()
