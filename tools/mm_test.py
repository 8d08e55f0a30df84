#!/usr/bin/env python
"""Evaluate a trained OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone.

    python tools/mm_test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl] [--data-root DIR]
                            [--cfg-options key=value ...]
    torchrun --nproc_per_node=8 tools/mm_test.py CONFIG CHECKPOINT --launcher pytorch

Prints (and logs under the work dir) the config's test metric: mIoU, COCO bbox / segm mAP,
HOTA / MOTA / IDF1, or YouTube-VIS AP.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), ".."))


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", help="checkpoint written by tools/mm_train.py")
    parser.add_argument("--work-dir", help="directory for the evaluation log")
    parser.add_argument("--out", help="also dump the raw predictions to this .pkl file")
    parser.add_argument("--data-root", help="replace the config's data_root (e.g. the toy data)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def build_config(args):
    from mmengine.config import Config

    import vision_ssm.mmlab  # noqa: F401
    from vision_ssm.mmlab.utils import set_data_root

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.data_root:
        set_data_root(cfg, args.data_root)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.out:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type="DumpResults", out_file_path=args.out)]
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from vision_ssm.mmlab.utils import setup_cpu_distributed
    setup_cpu_distributed(cfg)  # torchrun on a machine without CUDA: gloo, DDP on the CPU
    runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
    metrics = runner.test()
    print(metrics)
    return metrics


if __name__ == "__main__":
    main()
