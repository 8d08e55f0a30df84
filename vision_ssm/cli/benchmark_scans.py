"""Compare 2D scan strategies on one backbone: parameters, GFLOPs, inference and training
throughput, peak memory and (with --train) accuracy after a short training, mean ± std over seeds.
--scaling instead sweeps resolution, SSM backbones (VMamba-T, Vim-T) against DeiT-T and Swin-T.

Prints a markdown table; writes benchmark_scans.{json,csv,md,png} (or benchmark_scaling.*) to --out.
The default backbone is a small VMamba (vmamba_tiny_s1l8 with dims=32 depths=1,1,2,1); pass
--model-kwargs with no value for the full model.

    python tools/benchmark_scans.py --quick                                   # 4 scans, 64 px, < 1 min
    python tools/benchmark_scans.py --sizes 64 128 --out outputs/benchmark_scans
    python tools/benchmark_scans.py --train digits --epochs 5 --seeds 0 1 2 --sizes 64
    python tools/benchmark_scans.py --scans cross local:window=4 hilbert --model vim_tiny_patch16_224 \\
        --model-kwargs depth=6 --sizes 224
    python tools/benchmark_scans.py --scaling --sizes 224 384 512 768 1024 --batch 2
"""
import argparse
import sys

from vision_ssm.bench import models as bench_models
from vision_ssm.bench import scans as bench_scans


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what")
    g.add_argument("--model", default=None,
                   help=f"backbone (timm name; default {bench_scans.DEFAULT_MODEL} with "
                        f"{' '.join(f'{k}={v}' for k, v in bench_scans.SMALL_KWARGS.items())})")
    g.add_argument("--model-kwargs", nargs="*", action="extend", default=None, metavar="[MODEL:]KEY=VALUE",
                   help="model arguments (Python literals, e.g. dims=32 depths=1,1,2,1); "
                        "with no value: the model's own defaults")
    g.add_argument("--scans", nargs="+", action="extend", default=None, metavar="NAME[:K=V,...]",
                   help="strategies, with options after a colon (e.g. local:window=4); default: all registered")
    g.add_argument("--sizes", nargs="+", action="extend", type=int, default=None, metavar="PX",
                   help="resolutions (default 224; --quick 64; --scaling 224 384 512 768 1024)")
    g.add_argument("--scaling", action="store_true",
                   help="resolution sweep of --models (default VMamba-T, Vim-T, DeiT-T, Swin-T): "
                        "time and memory, log-log")
    g.add_argument("--models", nargs="+", action="extend", default=None, metavar="NAME", help="--scaling: the models to sweep")
    g = p.add_argument_group("measurement")
    g.add_argument("--batch", type=int, default=None, help="batch size (default 8; --quick 2)")
    g.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    g.add_argument("--amp", choices=bench_models.AMP_CHOICES, default="none")
    g.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3; --quick 1)")
    g.add_argument("--warmup", type=int, default=1)
    g.add_argument("--budget", type=float, default=None, help="seconds per measurement: repeats stop past it, and a warm-up call longer "
                        "than it is taken as the measurement (one call for very slow configurations)")
    g.add_argument("--no-flops", action="store_true", help="skip GFLOPs counting")
    g.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    g.add_argument("--no-train-throughput", action="store_true", help="skip training (fwd+bwd) throughput")
    g.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="one subprocess per measurement (default: no; yes with --scaling)")
    g = p.add_argument_group("accuracy (optional short training per scan)")
    g.add_argument("--train", default=None, metavar="TASK",
                   help="digits, pathfinder or an ImageFolder directory (train/ and val/)")
    g.add_argument("--epochs", type=int, default=None, help="training epochs per run (default 5)")
    g.add_argument("--seeds", nargs="+", action="extend", type=int, default=None, help="training seeds (default 0 1 2)")
    g.add_argument("--train-img-size", type=int, default=None, help="training resolution (default 32)")
    g.add_argument("--train-batch", type=int, default=None, help="training batch size (default 64)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the engine's)")
    g.add_argument("--train-samples", type=int, default=None, help="limit / generate this many training samples")
    g.add_argument("--val-samples", type=int, default=None, help="limit / generate this many validation samples")
    g.add_argument("--pathfinder-difficulty", default=None,
                   help="pathfinder preset: trivial | easy | medium | hard (default: the engine's, medium)")
    g.add_argument("--cache-dir", default=None, help="cache generated pathfinder data (.npz) here")
    g.add_argument("--train-options", nargs="*", action="extend", default=None, metavar="KEY=VALUE",
                   help="further training-engine settings (tools/train.py's names with underscores, "
                        "Python literals), e.g. smoothing=0 drop_path=0 warmup_epochs=0.3")
    g.add_argument("--quick", action="store_true",
                   help=f"{len(bench_scans.QUICK_SCANS)} scans ({' '.join(bench_scans.QUICK_SCANS)}), "
                        f"{bench_scans.QUICK_SIZE} px, batch 2, one repeat, no training (about a minute on 2 cores)")
    p.add_argument("--out", default=None, help="output directory (default outputs/benchmark_scans or _scaling)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.batch = 2 if args.batch is None else args.batch
        args.repeats = 1 if args.repeats is None else args.repeats
    batch = 8 if args.batch is None else args.batch
    repeats = 3 if args.repeats is None else args.repeats
    if batch < 1 or repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be >= 1, --warmup >= 0")
    if args.sizes and min(args.sizes) < 1:
        parser.error("--sizes must be positive")
    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available here")
    progress = lambda line: print(line, flush=True)  # noqa: E731

    if args.scaling:
        return _scaling(parser, args, batch, repeats, progress)
    if args.models:
        parser.error("--models is for --scaling; use --model for the scan benchmark")
    try:
        model = bench_models.resolve_model(args.model or bench_scans.DEFAULT_MODEL)
        if args.model_kwargs is None:
            kwargs = dict(bench_scans.SMALL_KWARGS) if args.model is None else {}
        else:
            kwargs = bench_models.parse_model_kwargs(args.model_kwargs, [model])[model]
        scan_list = bench_scans.parse_scans(args.scans, quick=args.quick)
        if args.train:
            bench_scans._resolve_task(args.train)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    sizes = args.sizes or ([bench_scans.QUICK_SIZE] if args.quick else [224])
    train_options = _train_options(parser, args)
    seeds = args.seeds or [0, 1, 2]
    if args.train:
        try:  # a bad training setting fails now, not after the measurements
            bench_scans.check_training(model, scan_list[0], args.train, model_kwargs=kwargs, seed=seeds[0],
                                       device=args.device, options=train_options)
        except ValueError as err:
            parser.error(str(err))
    out = args.out or "outputs/benchmark_scans"
    try:
        result = bench_scans.run_scan_benchmark(
            model, scan_list, sizes, model_kwargs=kwargs, batch=batch, device=args.device, threads=args.threads,
            amp=args.amp, train_throughput=not args.no_train_throughput, memory=not args.no_memory,
            flops=not args.no_flops, repeats=repeats, warmup=args.warmup, budget_s=args.budget,
            isolate=bool(args.isolate), task=args.train, train_options=train_options, seeds=seeds,
            out_dir=out, progress=progress)
    except ValueError as err:  # a training configuration error
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = bench_scans.write_outputs(result, out)
    print()
    print(bench_scans.report(result))
    print(f"\nwrote {', '.join(paths.values())}")
    return 1 if all(r.get("error") for r in result["rows"]) else 0


TRAINING_FLAGS = ("epochs", "seeds", "train_img_size", "train_batch", "lr", "train_samples", "val_samples",
                  "pathfinder_difficulty", "cache_dir", "train_options")


def _train_options(parser, args) -> dict:
    """TrainConfig settings of the --train runs; training flags without --train are an error."""
    given = [f"--{k.replace('_', '-')}" for k in TRAINING_FLAGS if getattr(args, k) is not None]
    if not args.train:
        if given:
            parser.error(f"{', '.join(given)} only apply with --train TASK")
        return {}
    epochs = 5 if args.epochs is None else args.epochs
    options = dict(epochs=epochs, img_size=32 if args.train_img_size is None else args.train_img_size,
                   batch_size=64 if args.train_batch is None else args.train_batch)
    for key in ("lr", "train_samples", "val_samples", "pathfinder_difficulty", "cache_dir"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if epochs < 3:
        options["warmup_epochs"] = 0.0
    try:
        options.update(bench_scans.parse_train_options(args.train_options or []))
    except ValueError as err:
        parser.error(str(err))
    return options


def _scaling(parser, args, batch, repeats, progress) -> int:
    if args.train:
        parser.error("--train does not apply to --scaling")
    _train_options(parser, args)  # training flags without --train are an error
    if args.scans or args.model:
        parser.error("--scans / --model do not apply to --scaling (use --models)")
    if args.no_flops or args.no_train_throughput:
        parser.error("--no-flops / --no-train-throughput do not apply to --scaling (it counts neither)")
    try:
        models = [bench_models.resolve_model(m) for m in (args.models or bench_models.SCALING_MODELS)]
        kwargs = bench_models.parse_model_kwargs(args.model_kwargs or [], models)
        if args.quick and not args.model_kwargs:
            kwargs = {m: dict(bench_models.QUICK_KWARGS.get(m, {})) for m in models}
    except ValueError as err:
        parser.error(str(err))
    sizes = args.sizes or ([64, 96, 128] if args.quick else list(bench_scans.SCALING_SIZES))
    isolate = (not args.quick) if args.isolate is None else args.isolate
    result = bench_scans.run_scaling(models, sizes, model_kwargs=kwargs, batch=batch, device=args.device,
                                     threads=args.threads, amp=args.amp,
                                     train_throughput=False, memory=not args.no_memory, repeats=repeats,
                                     warmup=args.warmup, budget_s=args.budget, isolate=isolate, progress=progress)
    paths = bench_scans.write_scaling_outputs(result, args.out or "outputs/benchmark_scaling")
    print()
    print(bench_scans.scaling_report(result))
    print(f"\nwrote {', '.join(paths.values())}")
    return 1 if all(r.get("error") for r in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
