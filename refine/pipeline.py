"""Video + stage-1 results → per expression stage-1, SAM2 and fused masks (design §2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from refine.errors import InputError
from refine.expression_result import ExpressionResult
from refine.frames import FrameSource
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE, as_fraction
from refine.prompts import DEFAULT_NUM_POINTS, PROMPT_KINDS, Prompt, build_prompts
from refine.propagation import Propagator
from refine.rle_masks import RleMasks
from refine.selection import DEFAULT_THRESHOLD, prompt_frames, select_queries
from refine.stage1 import ExpressionStage1, VideoStage1
from refine.upsample import upsample_masks


@dataclass(frozen=True)
class RefineParams:
    """Algorithm settings, defaults of design §2."""

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


def finish_expression(
    prep: PreparedExpression,
    objects: RleMasks | np.ndarray | None,
    shape: tuple[int, int, int],
    params: RefineParams,
) -> ExpressionResult:
    """Stage-1 unions, the fusion vote and the result of one tracked expression.

    objects: SAM2's masks [T, K, H, W] (RleMasks or bool array; None: not tracked, empty).
    The stage-1 masks are read once (one npz member) and upsampled a frame at a time.
    """
    t, h, w = shape
    kept = prep.kept
    objects = RleMasks(t, len(kept), h, w) if objects is None else RleMasks.of(objects)
    if len(kept) == 0:
        logits = None
    else:
        logits = prep.exp.masks[:, kept]  # [T, K, h, w], the expression's only full read

    def stage1_frame(i: int) -> np.ndarray:
        if logits is None:
            return np.zeros((h, w), dtype=bool)
        return upsample_masks(logits[i : i + 1], (h, w))[0].any(axis=0)

    return ExpressionResult.from_masks(
        prep.exp_id,
        prep.exp.sentence,
        kept,
        prep.frames,
        stage1_frame,
        objects,
        params.area_ratio,
        params.vote,
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
        params=params,
        progress=progress and (lambda _e, d, n: progress(d, n)),
    )
    return result


def refine_video(
    frames: FrameSource, stage1: VideoStage1, propagator: Propagator, **options: Any
) -> list[ExpressionResult]:
    """All results of :func:`iter_refine_video` as a list (``options``: its ``params``,
    ``exp_ids``, ``progress``)."""
    return list(iter_refine_video(frames, stage1, propagator, **options))


def iter_refine_video(
    frames: FrameSource,
    stage1: VideoStage1,
    propagator: Propagator,
    params: RefineParams = RefineParams(),
    exp_ids: Iterable[str] | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[ExpressionResult]:
    """Yield the result of each expression of ``stage1`` (or ``exp_ids``), in that order,
    as soon as it is known.

    All expressions with kept queries go to the propagator in one call, so that SAM2
    can share each frame's features between them. Expressions with no kept query are
    not tracked: their output is empty. ``progress(label, frames_done, frames_total)``
    is called as SAM2 tracks. Results hold their masks run-length encoded; a caller that
    drops each result before taking the next holds one expression's stage-1 logits at
    a time, whatever the number of expressions.
    """
    ids = list(stage1.expressions) if exp_ids is None else list(exp_ids)
    for exp_id in ids:
        if exp_id not in stage1.expressions:
            raise InputError(f"expression {exp_id!r} is not in the stage-1 results")
    size = (frames.height, frames.width)
    prepared = [prepare_expression(e, stage1.expressions[e], size, params) for e in ids]
    cb = None if progress is None else (lambda d, n: progress("SAM2", d, n))
    tracked = propagator.track(frames, [p.prompts for p in prepared if p.prompts], cb)
    shape = (len(frames), *size)
    for p in prepared:
        yield finish_expression(p, next(tracked) if p.prompts else None, shape, params)
