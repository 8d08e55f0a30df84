"""Convert an official VMamba / Vim checkpoint into a clean timm-style .safetensors file.

The weights are mapped to our model's keys (legacy VMamba names included), loaded into the model
with zero missing / unexpected keys (otherwise they are listed and the exit status is 1), and
written as a state dict only, with the source file and model name in the safetensors header.

    python tools/convert_checkpoint.py --model vmamba_tiny_s1l8 vssm1_tiny_0230s_ckpt_epoch_264.pth
    python tools/convert_checkpoint.py --model vim_tiny_patch16_224 vim_t_midclstok_76p1acc.pth --use-ema \\
        -o weights/vim_tiny_ema.safetensors
    python tools/convert_checkpoint.py --model vim_small_patch16_224 vim_s_midclstok_80p5acc.pth --img-size 384

Load the result with
    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file="OUT.safetensors"))
"""
import argparse
import json
import os
import sys
from pathlib import Path

from vision_ssm.convert import ConversionError, convert_checkpoint


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="official checkpoint (.pth / .pt / .safetensors)")
    p.add_argument("--model", required=True, help="timm model name, e.g. vmamba_tiny_s1l8 or vim_tiny_patch16_224")
    p.add_argument("-o", "--output", default=None,
                   help="output .safetensors (default: beside the checkpoint, <checkpoint stem>.safetensors)")
    p.add_argument("--use-ema", action="store_true", help="take the EMA weights (model_ema) of a training dict")
    p.add_argument("--img-size", type=int, default=None,
                   help="build the model for this resolution (position embeddings interpolated)")
    p.add_argument("--model-kwargs", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="extra model arguments (e.g. num_classes=100 for a fine-tuned head)")
    p.add_argument("--check-forward", action="store_true", help="also run one forward pass of the converted model")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.img_size is not None and args.img_size < 1:
        parser.error("--img-size must be >= 1")
    if not os.path.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r}: no such file")
    output = args.output or str(Path(args.checkpoint).with_suffix(".safetensors"))
    try:
        from vision_ssm.bench.models import resolve_model
        from vision_ssm.train.config import parse_kwargs
        resolve_model(args.model)
        kwargs = parse_kwargs(args.model_kwargs)
    except ValueError as err:
        parser.error(str(err))
    try:
        report = convert_checkpoint(args.checkpoint, args.model, output, use_ema=args.use_ema,
                                    img_size=args.img_size, model_kwargs=kwargs, check_forward=args.check_forward,
                                    progress=lambda line: print(line, flush=True))
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['model']}: {report['num_tensors']} tensors, {report['num_params']:,} parameters -> "
              f"{report['out']}")
        if report["renamed"]:
            print(f"  {len(report['renamed'])} legacy keys renamed (e.g. {report['renamed'][0]})")
        if report["resized"]:
            print(f"  resized to the model: {', '.join(report['resized'])}")
        print(f"  metadata: {', '.join(f'{k}={v}' for k, v in report['metadata'].items() if k != 'source_sha256')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
