"""The toy twins learn: each trains its config's whole schedule and must reach its family's target,
and so must its control (an OpenMMLab backbone on the same head, data and schedule), which shows
that the toy itself is learnable.  Slow: ``pytest -m slow tests/mmlab/test_mm_toy_learn.py -s``."""
from __future__ import annotations

import pytest

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from vision_ssm.mmlab.toy_twins import TWINS, load_toy_config, train_and_test  # noqa: E402

pytestmark = [pytest.mark.mmlab, pytest.mark.slow]

CASES = {t.config: t.targets for t in TWINS}
for t in TWINS:  # a control must reach every target of the twins it stands beside
    if t.control:
        CASES[t.control] = tuple(dict.fromkeys(CASES.get(t.control, ()) + t.targets))


@pytest.mark.parametrize("config", list(CASES))
def test_toy_twin_reaches_its_target(config, toy_root, tmp_path):
    result = train_and_test(load_toy_config(config, toy_root, tmp_path / "work"))
    reached = {metric: result["metrics"][metric] for metric, _ in CASES[config]}
    print(f"\nTOY {config}: {reached} after {result['iters']} iterations, {result['train_seconds']:.0f} s")
    below = [f"{m} {reached[m]:.3g} < {target:g}" for m, target in CASES[config] if reached[m] < target]
    assert not below, f"{config}: {below}"
