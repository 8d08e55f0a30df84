"""model_zoo.md's toy table merges the committed results files: a config's newest run wins, and the
header names only the runs that rows come from."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("mmengine")

from vision_ssm.mmlab import toy_twins  # noqa: E402

pytestmark = pytest.mark.mmlab

SEG, SEG_CONTROL = toy_twins.TWINS[0].config, toy_twins.TWINS[0].control


def _result(day: str, command: str, miou: float, control_miou: float) -> dict:
    run = dict(metrics={"mIoU": miou}, iters=300, train_seconds=60.0)
    return dict(date=day, device="cpu", versions=dict(torch="t", mmengine="m"), command=command, minutes=2.0,
                twins=[dict(config=SEG, family="segmentation", targets=[["mIoU", 70.0]], control=SEG_CONTROL)],
                runs=[dict(config=SEG, **run), dict(config=SEG_CONTROL, **dict(run, metrics={"mIoU": control_miou}))])


def test_newest_run_of_a_config_wins(tmp_path):
    old, new = _result("2026-01-01", "old run", 50.0, 60.0), _result("2026-02-01", "new run", 91.0, 88.0)
    for name, result in (("2026-02-01_cpu_toy_twins_segmentation.json", new), ("2026-01-01_cpu_toy_twins.json", old)):
        (tmp_path / name).write_text(json.dumps(result))
    results = toy_twins.committed_results(tmp_path)
    assert [r["command"] for r in results] == ["old run", "new run"]
    text = toy_twins.markdown(results)
    assert "`new run` on 2026-02-01" in text and "old run" not in text  # every row came from the new file
    row = next(line for line in text.splitlines() if line.startswith("| segmentation"))
    assert "91 (reached)" in row and "| 88 |" in row, row


def test_below_target_is_marked(tmp_path):
    text = toy_twins.markdown(_result("2026-01-01", "run", 50.0, 88.0))
    assert "50 (**below**)" in text
    assert toy_twins.below_target(_result("2026-01-01", "run", 50.0, 88.0)) == [f"{SEG}: mIoU 50 < 70"]
