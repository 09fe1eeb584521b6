"""Small synthetic clips in MeViS layout for tests."""

from __future__ import annotations

import json
import os

import numpy as np

from refine.stage1 import ExpressionStage1, VideoStage1, save_stage1_npz
from refine.synthetic import random_expression, textured_frames, write_jpegs

__all__ = ["random_expression", "textured_frames", "write_clip"]


def write_clip(
    root: str,
    video: str,
    frames: np.ndarray,
    expressions: dict[str, ExpressionStage1],
    stage1_dir: str | None = None,
) -> None:
    """Write JPEG frames, add the video to meta_expressions.json and write its stage-1 npz."""
    h, w = frames.shape[1:3]
    names = write_jpegs(frames, os.path.join(root, "JPEGImages", video))
    meta_path = os.path.join(root, "meta_expressions.json")
    meta = {"videos": {}}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    sentences = {k: {"exp": e.sentence or f"expression {k}"} for k, e in expressions.items()}
    meta["videos"][video] = {"frames": names, "expressions": sentences}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    stage1_dir = stage1_dir or os.path.join(root, "stage1")
    os.makedirs(stage1_dir, exist_ok=True)
    save_stage1_npz(
        os.path.join(stage1_dir, f"{video}.npz"), VideoStage1((h, w), names, expressions)
    )


def run_args(data: str, out: str, *extra: str) -> list[str]:
    """``refine run`` arguments on ``data`` (MeViS layout with ``stage1/``): random-weight
    SAM2.1-tiny at a 128-px input on the CPU."""
    return ["run", "--data", str(data), "--stage1", os.path.join(str(data), "stage1"),
            "--out", str(out), "--model", "tiny", "--random-weights", "--image-size", "128",
            "--device", "cpu", *extra]  # fmt: skip
