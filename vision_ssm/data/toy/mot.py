"""Toy MOT17-style sequences: upright "pedestrians" (tall boxes) moving and bouncing, with identities.

Layout (MOT17's, plus the CocoVID annotation files mmdet's ``MOTChallengeDataset`` reads)::

    ROOT/train/TOY17-0k-FRCNN/seqinfo.ini
    ROOT/train/TOY17-0k-FRCNN/img1/000001.jpg ...
    ROOT/train/TOY17-0k-FRCNN/gt/gt.txt        frame,id,x,y,w,h,conf,class,visibility
    ROOT/train/TOY17-0k-FRCNN/det/det.txt      frame,-1,x,y,w,h,score,-1,-1,-1
    ROOT/annotations/{train,half-train,half-val}_cocoformat.json

As with MOT17's "half" protocol, ``half-train`` holds the first half of every sequence and
``half-val`` the second half (frame ids restart at 0 in each half; ``mot_frame_id`` keeps the
sequence's 1-based frame number).  People are drawn far-to-near (by the bottom edge), and
``visibility`` is the visible fraction of each box after occlusion.
"""
from __future__ import annotations

import os

import numpy as np

from ._draw import background, paint, write_image, write_json

PERSON_COLORS = [(30, 30, 200), (30, 180, 230), (200, 60, 200), (220, 200, 40), (40, 200, 40),
                 (200, 120, 30)]  # BGR


def _simulate(rng, num_frames, num_people, height, width):
    people = []
    for pid in range(num_people):
        h = rng.uniform(0.35, 0.55) * height
        w = h * rng.uniform(0.35, 0.5)
        x = rng.uniform(0, width - w)
        y = rng.uniform(0, height - h)
        v = rng.uniform(-4, 4, size=2)
        v[0] = v[0] if abs(v[0]) > 1 else np.sign(v[0] + 1e-6) * 1.5
        people.append(dict(id=pid + 1, w=w, h=h, x=x, y=y, v=v, color=PERSON_COLORS[pid % len(PERSON_COLORS)]))
    tracks = []  # per frame: list of (id, x, y, w, h, color)
    for _ in range(num_frames):
        frame = []
        for p in people:
            frame.append((p["id"], p["x"], p["y"], p["w"], p["h"], p["color"]))
            for axis, (pos, lim) in enumerate((("x", width - p["w"]), ("y", height - p["h"]))):
                p[pos] += p["v"][axis]
                if p[pos] < 0 or p[pos] > lim:
                    p["v"][axis] = -p["v"][axis]
                    p[pos] = float(np.clip(p[pos], 0, lim))
        tracks.append(frame)
    return tracks


def make_mot(root: str, seed: int = 0, num_seqs: int = 6, num_frames: int = 40, size=(160, 128),
             num_people: int = 3) -> dict:
    """Writes the toy MOT17 set; returns {'train'|'half-train'|'half-val': annotation json path}."""
    width, height = size
    rng = np.random.default_rng(seed)
    cocovid = {k: dict(videos=[], images=[], annotations=[],
                       categories=[{"id": 1, "name": "pedestrian"}]) for k in ("train", "half-train", "half-val")}
    counters = {k: dict(img=1, ann=1, ins={}) for k in cocovid}
    half = num_frames // 2
    for s in range(num_seqs):
        name = f"TOY17-{s + 1:02d}-FRCNN"
        seq_dir = os.path.join(root, "train", name)
        tracks = _simulate(rng, num_frames, num_people, height, width)
        gt_lines, det_lines = [], []
        frames_info = []
        for f, people in enumerate(tracks):
            img = background(rng, height, width)
            visible = np.zeros((len(people), height, width), bool)
            order = sorted(range(len(people)), key=lambda i: people[i][2] + people[i][4])  # far to near
            annotated = []
            for i in order:
                pid, x, y, w, h, color = people[i]
                m = np.zeros((height, width), np.uint8)
                m[int(round(y)):int(round(y + h)), int(round(x)):int(round(x + w))] = 1
                paint(img, m, color, rng)
                visible[:, m.astype(bool)] = False
                visible[i] = m.astype(bool)
            for i, (pid, x, y, w, h, _c) in enumerate(people):
                full = max(int(round(w)) * int(round(h)), 1)
                vis = float(visible[i].sum()) / full
                box = (float(round(x)), float(round(y)), float(round(w)), float(round(h)))
                gt_lines.append(f"{f + 1},{pid},{box[0]:.0f},{box[1]:.0f},{box[2]:.0f},{box[3]:.0f},1,1,{vis:.6f}")
                noisy = np.asarray(box) + rng.normal(0, 1.5, size=4)  # a public detection near the box
                det_lines.append(f"{f + 1},-1," + ",".join(f"{v:.1f}" for v in noisy)
                                 + f",{rng.uniform(0.6, 1.0):.3f},-1,-1,-1")
                annotated.append((pid, box, vis))
            write_image(os.path.join(seq_dir, "img1", f"{f + 1:06d}.jpg"), img)
            frames_info.append(annotated)
        os.makedirs(os.path.join(seq_dir, "gt"), exist_ok=True)
        os.makedirs(os.path.join(seq_dir, "det"), exist_ok=True)
        with open(os.path.join(seq_dir, "gt", "gt.txt"), "w") as fh:
            fh.write("\n".join(gt_lines) + "\n")
        with open(os.path.join(seq_dir, "det", "det.txt"), "w") as fh:
            fh.write("\n".join(det_lines) + "\n")
        with open(os.path.join(seq_dir, "seqinfo.ini"), "w") as fh:
            fh.write(f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={num_frames}\n"
                     f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n")

        for split, frame_range in (("train", range(num_frames)), ("half-train", range(half)),
                                   ("half-val", range(half, num_frames))):
            js, cnt = cocovid[split], counters[split]
            video_id = len(js["videos"]) + 1
            js["videos"].append({"id": video_id, "name": name, "fps": 30, "width": width, "height": height})
            ids = [cnt["img"] + k for k in range(len(frame_range))]
            for k, f in enumerate(frame_range):
                img_id = ids[k]
                js["images"].append({
                    "file_name": f"{name}/img1/{f + 1:06d}.jpg", "height": height, "width": width,
                    "id": img_id, "frame_id": k, "video_id": video_id, "mot_frame_id": f + 1,
                    "prev_image_id": ids[k - 1] if k > 0 else -1,
                    "next_image_id": ids[k + 1] if k + 1 < len(ids) else -1})
                for pid, box, vis in frames_info[f]:
                    ins = cnt["ins"].setdefault((name, pid), len(cnt["ins"]) + 1)
                    js["annotations"].append({
                        "id": cnt["ann"], "category_id": 1, "image_id": img_id, "instance_id": ins,
                        "bbox": list(box), "area": box[2] * box[3], "iscrowd": False,
                        "visibility": vis, "mot_instance_id": pid, "mot_conf": 1.0, "mot_class_id": 1})
                    cnt["ann"] += 1
            cnt["img"] += len(ids)
    paths = {}
    for split, js in cocovid.items():
        paths[split] = os.path.join(root, "annotations", f"{split}_cocoformat.json")
        write_json(paths[split], js)
    return paths
