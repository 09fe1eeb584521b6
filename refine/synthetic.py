"""Synthetic videos and stage-1 results, for tests and benchmarks (no real data needed)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from refine.stage1 import ExpressionStage1


def textured_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3] uint8 frames: a moving red square on a smooth, noisy background."""
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


def write_jpegs(frames: np.ndarray, directory: str, quality: int = 90) -> list[str]:
    """Write [T, H, W, 3] frames as ``00000.jpg`` … into ``directory``; returns the stems."""
    os.makedirs(directory, exist_ok=True)
    names = [f"{i:05d}" for i in range(len(frames))]
    for name, img in zip(names, frames):
        Image.fromarray(img).save(os.path.join(directory, f"{name}.jpg"), quality=quality)
    return names


def random_expression(
    rng: np.random.Generator,
    t: int,
    n: int,
    low: tuple[int, int],
    peaks: list[tuple[int, float]],
    sentence: str | None = None,
) -> ExpressionStage1:
    """Stage-1 results with N queries; query q of ``peaks`` peaks at frame f with score v.

    The other queries score below 0.2. Logits [T, N, *low] are moving discs.
    """
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
    return ExpressionStage1(scores, boxes.astype(np.float32), masks, sentence)
