"""Regenerate the model-zoo table in model_zoo.md (only between <!-- zoo:begin --> and <!-- zoo:end -->).

Every registered VMamba / Vim model: params (checked against the official code), GFLOPs at 224,
CPU inference img/s measured here (batch 8, 2 threads), GPU img/s from a GPU run of
tools/benchmark_models.py (--gpu-json), the published top-1 with its source, and the weights'
source.  Measurements are cached (--cache) and reused unless --remeasure.

    python tools/model_zoo.py                                             # measure what is not cached
    python tools/model_zoo.py --gpu-json outputs/bm_gpu/benchmark_models.json
    python tools/model_zoo.py --no-throughput                             # params and GFLOPs only
    python tools/model_zoo.py --models vmamba_tiny_s1l8 vim_tiny_patch16_224 --remeasure
"""
import argparse
import sys

from vision_ssm import zoo
from vision_ssm.bench import models as bench
from vision_ssm.cli import REPO_ROOT


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", action="extend", default=None, metavar="NAME",
                   help="subset of the zoo (default: every model vision_ssm registers)")
    p.add_argument("--out", default=str(REPO_ROOT / "model_zoo.md"), help="markdown file to update (default model_zoo.md)")
    p.add_argument("--cache", default=str(REPO_ROOT / "outputs" / "model_zoo_cache.json"),
                   help="JSON cache of measurements (default outputs/model_zoo_cache.json)")
    p.add_argument("--remeasure", action="store_true", help="measure again even where the cache has values")
    p.add_argument("--gpu-json", default=None, help="benchmark_models.py JSON of a GPU run (GPU img/s column)")
    p.add_argument("--no-throughput", action="store_true", help="params and GFLOPs only (CPU img/s from the cache)")
    p.add_argument("--batch", type=int, default=8, help="CPU throughput batch (default 8)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per throughput measurement: repeats stop past it, and a warm-up call longer "
                        "than it is taken as the measurement")
    p.add_argument("--img-size", type=int, default=224, help="resolution of GFLOPs and throughput (default 224)")
    p.add_argument("--model-kwargs", nargs="*", action="extend", default=[], metavar="[MODEL:]KEY=VALUE",
                   help="model arguments (for tests / variants; they become part of the cache key)")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                   help="measure each model in its own subprocess (default yes)")
    p.add_argument("--print-only", action="store_true", help="print the table, do not write --out")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.batch, args.threads, args.repeats, args.img_size) < 1 or args.warmup < 0:
        parser.error("--batch, --threads, --repeats and --img-size must be >= 1, --warmup >= 0")
    try:
        all_models = bench.zoo_models()
        if args.models:
            models = [bench.resolve_model(m) for m in args.models]
            foreign = [m for m in models if m not in all_models]
            if foreign:
                raise ValueError(f"--models: {', '.join(foreign)} not in the zoo; zoo models: {', '.join(all_models)}")
        else:
            models = all_models
        kwargs = bench.parse_model_kwargs(args.model_kwargs, models)
        gpu = zoo.load_gpu_results(args.gpu_json, args.img_size) if args.gpu_json else None
        zoo.load_cache(args.cache) if not args.remeasure else None
    except (ValueError, OSError) as err:
        parser.error(str(err))

    print(f"model zoo: {len(models)} models; cache {args.cache}", flush=True)
    measured = zoo.measure_zoo(models, cache_path=args.cache, remeasure=args.remeasure,
                               throughput=not args.no_throughput, img_size=args.img_size, batch=args.batch,
                               threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                               budget_s=args.budget, model_kwargs=kwargs,
                               isolate=args.isolate, progress=lambda line: print(line, flush=True))
    block, rows = zoo.generate(models, measured, batch=args.batch, threads=args.threads, gpu=gpu,
                               img_size=args.img_size)
    print()
    print(block)
    if not args.print_only:
        zoo.update_markdown(args.out, block)
        print(f"\nupdated {args.out}")
    mismatched = [r["model"] for r in rows if r["params_mismatch"]]
    if mismatched:
        print(f"warning: parameter count differs from the official code for {', '.join(mismatched)}", file=sys.stderr)
    failed = [r["model"] for r in rows if r.get("error")]
    if failed:
        print(f"warning: measurement failed for {', '.join(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
