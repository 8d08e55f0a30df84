"""Command-line pieces shared by :mod:`vision_ssm.cli.mm_train` and :mod:`vision_ssm.cli.mm_test`
(tools/mm_train.py, tools/mm_test.py)."""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Any

__all__ = ["common_parser", "parse", "load_config", "build_runner"]


def common_parser(description: str) -> argparse.ArgumentParser:
    """The config argument and the options both tools take (work dir, data root, overrides, launcher)."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("--work-dir", help="directory for logs (and checkpoints) "
                        "(default: ./work_dirs/CONFIG_NAME)")
    parser.add_argument("--data-root", help="replace the config's data_root (e.g. the toy data)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config entries, e.g. train_dataloader.batch_size=4")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher (pytorch: torchrun)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    return parser


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def load_config(args: argparse.Namespace) -> Any:
    """The config with the common options applied; the vision_ssm plugin is imported first, so
    configs work with or without their own ``custom_imports``."""
    from mmengine.config import Config

    import vision_ssm.mmlab  # noqa: F401
    from vision_ssm.mmlab.utils import check_data_roots, set_data_root

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    moved_from = cfg.get("data_root")
    if args.data_root:
        set_data_root(cfg, args.data_root, check=False)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:  # every dataset now under --data-root, or placed by --cfg-options
        given = [v for v in (args.cfg_options or {}).values() if isinstance(v, str)]
        try:
            check_data_roots(cfg, args.data_root, moved_from, allowed=given)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from err
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Any):
    """mmengine's Runner (or the config's ``runner_type``); under torchrun without CUDA, gloo and DDP on the CPU."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from vision_ssm.mmlab import compat
    from vision_ssm.mmlab.utils import setup_cpu_distributed
    compat.apply()  # the Runner loads mmengine checkpoints and runs mmdet's evaluators (see compat)
    setup_cpu_distributed(cfg)
    return Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
