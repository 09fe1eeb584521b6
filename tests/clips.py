"""Small synthetic clips in MeViS layout for tests."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from refine.stage1 import ExpressionStage1, VideoStage1, save_stage1_npz


def textured_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3] uint8 frames with a moving bright square on a smooth background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        bg = np.stack(
            [80 + 40 * np.sin((xx + 3 * i) / 7), 90 + 30 * np.cos(yy / 5), 100 + 0 * xx], -1
        )
        img = bg + rng.normal(0, 5, (h, w, 3))
        y0, x0 = (h // 4 + i) % (h - h // 3), (w // 5 + 2 * i) % (w - w // 3)
        img[y0 : y0 + h // 4, x0 : x0 + w // 4] = (230, 60, 40)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def random_expression(
    rng: np.random.Generator, t: int, n: int, low: tuple[int, int], peaks: list[tuple[int, float]]
) -> ExpressionStage1:
    """Query q peaks at frame f with score v (others low); random low-res logits and boxes."""
    scores = rng.uniform(0.0, 0.2, (t, n)).astype(np.float32)
    for q, (f, v) in enumerate(peaks):
        scores[:, q] = np.clip(v - 0.03 * np.abs(np.arange(t) - f), 0, 1)
    yy, xx = np.mgrid[: low[0], : low[1]]
    masks = np.zeros((t, n, *low), np.float32)
    for q in range(n):
        cy, cx = rng.uniform(0.25, 0.75, 2) * low
        r = rng.uniform(0.15, 0.3) * min(low)
        for i in range(t):
            masks[t - 1 - i if q % 2 else i, q] = r - np.hypot(yy - cy - i * 0.3, xx - cx - i * 0.2)
    boxes = np.concatenate([rng.uniform(0.3, 0.7, (t, n, 2)), rng.uniform(0.1, 0.4, (t, n, 2))], -1)
    return ExpressionStage1(scores, boxes.astype(np.float32), masks, None)


def write_clip(
    root: str,
    video: str,
    frames: np.ndarray,
    expressions: dict[str, ExpressionStage1],
    stage1_dir: str | None = None,
    frame_names: list[str] | None = None,
) -> None:
    """Write JPEG frames, add the video to meta_expressions.json and write its stage-1 npz."""
    t, h, w = frames.shape[:3]
    names = frame_names or [f"{i:05d}" for i in range(t)]
    vdir = os.path.join(root, "JPEGImages", video)
    os.makedirs(vdir, exist_ok=True)
    for name, img in zip(names, frames):
        Image.fromarray(img).save(os.path.join(vdir, f"{name}.jpg"), quality=90)
    meta_path = os.path.join(root, "meta_expressions.json")
    meta = {"videos": {}}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    meta["videos"][video] = {
        "frames": names,
        "expressions": {
            k: {"exp": e.sentence or f"expression {k}"} for k, e in expressions.items()
        },
    }
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    stage1_dir = stage1_dir or os.path.join(root, "stage1")
    os.makedirs(stage1_dir, exist_ok=True)
    save_stage1_npz(
        os.path.join(stage1_dir, f"{video}.npz"), VideoStage1((h, w), names, expressions)
    )
