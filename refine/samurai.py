"""SAMURAI's two rules, per object, on plain numbers (numpy; no torch, no SAM2).

SAMURAI (Yang et al., 2024, "SAMURAI: Adapting Segment Anything Model for Zero-Shot Visual
Tracking with Motion-Aware Memory") changes two things in SAM2's tracking:

* **mask choice** (:class:`ObjectMotion`): a Kalman filter follows the object's box. While
  it is not yet stable the mask with the highest predicted IoU is taken; once it is, the
  mask maximising ``w · IoU(filter box, mask box) + (1 − w) · predicted IoU``.
* **memory selection** (:func:`select_memory`): instead of the last frames, the most recent
  frames whose scores pass three thresholds (plus always the frame just tracked).

How refine differs from the reference code (yangchris11/samurai), and why:

* one filter and one score table per object (the reference keeps one filter on the model,
  shared by every object, expression and pass; sam2 1.1.0 tracks objects independently);
* a filter is restarted at the start of each pass and started from the box of the
  object's prompt mask (the reference starts it on the first tracked frame, from that
  frame's best mask, and never restarts it);
* memory selection walks back in tracking direction (toward later frames in the reverse
  pass; the reference always walks toward earlier frame numbers) and down to the first
  frame (the reference's loop stops before frames 0 and 1);
* boxes span pixel extents (x2 = last column + 1), so a one-pixel mask has a box of height
  1; an empty mask gives no box: it cannot start or update a filter (restart instead) and
  its box IoU is 0 (the reference counts a zero height as 1 and starts or updates the
  filter with an empty mask's box [0, 0, 0, 0]);
* the weighted score is computed in float64 (the reference: float32 tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from refine import kalman
from refine.memory import MemoryConfig

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class FrameScore:
    """What SAMURAI remembers of a tracked frame: the chosen mask's predicted IoU, the object
    score logit and, when the filter was stable, the chosen mask's box IoU with it."""

    iou: float
    obj_score: float
    kf_score: float | None = None

    def enters_memory(self, cfg: MemoryConfig) -> bool:
        return (
            self.iou > cfg.memory_iou
            and self.obj_score > cfg.memory_obj_score
            and (self.kf_score is None or self.kf_score > cfg.memory_kf_score)
        )


class ObjectMotion:
    """One object's Kalman filter and count of stable frames, for one pass."""

    def __init__(self, cfg: MemoryConfig, box: Box | None = None) -> None:
        self.cfg = cfg
        self.mean: np.ndarray | None = None
        self.cov: np.ndarray | None = None
        self.stable = 0
        if box is not None:
            self._start(box)

    def _start(self, box: Box) -> None:
        self.mean, self.cov = kalman.initiate(kalman.xyxy_to_xyah(box))
        self.stable = 1

    def _update(self, box: Box | None) -> None:
        if box is None:
            self.stable = 0
        else:
            self.mean, self.cov = kalman.update(self.mean, self.cov, kalman.xyxy_to_xyah(box))

    def predicted_box(self) -> np.ndarray:
        """The filter's current box [x1, y1, x2, y2]."""
        return kalman.xyah_to_xyxy(self.mean)

    def choose(
        self, ious: Sequence[float], box_of: Callable[[int], Box | None]
    ) -> tuple[int, float | None]:
        """Index of the chosen mask among M candidates and its box IoU with the filter
        (None while the filter is not stable). ``ious`` [M]: SAM2's predicted IoUs;
        ``box_of(i)``: candidate i's box (None if its mask is empty)."""
        ious = np.asarray(ious, dtype=np.float64)
        cfg = self.cfg
        if self.mean is None or self.stable == 0:  # (re)start from the best mask
            k = int(np.argmax(ious))
            box = box_of(k)
            if box is not None:
                self._start(box)
            return k, None
        self.mean, self.cov = kalman.predict(self.mean, self.cov)
        if self.stable < cfg.stable_frames:
            k = int(np.argmax(ious))
            if ious[k] > cfg.stable_iou:
                box = box_of(k)
                self._update(box)
                self.stable += box is not None
            else:
                self.stable = 0
            return k, None
        boxes = [box_of(i) for i in range(len(ious))]
        kf_ious = np.array([0.0 if b is None else kalman.box_iou(self.predicted_box(), [b])[0]
                            for b in boxes])  # fmt: skip
        k = int(np.argmax(cfg.kf_weight * kf_ious + (1 - cfg.kf_weight) * ious))
        if ious[k] < cfg.stable_iou:
            self.stable = 0
        else:
            self._update(boxes[k])
        return k, float(kf_ious[k])


def select_memory(
    scores: dict[int, FrameScore],
    frame: int,
    reverse: bool,
    cfg: MemoryConfig,
    slots: int,
    cap: int,
    num_frames: int,
) -> list[int]:
    """Frames whose memories ``frame`` attends to, nearest first (at most ``slots``).

    Walking back from ``frame`` in tracking direction (``reverse``: toward later frames)
    over the frames in ``scores``, the first ``cap`` whose scores enter the memory are
    candidates; the frame just tracked (``frame ∓ 1``) is always one, whether or not it
    has an output. The nearest ``slots`` are used. SAM2's rule is the same with every
    threshold at −∞: the last ``slots`` frames.
    """
    step = 1 if reverse else -1
    prev = frame + step
    chosen: list[int] = []
    f = prev
    while 0 <= f < num_frames and len(chosen) < cap:
        s = scores.get(f)
        if s is not None and s.enters_memory(cfg):
            chosen.append(f)
        f += step
    if prev not in chosen:
        chosen.insert(0, prev)
    return chosen[:slots]


def frames_to_keep(
    scores: dict[int, FrameScore],
    frame: int,
    reverse: bool,
    start: int,
    cfg: MemoryConfig,
    slots: int,
    cap: int,
    num_frames: int,
) -> set[int]:
    """Frames whose outputs memory selection can still read after ``frame`` was tracked:
    those the next frame selects, and in the forward pass those the reverse pass (which
    starts at ``start``, or ``start − 1`` for objects prompted there) will select first.
    Later selections only read frames among these or tracked after them."""
    step = -1 if reverse else 1
    keep = set(select_memory(scores, frame + step, reverse, cfg, slots, cap, num_frames))
    if not reverse and start > 0:
        for first in (start, start - 1):
            keep |= set(select_memory(scores, first, True, cfg, slots, cap, num_frames))
    return keep
