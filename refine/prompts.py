"""SAM2 prompts for kept queries (design §2 step 4): mask (default), box or points."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

PromptKind = Literal["mask", "box", "points"]
PROMPT_KINDS: tuple[str, ...] = ("mask", "box", "points")
DEFAULT_NUM_POINTS = 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """One object's prompt on one frame.

    obj_id: index of the query among kept queries; frame: prompt frame index.
    Exactly one of ``mask`` ([H, W] bool), ``box`` ([4] float x1, y1, x2, y2 pixels)
    or ``points`` ([P, 2] float x, y pixels, all positive) is set.
    """

    obj_id: int
    frame: int
    mask: np.ndarray | None = None
    box: np.ndarray | None = None
    points: np.ndarray | None = None

    @property
    def kind(self) -> str:
        if self.mask is not None:
            return "mask"
        return "box" if self.box is not None else "points"


def boxes_to_pixels(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized (cx, cy, w, h) → pixel (x1, y1, x2, y2): [..., 4] → [..., 4] float32."""
    b = np.asarray(boxes, dtype=np.float32)
    cx, cy = b[..., 0] * np.float32(width), b[..., 1] * np.float32(height)
    bw, bh = b[..., 2] * np.float32(width), b[..., 3] * np.float32(height)
    half = np.float32(0.5)
    return np.stack([cx - half * bw, cy - half * bh, cx + half * bw, cy + half * bh], axis=-1)


def sample_points(mask: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """``num_points`` (x, y) pixels drawn from ``mask`` [H, W] → [P, 2] float32.

    Without replacement when the mask has enough pixels, with replacement otherwise;
    an empty mask gives [0, 2].
    """
    yx = np.argwhere(mask)
    if len(yx) == 0:
        return np.zeros((0, 2), np.float32)
    idx = rng.choice(len(yx), num_points, replace=len(yx) < num_points)
    return yx[idx, ::-1].astype(np.float32)


def build_prompts(
    kind: str,
    frames: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    video_size: tuple[int, int],
    seed: int = 0,
    num_points: int = DEFAULT_NUM_POINTS,
) -> list[Prompt]:
    """Prompts for K kept queries.

    frames: [K] prompt frame per query; masks: [K, H, W] bool (each query's upsampled
    stage-1 mask on its prompt frame); boxes: [K, 4] normalized cx, cy, w, h on that
    frame. Points are sampled with ``numpy.random.default_rng(seed)``, query by query.
    A query whose mask is empty has no points to sample: it is prompted with its box
    instead, and a warning is logged.
    """
    if kind not in PROMPT_KINDS:
        raise ValueError(f"prompt kind {kind!r} is not one of {PROMPT_KINDS}")
    h, w = video_size
    pixel_boxes = boxes_to_pixels(boxes, h, w)
    rng = np.random.default_rng(seed)
    prompts = []
    for k, frame in enumerate(np.asarray(frames).tolist()):
        if kind == "mask":
            prompts.append(Prompt(k, frame, mask=np.asarray(masks[k], dtype=bool)))
            continue
        if kind == "points":
            pts = sample_points(masks[k], num_points, rng)
            if len(pts):
                prompts.append(Prompt(k, frame, points=pts))
                continue
            log.warning(
                "query %d: empty stage-1 mask on frame %d, prompting with its box", k, frame
            )
        prompts.append(Prompt(k, frame, box=pixel_boxes[k]))
    return prompts
