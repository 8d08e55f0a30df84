"""The published (full-size) configs build their complete models and run one inference forward
at their real input size (batch 1, no gradients, random weights: no dataset, no download).

By default one config per model type runs (UperNet on VMamba-T[s1l8] and on Vim-T, Mask R-CNN
on VMamba-T[s1l8], Cascade Mask R-CNN on Vim-T, QDTrack, ByteTrack, MaskTrack R-CNN: about 65 s
together on 2 idle CPU cores);
the other sizes and variants are marked ``slow`` (``pytest -m slow``; the Vanilla-VMamba detectors
take 1-2.5 minutes each on the CPU, the v2 ones 9-18 s).
"""
from __future__ import annotations

import time

import pytest

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

import torch  # noqa: E402

from conftest import CONFIGS, load_config  # noqa: E402

pytestmark = pytest.mark.mmlab

# the input size (H, W) each task's test pipeline produces
REAL_SIZE = {
    "segmentation": (512, 512),    # ADE20K crops / short side 512
    "detection": (800, 1333),      # COCO: Resize (1333, 800), keep ratio
    "qdtrack": (608, 1088),        # MOT17 1920x1080 resized to (1088, 1088) with kept ratio
    "bytetrack": (800, 1440),      # MOT17 resized to (1440, 800) and padded
    "masktrack": (360, 640),       # YouTube-VIS resized to (640, 360)
}
DEFAULT = {  # one per model type
    "segmentation/upernet_vmamba-t-s1l8_8xb2-160k_ade20k-512x512.py",
    "segmentation/upernet_vim-t_4xb8-60k_ade20k-512x512.py",
    "detection/mask-rcnn_vmamba-t-s1l8_fpn_1x_coco.py",
    "detection/cascade-mask-rcnn_vim-t_simple-fpn_lsj-100e_coco.py",
    "tracking/qdtrack_faster-rcnn_vmamba-t-s1l8_fpn_8xb2-4e_mot17halftrain_test-mot17halfval.py",
    "tracking/bytetrack_yolox-vmamba-t-s1l8_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py",
    "tracking/masktrack-rcnn_mask-rcnn_vmamba-t-s1l8_fpn_8xb1-12e_youtubevis2019.py",
}
FULL = sorted(str(p.relative_to(CONFIGS)) for task in ("segmentation", "detection", "tracking")
              for p in (CONFIGS / task).glob("*.py"))
PARAMS = [pytest.param(rel, id=rel, marks=() if rel in DEFAULT else pytest.mark.slow) for rel in FULL]


def _size(rel):
    task = rel.split("/")[0]
    if task == "tracking":
        task = next(k for k in ("qdtrack", "bytetrack", "masktrack") if k in rel)
    return REAL_SIZE[task]


def _data(rel, H, W):
    from mmdet.structures import DetDataSample, TrackDataSample
    from mmseg.structures import SegDataSample
    img = torch.randint(0, 256, (3, H, W), dtype=torch.uint8)
    meta = dict(img_shape=(H, W), ori_shape=(H, W), scale_factor=(1.0, 1.0), img_id=0, img_path="x.jpg")
    if rel.startswith("segmentation"):
        return dict(inputs=[img], data_samples=[SegDataSample(metainfo=dict(meta, pad_shape=(H, W)))])
    if rel.startswith("detection"):
        return dict(inputs=[img], data_samples=[DetDataSample(metainfo=meta)])
    frame = DetDataSample(metainfo=dict(meta, frame_id=0, video_id=0, video_length=1))
    return dict(inputs=[img[None]], data_samples=[TrackDataSample(video_data_samples=[frame])])


@pytest.mark.parametrize("rel", PARAMS)
def test_full_config_builds_and_runs_at_real_size(rel):
    from mmengine.registry import DefaultScope
    cfg = load_config(CONFIGS / rel)
    scope = cfg.get("default_scope", "mmdet")
    with DefaultScope.overwrite_default_scope(scope):
        registry = __import__(f"{scope}.registry", fromlist=["MODELS"]).MODELS
        model = registry.build(cfg.model)  # random weights: init_weights() (the download) is not run
    model.eval()
    H, W = _size(rel)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.test_step(_data(rel, H, W))
    elapsed = time.perf_counter() - t0
    assert len(out) == 1
    sample = out[0]
    if rel.startswith("segmentation"):
        assert tuple(sample.pred_sem_seg.data.shape[-2:]) == (H, W)
    elif rel.startswith("detection"):
        assert sample.pred_instances.bboxes.shape[-1] == 4 and "masks" in sample.pred_instances
    else:
        frame = sample.video_data_samples[0] if hasattr(sample, "video_data_samples") else sample[0]
        assert "pred_track_instances" in frame
    print(f"\n{rel}: {H}x{W} forward {elapsed:.1f}s")
