"""Train an OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone through mmengine's Runner.

    python tools/mm_train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                             [--data-root DIR] [--cfg-options key=value ...]
    torchrun --nproc_per_node=8 tools/mm_train.py CONFIG --launcher pytorch

The vision_ssm.mmlab plugin is imported first (backbones, torch / NumPy compatibility fixes), so
configs work with or without their own ``custom_imports``.
"""
import sys

from vision_ssm.mmlab import cli


def parse_args(argv=None):
    parser = cli.common_parser(__doc__)
    parser.add_argument("--resume", nargs="?", type=str, const="auto",
                        help="resume from CKPT, or from the latest checkpoint in the work dir when no "
                        "path is given")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (AmpOptimWrapper)")
    return cli.parse(parser, argv)


def build_config(args):
    cfg = cli.load_config(args)
    if args.amp:
        if cfg.optim_wrapper.get("type", "OptimWrapper") == "AmpOptimWrapper":
            print("AMP is already enabled by the config", file=sys.stderr)
        else:
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None) -> int:
    cli.build_runner(build_config(parse_args(argv))).train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
