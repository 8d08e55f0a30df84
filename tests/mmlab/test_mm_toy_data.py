"""The toy datasets: deterministic, in the real formats, with annotations that match the pixels."""
from __future__ import annotations

import configparser
import filecmp
import json

import numpy as np
import pytest

pytestmark = pytest.mark.mmlab


def _same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.funny_files
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    assert not mismatch and not errors, mismatch
    for sub in cmp.common_dirs:
        _same_tree(a / sub, b / sub)


def test_deterministic_by_seed(toy_root, tmp_path):
    from vision_ssm.data.toy import make_all
    make_all(str(tmp_path / "again"), seed=0)
    _same_tree(toy_root, tmp_path / "again")
    make_all(str(tmp_path / "other"), seed=1)
    with pytest.raises(AssertionError):
        _same_tree(toy_root, tmp_path / "other")


def test_coco_annotations_match_the_drawn_shapes(toy_root):
    COCO = pytest.importorskip("pycocotools.coco").COCO
    import cv2
    coco = COCO(str(toy_root / "coco/annotations/instances_train2017.json"))
    kinds = set()
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx((x, y, x + w, y + h), abs=1.5)
        kinds.add("rle" if isinstance(ann["segmentation"], dict) else "polygon")
        img = cv2.imread(str(toy_root / "coco/train2017" / coco.loadImgs(ann["image_id"])[0]["file_name"]))
        inside = img[mask.astype(bool)].astype(float).mean(0)
        assert np.abs(inside - img[~mask.astype(bool)].astype(float).mean(0)).max() > 20  # a visible object
    assert kinds == {"rle", "polygon"}
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["square", "circle", "triangle"]


def test_ade_mot_vis_layouts(toy_root):
    import cv2
    ade = toy_root / "ade/ADEChallengeData2016"
    for split, tag in (("training", "train"), ("validation", "val")):
        images = sorted((ade / "images" / split).glob(f"ADE_{tag}_*.jpg"))
        labels = sorted((ade / "annotations" / split).glob(f"ADE_{tag}_*.png"))
        assert images and [p.stem for p in images] == [p.stem for p in labels]
    label = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and label.ndim == 2 and set(np.unique(label)) <= {0, 1, 2, 3, 4, 5}

    mot = toy_root / "mot/MOT17"
    seqs = sorted((mot / "train").iterdir())
    for seq in seqs:
        info = configparser.ConfigParser()
        info.read(seq / "seqinfo.ini")
        length = int(info["Sequence"]["seqLength"])
        assert len(list((seq / "img1").glob("*.jpg"))) == length
        gt = np.loadtxt(seq / "gt/gt.txt", delimiter=",")
        assert gt.shape[1] == 9 and set(gt[:, 0].astype(int)) == set(range(1, length + 1))
        assert (seq / "det/det.txt").is_file()
    half_train = json.loads((mot / "annotations/half-train_cocoformat.json").read_text())
    half_val = json.loads((mot / "annotations/half-val_cocoformat.json").read_text())
    assert {i["frame_id"] for i in half_val["images"]} == {i["frame_id"] for i in half_train["images"]}
    assert min(i["mot_frame_id"] for i in half_val["images"]) > max(i["mot_frame_id"] for i in half_train["images"])
    assert all({"instance_id", "visibility", "mot_conf"} <= set(a) for a in half_train["annotations"])

    vis = toy_root / "youtube_vis_2019"
    raw = json.loads((vis / "valid.json").read_text())
    assert len(raw["categories"]) == 40 and raw["annotations"]
    for ann in raw["annotations"]:
        assert len(ann["segmentations"]) == len(ann["bboxes"]) == len(raw["videos"][ann["video_id"] - 1]["file_names"])
    cocovid = json.loads((vis / "annotations/youtube_vis_2019_valid.json").read_text())
    assert {a["instance_id"] for a in cocovid["annotations"]} == {a["id"] for a in raw["annotations"]}
