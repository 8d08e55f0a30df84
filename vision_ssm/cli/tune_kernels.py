"""Tunes the Triton selective-scan launch settings on this GPU and writes the table the kernels
read (vision_ssm/ops/selective_scan/tuned_configs.json), plus every timing to --out.

    python tools/tune_kernels.py --out outputs/tune            # about a minute on an H100
"""
import argparse
import json
import sys
from pathlib import Path

from vision_ssm.bench import tune
from vision_ssm.cli import recorded_command
from vision_ssm.files import write_text_atomic


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/tune", help="directory for tune.json (every timing)")
    p.add_argument("--batch", type=int, default=32, help="batch of the tuning shapes (default 32)")
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--workers", type=int, default=0, help="processes compiling candidates in parallel first (default 0: none)")
    p.add_argument("--no-write", action="store_true", help="do not overwrite the shipped table")
    args = p.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        p.error("tuning needs a CUDA GPU")
    result = tune.tune(args.batch, tuple(args.dtypes), args.workers, progress=lambda s: print(s, flush=True))
    result["command"] = recorded_command("tune_kernels", argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "tune.json", json.dumps(result, indent=1))
    if not args.no_write:
        tune.write_table(result)
        print(f"wrote {tune.triton_config.TABLE_PATH}")
    print(json.dumps(result["configs"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
