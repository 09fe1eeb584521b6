"""Fake propagators with known masks, for tests and for checking examples without SAM2."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from refine.frames import FrameSource
from refine.prompts import Prompt


def prompt_region(p: Prompt, height: int, width: int) -> np.ndarray:
    """The pixels a prompt names: its mask, its box (inclusive of x1..x2-1), or its points."""
    m = np.zeros((height, width), dtype=bool)
    if p.mask is not None:
        m |= p.mask
    elif p.box is not None:
        x1, y1, x2, y2 = (round(float(v)) for v in p.box)
        m[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
    else:
        xs = np.clip(p.points[:, 0].astype(int), 0, width - 1)
        ys = np.clip(p.points[:, 1].astype(int), 0, height - 1)
        m[ys, xs] = True
    return m


class StaticPropagator:
    """Each object's mask on every frame is its prompt region (no motion at all).

    Records the prompt sets it was given in ``calls``.
    """

    def __init__(self) -> None:
        self.calls: list[list[Prompt]] = []

    def track(
        self,
        frames: FrameSource,
        prompt_sets: Sequence[Sequence[Prompt]],
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[np.ndarray]:
        t, h, w = len(frames), frames.height, frames.width
        for prompts in prompt_sets:
            self.calls.append(list(prompts))
            regions = np.stack([prompt_region(p, h, w) for p in prompts])  # [K, H, W]
            if progress is not None:
                progress(t, t)
            yield np.broadcast_to(regions, (t, *regions.shape)).copy()
