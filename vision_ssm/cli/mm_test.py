"""Evaluate a trained OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone.

    python tools/mm_test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl] [--data-root DIR]
                            [--cfg-options key=value ...]
    torchrun --nproc_per_node=8 tools/mm_test.py CONFIG CHECKPOINT --launcher pytorch

Prints (and logs under the work dir) the config's test metric: mIoU, COCO bbox / segm mAP,
HOTA / MOTA / IDF1, or YouTube-VIS AP.
"""
import sys

from vision_ssm.mmlab import cli


def parse_args(argv=None):
    parser = cli.common_parser(__doc__)
    parser.add_argument("checkpoint", help="checkpoint written by tools/mm_train.py")
    parser.add_argument("--out", help="also dump the raw predictions to this .pkl file")
    return cli.parse(parser, argv)


def build_config(args):
    cfg = cli.load_config(args)
    cfg.load_from = args.checkpoint
    if args.out:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type="DumpResults", out_file_path=args.out)]
    return cfg


def run(argv=None):
    """The test metrics (also printed)."""
    metrics = cli.build_runner(build_config(parse_args(argv))).test()
    print(metrics)
    return metrics


def main(argv=None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
