"""What one expression produced, with its masks kept compactly (run-length encoded)."""

from __future__ import annotations

from fractions import Fraction
from functools import cached_property

import numpy as np

from refine.fusion import FusionDecision, apply_decision, bbox_area, decide
from refine.prompts import Prompt
from refine.rle_masks import LazyFrames, RleMasks


class ExpressionResult:
    """Selection, prompts, masks and fusion decision of one expression.

    kept: [K] kept query indices; prompt_frames: [K]; prompts: K prompts. Masks are held
    as run-length encodings and decoded a frame at a time: ``stage1_frame(t)``,
    ``sam2_frame(t)``, ``fused_frame(t)`` → [H, W] bool, ``sam2_objects_frame(t)`` →
    [K, H, W] bool, ``fused_frames()`` → a lazy sequence of T frames. The whole-clip
    arrays ``stage1`` / ``sam2`` / ``fused`` [T, H, W] bool and ``sam2_objects``
    [T, K, H, W] bool are decoded on first access (for callers that want them; they
    cost T·H·W bytes each).
    """

    def __init__(
        self,
        exp_id: str,
        sentence: str | None,
        kept: np.ndarray,
        prompt_frames: np.ndarray,
        stage1_union: RleMasks,
        objects: RleMasks,
        decision: FusionDecision,
        prompts: list[Prompt] | None = None,
    ) -> None:
        self.exp_id = exp_id
        self.sentence = sentence
        self.kept = kept
        self.prompt_frames = prompt_frames
        self.decision = decision
        self.prompts = prompts or []
        self._stage1 = stage1_union  # [T, 1, H, W]
        self._objects = objects  # [T, K, H, W]

    @classmethod
    def from_masks(
        cls,
        exp_id: str,
        sentence: str | None,
        kept: np.ndarray,
        prompt_frames: np.ndarray,
        stage1_frame,
        objects: RleMasks,
        area_ratio: float | str | Fraction,
        vote: float | str | Fraction,
        prompts: list[Prompt] | None = None,
    ) -> ExpressionResult:
        """Encode stage-1 unions frame by frame (``stage1_frame(t)`` → [H, W] bool) and
        decide the fusion from both unions' per-frame box areas."""
        t_total, _, h, w = objects.shape
        stage1 = RleMasks(t_total, 1, h, w)
        a1 = np.zeros(t_total, np.int64)
        a2 = np.zeros(t_total, np.int64)
        for t in range(t_total):
            s1 = stage1_frame(t)
            stage1[t] = s1[None]
            a1[t], a2[t] = bbox_area(s1), bbox_area(objects.union(t))
        decision = decide(a1, a2, area_ratio, vote)
        return cls(exp_id, sentence, kept, prompt_frames, stage1, objects, decision, prompts)

    @property
    def num_frames(self) -> int:
        return len(self._objects)

    def stage1_frame(self, t: int) -> np.ndarray:
        return self._stage1[t][0]

    def sam2_frame(self, t: int) -> np.ndarray:
        return self._objects.union(t)

    def sam2_objects_frame(self, t: int) -> np.ndarray:
        return self._objects[t]

    def fused_frame(self, t: int, decision: FusionDecision | None = None) -> np.ndarray:
        """Frame ``t`` fused under ``decision`` (default: this result's)."""
        d = self.decision if decision is None else decision
        return apply_decision(self.stage1_frame(t), self.sam2_frame(t), d)

    def fused_frames(self) -> LazyFrames:
        return LazyFrames(self.num_frames, self.fused_frame)

    @cached_property
    def stage1(self) -> np.ndarray:
        return self._stage1.to_array()[:, 0]

    @cached_property
    def sam2_objects(self) -> np.ndarray:
        return self._objects.to_array()

    @cached_property
    def sam2(self) -> np.ndarray:
        return self.sam2_objects.any(axis=1)

    @cached_property
    def fused(self) -> np.ndarray:
        return apply_decision(self.stage1, self.sam2, self.decision)

    @property
    def mask_bytes(self) -> int:
        """Bytes of the run-length encoded masks this result holds."""
        return self._stage1.nbytes + self._objects.nbytes

    def refuse(self, area_ratio: float | str | Fraction, vote: float | str | Fraction) -> None:
        """Re-run only the fusion vote with new ρ and v (the per-frame areas are reused)."""
        d = self.decision
        self.decision = decide(d.area_stage1, d.area_sam2, area_ratio, vote)
        self.__dict__.pop("fused", None)

    def diagnostics(self) -> dict:
        """JSON-ready fusion diagnostics."""
        d = self.decision
        return {
            "kept_queries": self.kept.tolist(),
            "prompt_frames": self.prompt_frames.tolist(),
            "area_stage1": d.area_stage1.tolist(),
            "area_sam2": d.area_sam2.tolist(),
            "valid": d.valid,
            "shrunk": d.shrunk,
            "multi": d.multi,
            "decision": d.describe(),
        }
