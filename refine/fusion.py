"""Conditional mask fusion (design §2 step 6).

Per frame, ``ori`` is the union of the kept queries' stage-1 masks and ``sam`` the
union of SAM2's object masks. A frame is *valid* when both bounding boxes have a
positive area, *shrunk* when area(sam) < ρ·area(ori). The expression is judged to have
lost objects ("multi") when shrunk > v·valid; then each frame's output is sam ∪ ori,
else sam alone. Ratios are compared exactly, as fractions of integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

DEFAULT_AREA_RATIO = Fraction(2, 3)
DEFAULT_VOTE = Fraction(1, 2)
_MAX_DENOMINATOR = 1_000_000


def as_fraction(value: float | str | Fraction, name: str) -> Fraction:
    """A ratio parameter as an exact fraction ("2/3", 0.5, Fraction) in [0, 1]."""
    try:
        frac = Fraction(value).limit_denominator(_MAX_DENOMINATOR)
    except (ValueError, ZeroDivisionError, TypeError) as err:
        raise ValueError(f"{name} must be a number or a fraction like 2/3, got {value!r}") from err
    if not 0 <= frac <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return frac


def bbox_areas(masks: np.ndarray) -> np.ndarray:
    """Bounding-box area (rmax−rmin)·(cmax−cmin) per frame, 0 if empty: [T, H, W] → [T] int64."""
    masks = np.asarray(masks, dtype=bool)
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    h, w = masks.shape[1:]
    present = rows.any(axis=1)
    rmin = np.argmax(rows, axis=1)
    rmax = h - 1 - np.argmax(rows[:, ::-1], axis=1)
    cmin = np.argmax(cols, axis=1)
    cmax = w - 1 - np.argmax(cols[:, ::-1], axis=1)
    return np.where(present, (rmax - rmin) * (cmax - cmin), 0).astype(np.int64)


def bbox_area(mask: np.ndarray) -> int:
    """Bounding-box area of one frame's mask [H, W] (see :func:`bbox_areas`)."""
    return int(bbox_areas(np.asarray(mask)[None])[0])


@dataclass(frozen=True)
class FusionDecision:
    """Per-frame areas [T] and the vote: valid / shrunk frame counts and the branch."""

    area_stage1: np.ndarray
    area_sam2: np.ndarray
    valid: int
    shrunk: int
    multi: bool
    area_ratio: Fraction
    vote: Fraction

    def describe(self) -> str:
        """The decision in words, with its numbers."""
        rho, v = self.area_ratio, self.vote
        verdict = "union of SAM2 and stage-1" if self.multi else "SAM2 only"
        cmp = ">" if self.multi else "≤"
        return (
            f"SAM2 box smaller than {rho} of stage-1 on {self.shrunk} of {self.valid} "
            f"comparable frames {cmp} {v} → {verdict}"
        )


def decide(
    area_stage1: np.ndarray,
    area_sam2: np.ndarray,
    area_ratio: float | str | Fraction = DEFAULT_AREA_RATIO,
    vote: float | str | Fraction = DEFAULT_VOTE,
) -> FusionDecision:
    """The fusion vote from per-frame box areas [T] (int) of stage-1 and SAM2 unions."""
    rho = as_fraction(area_ratio, "area ratio")
    v = as_fraction(vote, "vote")
    a1 = np.asarray(area_stage1, dtype=np.int64)
    a2 = np.asarray(area_sam2, dtype=np.int64)
    valid = (a1 > 0) & (a2 > 0)
    shrunk = valid & (a2 * rho.denominator < a1 * rho.numerator)
    n_valid, n_shrunk = int(valid.sum()), int(shrunk.sum())
    multi = n_shrunk * v.denominator > n_valid * v.numerator
    return FusionDecision(a1, a2, n_valid, n_shrunk, bool(multi), rho, v)


def fuse(
    stage1: np.ndarray,
    sam2: np.ndarray,
    area_ratio: float | str | Fraction = DEFAULT_AREA_RATIO,
    vote: float | str | Fraction = DEFAULT_VOTE,
) -> tuple[np.ndarray, FusionDecision]:
    """Fused masks [T, H, W] bool and the decision, from union masks [T, H, W] bool."""
    stage1 = np.asarray(stage1, dtype=bool)
    sam2 = np.asarray(sam2, dtype=bool)
    if stage1.shape != sam2.shape:
        raise ValueError(f"stage-1 masks {stage1.shape} and SAM2 masks {sam2.shape} differ")
    decision = decide(bbox_areas(stage1), bbox_areas(sam2), area_ratio, vote)
    return apply_decision(stage1, sam2, decision), decision


def union_branch(stage1: np.ndarray, sam2: np.ndarray) -> np.ndarray:
    """The masks of the fusion's union branch, sam2 ∪ stage1 (any shape, bool)."""
    return sam2 | stage1


def apply_decision(stage1: np.ndarray, sam2: np.ndarray, decision: FusionDecision) -> np.ndarray:
    """The fusion rule, the one place it is written: the union branch if the decision is
    multi, else sam2. Any shape, e.g. a clip [T, H, W] or one frame [H, W] bool."""
    return union_branch(stage1, sam2) if decision.multi else sam2.copy()
