"""Shared fixtures of the OpenMMLab tests (skipped when the OpenMMLab stack is not installed)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def _manager_classes(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _manager_classes(sub)


@pytest.fixture(autouse=True)
def fresh_mmengine_instances():
    """Each test drops the mmengine global instances it made (visualizers, loggers, message hubs).

    The configs name their visualizer, so a second runner in one process would reuse the first
    one, whose files live in an earlier test's (since removed) work directory.
    """
    yield
    try:
        from mmengine.utils import manager
    except ImportError:
        return
    for cls in _manager_classes(manager.ManagerMixin):
        cls._instance_dict.clear()


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """Every toy dataset, generated once per session."""
    from vision_ssm.data.toy import make_all
    root = tmp_path_factory.mktemp("toy_data")
    make_all(str(root), seed=0)
    return root


def toy_data_root(toy_root: Path, cfg) -> str:
    """The toy data directory a toy config's ``data_root`` ('data/toy/...') stands for."""
    from vision_ssm.mmlab.toy_twins import toy_data_root as resolve
    return resolve(toy_root, cfg)


def load_config(path: Path, toy_root: Path | None = None, work_dir: Path | None = None, max_iters: int | None = None):
    from vision_ssm.mmlab.toy_twins import load_toy_config
    return load_toy_config(path, toy_root, work_dir, max_iters)
