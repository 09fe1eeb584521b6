"""Benchmark of the evaluation: 1,000 frames at 480x854 with blobby masks.

Builds a synthetic labelled split in a temporary folder (``meta_expressions.json``,
``mask_dict.json`` with COCO RLE ground truth, prediction PNGs), untimed, then
times ``python -m refine evaluate --workers N`` end to end (JSON and RLE decoding,
PNG reading, J and F) and, separately, the metrics alone in this process.

Usage: ``python scripts/bench_metrics.py [--frames 1000] [--workers 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np
from pycocotools import mask as cocomask

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from refine.cli import build_parser
from refine.metrics import evaluate_expression

H, W = 480, 854
FRAMES_PER_EXPRESSION = 50


def blob_masks(rng: np.random.Generator, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred), bool [t, H, W]: smooth blobs; pred is a shifted, reshaped gt."""
    gt = np.empty((t, H, W), dtype=bool)
    pred = np.empty((t, H, W), dtype=bool)
    for i in range(t):
        field = cv2.resize(rng.random((9, 16)), (W, H), interpolation=cv2.INTER_CUBIC)
        gt[i] = field > rng.uniform(0.55, 0.8)
        noise = cv2.resize(rng.random((30, 54)), (W, H), interpolation=cv2.INTER_CUBIC)
        dy, dx = rng.integers(-12, 13, size=2)
        pred[i] = (np.roll(field, (dy, dx), axis=(0, 1)) + 0.15 * noise) > rng.uniform(0.55, 0.8)
    return gt, pred


def build_split(root: str, n_frames: int, seed: int) -> tuple[str, str]:
    """Write a data root and a prediction folder; returns (data, pred)."""
    rng = np.random.default_rng(seed)
    data, pred = os.path.join(root, "data"), os.path.join(root, "pred")
    os.makedirs(data)
    videos, mask_dict = {}, {}
    n_exp = -(-n_frames // FRAMES_PER_EXPRESSION)
    for e in range(n_exp):
        t = min(FRAMES_PER_EXPRESSION, n_frames - e * FRAMES_PER_EXPRESSION)
        video = f"video{e:03d}"
        frames = [f"{i:05d}" for i in range(t)]
        gt, pr = blob_masks(rng, t)
        mask_dict[str(e)] = []
        for i, frame in enumerate(frames):
            enc = cocomask.encode(np.asfortranarray(gt[i].astype(np.uint8)))
            mask_dict[str(e)].append({"size": [H, W], "counts": enc["counts"].decode()})
            path = os.path.join(pred, video, "0", f"{frame}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            cv2.imwrite(path, pr[i].astype(np.uint8) * 255)
        videos[video] = {"frames": frames, "expressions": {"0": {"exp": "x", "anno_id": [e]}}}
    with open(os.path.join(data, "meta_expressions.json"), "w") as fh:
        json.dump({"videos": videos}, fh)
    with open(os.path.join(data, "mask_dict.json"), "w") as fh:
        json.dump(mask_dict, fh)
    return data, pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data, pred = build_split(tmp, opts.frames, opts.seed)
        print(f"setup (untimed): {time.perf_counter() - t0:.1f} s")

        args = build_parser().parse_args(
            ["evaluate", "--data", data, "--pred", pred, "--workers", str(opts.workers)]
        )
        t0 = time.perf_counter()
        args.func(args)
        total = time.perf_counter() - t0
        print(
            f"end to end, {opts.workers} workers: {opts.frames} frames in {total:.2f} s "
            f"= {opts.frames / total:.0f} frames/s"
        )

    gt, pr = blob_masks(np.random.default_rng(opts.seed + 1), FRAMES_PER_EXPRESSION)
    evaluate_expression(gt[:1], pr[:1])  # warm-up: first use imports skimage
    t0 = time.perf_counter()
    evaluate_expression(gt, pr)
    one = time.perf_counter() - t0
    print(
        f"metrics only, 1 process: {FRAMES_PER_EXPRESSION} frames in {one:.2f} s "
        f"= {FRAMES_PER_EXPRESSION / one:.0f} frames/s"
    )


if __name__ == "__main__":
    main()
