"""Bounds on the SAM2 work one request may ask for, checked before any tracking.

SAM2's cost grows with frames × tracked objects (each object keeps its own memory and is
tracked over every frame, forward and back); a ranking's with the number of expressions.
The defaults let a clip of the longest uploadable length (600 frames) track 20 objects,
and a clip of 240 frames every one of the 50 queries an upload may have (the bundled
examples: 12 frames × at most 4); a ranking runs up to 100 expressions, a data set is ranked
in parts of that size.
"""

from __future__ import annotations

from dataclasses import dataclass

from refine.errors import InputError
from refine.inspect.runs import Tracker
from refine.memory import SAM2_MEMORY
from refine.selection import select_queries
from refine.stage1 import ExpressionStage1


class TooMuchWork(InputError):
    """A SAM2 run over :attr:`WorkLimits.max_run_work`; nothing was tracked."""


@dataclass(frozen=True)
class WorkLimits:
    """max_rank_expressions: expressions one ranking may run; max_run_work: frames ×
    tracked objects of one SAM2 run (one expression)."""

    max_rank_expressions: int = 100
    max_run_work: int = 600 * 20

    def __post_init__(self) -> None:
        for name in ("max_rank_expressions", "max_run_work"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")

    def check_rank(self, count: int) -> None:
        """Refuse a ranking of more than :attr:`max_rank_expressions` expressions."""
        if count > self.max_rank_expressions:
            raise InputError(
                f"ranking {count} expressions is over this app's limit of "
                f"{self.max_rank_expressions} per ranking; lower “at most N expressions” to "
                f"{self.max_rank_expressions} or less (rank a large set in parts)"
            )

    def check_run(self, exp_id: str, frames: int, objects: int) -> None:
        """Refuse (TooMuchWork) a SAM2 run of ``frames`` × ``objects`` over
        :attr:`max_run_work`."""
        if frames * objects > self.max_run_work:
            raise TooMuchWork(
                f"expression {exp_id}: {frames} frames × {objects} tracked objects = "
                f"{frames * objects}, over this app's limit of {self.max_run_work} "
                "frames × objects per SAM2 run; raise θ so that fewer queries are kept, or "
                "use a shorter clip"
            )


def tracked_objects(exp: ExpressionStage1, threshold: float) -> int:
    """Objects SAM2 tracks for ``exp`` at θ: the queries that selection keeps."""
    return len(select_queries(exp.scores, threshold))


def bounded(track: Tracker, limits: WorkLimits) -> Tracker:
    """``track`` that first refuses a run over ``limits.max_run_work`` (no tracking then)."""

    def run(frames, exp_id, exp, params, spec, progress, memory=SAM2_MEMORY):
        limits.check_run(exp_id, len(frames), tracked_objects(exp, params.threshold))
        return track(frames, exp_id, exp, params, spec, progress, memory)

    return run
