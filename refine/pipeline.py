"""Video + stage-1 results → per expression stage-1, SAM2 and fused masks (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from refine.errors import InputError
from refine.frames import FrameSource
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE, FusionDecision, as_fraction, fuse
from refine.prompts import DEFAULT_NUM_POINTS, PROMPT_KINDS, Prompt, build_prompts
from refine.propagation import Propagator
from refine.selection import DEFAULT_THRESHOLD, prompt_frames, select_queries
from refine.stage1 import ExpressionStage1, VideoStage1
from refine.upsample import upsample_masks


@dataclass(frozen=True)
class RefineParams:
    """Algorithm settings, defaults of DESIGN §2."""

    threshold: float = DEFAULT_THRESHOLD
    area_ratio: Fraction = DEFAULT_AREA_RATIO
    vote: Fraction = DEFAULT_VOTE
    prompt: str = "mask"
    points_seed: int = 0
    num_points: int = DEFAULT_NUM_POINTS

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < 1:
            raise InputError(f"threshold must lie in [0, 1), got {self.threshold}")
        try:
            object.__setattr__(self, "area_ratio", as_fraction(self.area_ratio, "area ratio"))
            object.__setattr__(self, "vote", as_fraction(self.vote, "vote"))
        except ValueError as err:
            raise InputError(str(err)) from err
        if self.prompt not in PROMPT_KINDS:
            raise InputError(f"prompt {self.prompt!r} is not one of {list(PROMPT_KINDS)}")

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "area_ratio": str(self.area_ratio),
            "vote": str(self.vote),
            "prompt": self.prompt,
            "points_seed": self.points_seed,
            "num_points": self.num_points,
        }


@dataclass
class ExpressionResult:
    """Everything one expression produced.

    kept: [K] kept query indices; prompt_frames: [K]; prompts: K prompts;
    stage1 / sam2 / fused: [T, H, W] bool unions; sam2_objects: [T, K, H, W] bool.
    """

    exp_id: str
    sentence: str | None
    kept: np.ndarray
    prompt_frames: np.ndarray
    stage1: np.ndarray
    sam2: np.ndarray
    fused: np.ndarray
    decision: FusionDecision
    sam2_objects: np.ndarray | None = None
    prompts: list[Prompt] = field(default_factory=list)

    def refuse(self, area_ratio: float | str | Fraction, vote: float | str | Fraction) -> None:
        """Re-run only the fusion with new ρ and v (SAM2 masks are reused)."""
        self.fused, self.decision = fuse(self.stage1, self.sam2, area_ratio, vote)

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


ProgressFn = Callable[[str, int, int], None]


def check_video_matches(
    stage1: VideoStage1, frame_names: list[str], frames: FrameSource, source: str
) -> None:
    """Stage-1 frame names and size must agree with the video's frames."""
    if list(stage1.frame_names) != list(frame_names):
        raise InputError(
            f"{source}: stage-1 has {len(stage1.frame_names)} frames "
            f"(e.g. {stage1.frame_names[:3]}), the video has {len(frame_names)} "
            f"(e.g. {list(frame_names)[:3]}); T or frame names mismatch"
        )
    if tuple(stage1.video_size) != (frames.height, frames.width):
        raise InputError(
            f"{source}: stage-1 video_size is {list(stage1.video_size)} but frames are "
            f"{frames.height}x{frames.width} (H x W)"
        )


@dataclass(frozen=True)
class PreparedExpression:
    """Selection and prompts of one expression, before SAM2: kept [K], frames [K], K prompts."""

    exp_id: str
    exp: ExpressionStage1
    kept: np.ndarray
    frames: np.ndarray
    prompts: list[Prompt]


def prepare_expression(
    exp_id: str, exp: ExpressionStage1, size: tuple[int, int], params: RefineParams
) -> PreparedExpression:
    kept = select_queries(exp.scores, params.threshold)
    if len(kept) == 0:
        return PreparedExpression(exp_id, exp, kept, kept.copy(), [])
    frames_k = prompt_frames(exp.scores, kept)
    # only the prompt frames' masks are needed here: [K, h, w] → [K, H, W]
    prompt_logits = exp.masks[frames_k, kept][None]
    prompts = build_prompts(
        params.prompt,
        frames_k,
        upsample_masks(prompt_logits, size)[0],
        exp.boxes[frames_k, kept],
        size,
        seed=params.points_seed,
        num_points=params.num_points,
    )
    return PreparedExpression(exp_id, exp, kept, frames_k, prompts)


def _finish(
    prep: PreparedExpression,
    sam2_objects: np.ndarray | None,
    shape: tuple[int, int, int],
    params: RefineParams,
) -> ExpressionResult:
    t, h, w = shape
    if sam2_objects is None:
        stage1 = np.zeros(shape, dtype=bool)
        sam2_objects = np.zeros((t, 0, h, w), dtype=bool)
    else:
        stage1 = upsample_masks(prep.exp.masks[:, prep.kept], (h, w)).any(axis=1)
    sam2 = sam2_objects.any(axis=1)
    fused, decision = fuse(stage1, sam2, params.area_ratio, params.vote)
    return ExpressionResult(
        prep.exp_id,
        prep.exp.sentence,
        prep.kept,
        prep.frames,
        stage1,
        sam2,
        fused,
        decision,
        sam2_objects,
        prep.prompts,
    )


def refine_expression(
    exp_id: str,
    exp: ExpressionStage1,
    frames: FrameSource,
    propagator: Propagator,
    params: RefineParams = RefineParams(),
    progress: Callable[[int, int], None] | None = None,
) -> ExpressionResult:
    """Selection → prompts → SAM2 propagation → fusion for one expression."""
    (result,) = refine_video(
        frames,
        VideoStage1((frames.height, frames.width), [], {exp_id: exp}),
        propagator,
        params,
        progress=progress and (lambda _e, d, n: progress(d, n)),
    )
    return result


def refine_video(
    frames: FrameSource,
    stage1: VideoStage1,
    propagator: Propagator,
    params: RefineParams = RefineParams(),
    exp_ids: Iterable[str] | None = None,
    progress: ProgressFn | None = None,
) -> list[ExpressionResult]:
    """Results for each expression of ``stage1`` (or ``exp_ids``), in that order.

    All expressions with kept queries go to the propagator in one call, so that SAM2
    can share each frame's features between them. Expressions with no kept query are
    not tracked: their output is empty. ``progress(label, frames_done, frames_total)``
    is called as SAM2 tracks.
    """
    ids = list(stage1.expressions) if exp_ids is None else list(exp_ids)
    for exp_id in ids:
        if exp_id not in stage1.expressions:
            raise InputError(f"expression {exp_id!r} is not in the stage-1 results")
    size = (frames.height, frames.width)
    prepared = [prepare_expression(e, stage1.expressions[e], size, params) for e in ids]
    to_track = [p for p in prepared if p.prompts]
    cb = None if progress is None else (lambda d, n: progress("SAM2", d, n))
    tracked = dict(
        zip(
            (p.exp_id for p in to_track),
            propagator.track(frames, [p.prompts for p in to_track], cb),
        )
    )
    shape = (len(frames), *size)
    return [_finish(p, tracked.get(p.exp_id), shape, params) for p in prepared]
