"""Make the bundled example clips (MeViS layout, safe stage-1 npz, ground truth).

    python examples/make_examples.py [OUT_DIR]     # default: examples/data

Synthetic scenes of coloured discs on a textured background. For each video:
``JPEGImages/<video>/*.jpg``, ``meta_expressions.json``, ``mask_dict.json`` (RLE
ground truth, MeViS style), ``stage1/<video>.npz`` and ``gt/<video>/<exp_id>/*.png``.

With the fake StaticPropagator (refine.testing), "birds" expression 0 (two discs
that fly apart, both queries peaking on the first frame) takes the fusion's union
branch, and "ball" expression 0 (one disc that barely moves) the SAM2-only branch;
"ball" expression 1 has no confident query (empty output).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from refine.stage1 import ExpressionStage1, VideoStage1, save_stage1_npz

H, W, T, N, LOW = 96, 128, 12, 4, 24


def disc(cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def render(
    rng: np.random.Generator, objects: list[tuple[np.ndarray, tuple[int, int, int]]]
) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    bg = np.stack([60 + 30 * np.sin(xx / 9.0), 80 + 25 * np.cos(yy / 7.0), 90 + 0 * xx], -1)
    img = bg + rng.normal(0, 6, size=(H, W, 3))
    for mask, color in objects:
        img[mask] = color
    return np.clip(img, 0, 255).astype(np.uint8)


def low_res_logits(mask: np.ndarray) -> np.ndarray:
    """A [LOW, LOW*W/H] logit map whose upsampling roughly gives ``mask``."""
    small = np.asarray(
        Image.fromarray(mask.astype(np.uint8) * 255).resize((LOW * W // H, LOW), Image.BILINEAR)
    )
    return (small.astype(np.float32) / 255.0 - 0.5) * 8.0


def box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return [0.5, 0.5, 0.0, 0.0]
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return [(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H]


def rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    enc = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": enc["size"], "counts": enc["counts"].decode("ascii")}


def make_video(
    name: str,
    tracks: dict[int, list[np.ndarray]],
    colors: dict[int, tuple],
    expressions: dict[str, dict],
    out: str,
    rng: np.random.Generator,
    mask_dict: dict,
    anno_base: int,
) -> dict:
    """tracks: obj_id → T masks; expressions: exp_id → {exp, obj_ids, scores [T,N] maker}."""
    frames_dir = os.path.join(out, "JPEGImages", name)
    os.makedirs(frames_dir, exist_ok=True)
    frame_names = [f"{t:05d}" for t in range(T)]
    for t, fname in enumerate(frame_names):
        img = render(rng, [(tracks[o][t], colors[o]) for o in tracks])
        Image.fromarray(img).save(os.path.join(frames_dir, f"{fname}.jpg"), quality=92)
    anno_of = {}
    for i, obj in enumerate(sorted(tracks)):
        anno_of[obj] = str(anno_base + i)
        mask_dict[anno_of[obj]] = [rle(m) for m in tracks[obj]]
    meta_exps, stage1_exps = {}, {}
    for exp_id, spec in expressions.items():
        objs = spec["obj_ids"]
        meta_exps[exp_id] = {
            "exp": spec["exp"],
            "obj_id": objs,
            "anno_id": [int(anno_of[o]) for o in objs],
        }
        scores = np.asarray(spec["scores"], np.float32)
        boxes = np.zeros((T, N, 4), np.float32)
        masks = np.full((T, N, LOW, LOW * W // H), -4.0, np.float32)
        for q, obj in enumerate(spec["query_objects"]):
            if obj is None:
                continue
            for t in range(T):
                masks[t, q] = low_res_logits(tracks[obj][t])
                boxes[t, q] = box_of(tracks[obj][t])
        stage1_exps[exp_id] = ExpressionStage1(scores, boxes, masks.astype(np.float16), spec["exp"])
        gt_dir = os.path.join(out, "gt", name, exp_id)
        os.makedirs(gt_dir, exist_ok=True)
        for t, fname in enumerate(frame_names):
            gt = np.zeros((H, W), bool)
            for o in objs:
                gt |= tracks[o][t]
            Image.fromarray(gt.astype(np.uint8) * 255).save(os.path.join(gt_dir, f"{fname}.png"))
    os.makedirs(os.path.join(out, "stage1"), exist_ok=True)
    save_stage1_npz(
        os.path.join(out, "stage1", f"{name}.npz"), VideoStage1((H, W), frame_names, stage1_exps)
    )
    return {"frames": frame_names, "expressions": meta_exps}


def scores_peaking(peaks: list[tuple[int, float]], low: float = 0.05) -> np.ndarray:
    """[T, N] scores: query q peaks at frame f with value v, decaying elsewhere."""
    s = np.full((T, N), low, np.float32)
    for q, (f, v) in enumerate(peaks):
        s[:, q] = np.clip(v - 0.04 * np.abs(np.arange(T) - f), 0, 1)
    return s


def main(out: str) -> None:
    rng = np.random.default_rng(0)
    mask_dict: dict = {}
    videos = {}
    birds = {
        0: [disc(48 - 1.5 * t, 56 - 3.0 * t, 9) for t in range(T)],
        1: [disc(48 + 1.5 * t, 72 + 3.0 * t, 9) for t in range(T)],
    }
    videos["birds"] = make_video(
        "birds",
        birds,
        {0: (230, 60, 50), 1: (240, 200, 40)},
        {
            "0": {
                "exp": "the two birds flying apart",
                "obj_ids": [0, 1],
                "query_objects": [0, 1, None, None],
                "scores": scores_peaking([(0, 0.9), (0, 0.8), (5, 0.1), (5, 0.05)]),
            },
            "1": {
                "exp": "the yellow bird flying to the right",
                "obj_ids": [1],
                "query_objects": [1, 0, None, None],
                "scores": scores_peaking([(6, 0.95), (2, 0.2), (5, 0.1), (5, 0.05)]),
            },
        },
        out,
        rng,
        mask_dict,
        0,
    )
    ball = {
        0: [disc(40 + 0.5 * t, 60 + 0.5 * t, 14) for t in range(T)],
        1: [disc(70, 20 + 0.0 * t, 8) for t in range(T)],
    }
    videos["ball"] = make_video(
        "ball",
        ball,
        {0: (40, 90, 230), 1: (60, 200, 80)},
        {
            "0": {
                "exp": "the blue ball",
                "obj_ids": [0],
                "query_objects": [0, 1, None, None],
                "scores": scores_peaking([(4, 0.92), (8, 0.25), (1, 0.1), (1, 0.05)]),
            },
            "1": {
                "exp": "the ball that jumps over the fence",
                "obj_ids": [1],
                "query_objects": [1, 0, None, None],
                "scores": scores_peaking([(4, 0.2), (8, 0.25), (1, 0.1), (1, 0.05)]),
            },
        },
        out,
        rng,
        mask_dict,
        10,
    )
    with open(os.path.join(out, "meta_expressions.json"), "w") as f:
        json.dump({"videos": videos}, f, indent=1)
    with open(os.path.join(out, "mask_dict.json"), "w") as f:
        json.dump(mask_dict, f)
    print(f"wrote examples to {out}: {sorted(videos)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data"))
