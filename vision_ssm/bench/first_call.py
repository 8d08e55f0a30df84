"""Time to the end of a model's first forward + backward in a fresh process: the cost of
compiling the scan kernels (and cuDNN's first calls) that a user pays once per process, or once
per machine with a warm Triton cache. Prints one JSON line.

    TRITON_CACHE_DIR=$(mktemp -d) python -m vision_ssm.bench.first_call --model vmamba_tiny_s1l8
"""
from __future__ import annotations

import argparse
import json
import os
import time


def _process_age_s() -> float:
    """Seconds since this process started (Linux), imports included."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vmamba_tiny_s1l8")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="bf16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    args = p.parse_args(argv)

    import torch
    import timm

    import vision_ssm  # noqa: F401  (registers the models)
    imported = _process_age_s()
    device = torch.device(args.device)
    model = timm.create_model(args.model, num_classes=1000).to(device)
    images = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(images)
        out.float().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    start = time.perf_counter()
    step()
    second = time.perf_counter() - start
    result = dict(model=args.model, batch=args.batch, img_size=args.img_size, amp=args.amp,
                  import_s=imported, first_step_s=first, second_step_s=second,
                  process_to_first_step_end_s=_process_age_s() - second,
                  triton_cache_dir=os.environ.get("TRITON_CACHE_DIR"), torch=torch.__version__,
                  device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
