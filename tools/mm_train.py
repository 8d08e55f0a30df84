#!/usr/bin/env python
"""Train an OpenMMLab (mmdet / mmseg) config with a Vision Mamba backbone through mmengine's Runner.

    python tools/mm_train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                             [--data-root DIR] [--cfg-options key=value ...]
    torchrun --nproc_per_node=8 tools/mm_train.py CONFIG --launcher pytorch

The vision_ssm.mmlab plugin is imported first (backbones, torch / NumPy compatibility fixes), so
configs work with or without their own ``custom_imports``.
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
    parser.add_argument("--work-dir", help="directory for logs and checkpoints "
                        "(default: ./work_dirs/CONFIG_NAME)")
    parser.add_argument("--resume", nargs="?", type=str, const="auto",
                        help="resume from CKPT, or from the latest checkpoint in the work dir when no "
                        "path is given")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (AmpOptimWrapper)")
    parser.add_argument("--data-root", help="replace the config's data_root (e.g. the toy data)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config entries, e.g. train_dataloader.batch_size=4")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher (pytorch: torchrun)")
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


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from vision_ssm.mmlab.utils import setup_cpu_distributed
    setup_cpu_distributed(cfg)  # torchrun on a machine without CUDA: gloo, DDP on the CPU
    runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == "__main__":
    main()
