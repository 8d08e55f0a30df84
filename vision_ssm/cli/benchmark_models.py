"""Throughput and peak memory of whole models: VMamba-T[s1l8] vs Swin-T and ConvNeXt-T at 224,
Vim-T vs DeiT-T at 224, 512 and 1024 (by default), with their ratios side by side.

Prints a markdown table; writes benchmark_models.json and benchmark_models.png (throughput and
memory against resolution) to --out.  Each (model, size) runs in its own subprocess.

    python tools/benchmark_models.py --out outputs/benchmark_models                 # CPU: batch 8, 2 threads
    python tools/benchmark_models.py --device cuda --amp bf16 --out outputs/bm_gpu  # GPU: batch 128, +training
    python tools/benchmark_models.py --models zoo --sizes 224 --device cuda --amp bf16  # all zoo models
        (its JSON feeds tools/model_zoo.py --gpu-json)
    python tools/benchmark_models.py --quick                                        # miniature models, seconds
    python tools/benchmark_models.py --free-scan --out outputs/bm_free_scan         # the SSMs with a zero-cost scan
    python tools/benchmark_models.py --models vmamba_tiny_s1l8 --model-kwargs dims=16 depths=1,1,1,1 \\
        --sizes 64 --batch 1 --repeats 1
"""
import argparse
import sys

from vision_ssm.bench import models as bench
from vision_ssm.cli import recorded_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", action="extend", default=None, metavar="NAME",
                   help="timm names or aliases (vmamba_t, swin_t, convnext_t, vim_t, deit_t); 'zoo' = every "
                        "vision_ssm model (default: the VMamba-T/Swin-T/ConvNeXt-T and Vim-T/DeiT-T plan)")
    p.add_argument("--sizes", nargs="+", action="extend", type=int, default=None, metavar="PX",
                   help="resolutions for every model "
                        "(default: 224 for VMamba/Swin/ConvNeXt, 224 512 1024 for Vim/DeiT)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 8 on CPU, 128 on CUDA)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads; default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--amp", choices=bench.AMP_CHOICES, default="none", help="autocast dtype (default none = fp32)")
    p.add_argument("--train", dest="train", action=argparse.BooleanOptionalAction, default=None,
                   help="also training throughput (fwd+bwd; default: on for CUDA, off for CPU)")
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    p.add_argument("--flops", action="store_true", help="also count GFLOPs at each size")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats, median reported (default 3 CPU, 10 CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 1 CPU, 3 CUDA)")
    p.add_argument("--budget", type=float, default=None, help="seconds per measurement: repeats stop past it, and a warm-up call longer "
                        "than it is taken as the measurement (one call for very slow configurations)")
    p.add_argument("--model-kwargs", nargs="*", action="extend", default=[], metavar="[MODEL:]KEY=VALUE",
                   help="model arguments (Python literals); MODEL: prefix = only that model")
    p.add_argument("--free-scan", action="store_true",
                   help="run the SSM models with the selective scan replaced by a zero-cost stand-in "
                        "(zeros): the bound that no scan backend can beat")
    p.add_argument("--pairs", nargs="+", action="extend", default=None, metavar="A:B",
                   help="ratio pairs (default vmamba_t:swin_t vmamba_t:convnext_t vim_t:deit_t)")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="one subprocess per (model, size) (default: yes, except with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="miniature models at 64 and 96 px, batch 2, one repeat, in-process: checks the pipeline")
    p.add_argument("--out", default="outputs/benchmark_models", help="output directory (JSON, PNG)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.sizes = args.sizes or [64, 96]
        args.batch = 2 if args.batch is None else args.batch
        args.repeats = 1 if args.repeats is None else args.repeats
        args.warmup = 1 if args.warmup is None else args.warmup
        args.isolate = False if args.isolate is None else args.isolate
    batch = args.batch if args.batch is not None else (128 if cuda else 8)
    repeats = args.repeats if args.repeats is not None else (10 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    if batch < 1 or repeats < 1 or warmup < 0 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be >= 1, --warmup >= 0")
    if args.sizes and min(args.sizes) < 1:
        parser.error("--sizes must be positive")
    if cuda:
        import torch
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available here")
    try:
        models = args.models
        if models and "zoo" in models:
            models = [m for m in models if m != "zoo"] + bench.zoo_models()
        plan = bench.make_plan(models, args.sizes)
        names = [m for m, _ in plan]
        kwargs = bench.parse_model_kwargs(args.model_kwargs, names)
        if args.quick:
            for m in names:
                if not args.model_kwargs:
                    kwargs[m] = dict(bench.QUICK_KWARGS.get(m, {}))
        pairs = bench.DEFAULT_PAIRS
        if args.pairs:
            pairs = []
            for item in args.pairs:
                if item.count(":") != 1:
                    raise ValueError(f"--pairs: expected A:B, got {item!r}")
                a, b = item.split(":")
                pairs.append((bench.resolve_model(a), bench.resolve_model(b)))
    except ValueError as err:
        parser.error(str(err))

    result = bench.run_benchmark(
        plan, batch=batch, device=args.device, threads=args.threads, amp=args.amp,
        train=cuda if args.train is None else args.train, memory=not args.no_memory, flops=args.flops,
        repeats=repeats, warmup=warmup, budget_s=args.budget, model_kwargs=kwargs,
        isolate=True if args.isolate is None else args.isolate, pairs=pairs, free_scan=args.free_scan,
        progress=lambda line: print(line, flush=True))
    result["command"] = recorded_command("benchmark_models", argv)
    paths = bench.write_outputs(result, args.out, "benchmark_models")
    print()
    print(bench.report(result))
    print(f"\nwrote {paths['json']} and {paths['png']}")
    failed = [r for r in result["rows"] if r.get("error")]
    if failed and len(failed) == len(result["rows"]):
        print("every measurement failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
