"""Failure cases: each expression's J&F per stage, ranked worst first under ρ, v."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from refine.errors import InputError
from refine.fusion import FusionDecision, decide, union_branch
from refine.inspect.runs import CaseRun, RunCancelled, RunSettings, Tracker, branch
from refine.inspect.work_limits import TooMuchWork

if TYPE_CHECKING:
    from refine.inspect.session import CaseLoader, Session

RANK_ORDERS = ("fused", "delta", "memory")


def jf(score) -> float:
    """(J + F) / 2 of an ExpressionScore, as a fraction."""
    return (score.J + score.F) / 2


def stage_scores(run: CaseRun, gt: np.ndarray) -> dict:
    """J and F of the run's stage-1, SAM2 and union masks against ``gt`` [T, H, W]:
    {"stage1", "sam2", "union"} → ExpressionScore (the fused masks are one of the last two
    for any ρ, v)."""
    from refine.metrics import evaluate_stages

    stage1, sam2 = run.result.stage1.array(), run.result.sam2.array()
    union = union_branch(stage1, sam2)
    return evaluate_stages(gt, {"stage1": stage1, "sam2": sam2, "union": union})


def fused_scores(scores: dict, decision: FusionDecision) -> dict:
    """{"stage1", "sam2", "fused"} → ExpressionScore under ``decision``."""
    return {"stage1": scores["stage1"], "sam2": scores["sam2"], "fused": scores[branch(decision)]}


@dataclass(frozen=True)
class RankRow:
    """One expression's scores for the failure-case table (fused is derived per ρ, v)."""

    source: str
    case_key: str
    video: str
    exp_id: str
    sentence: str
    scores: dict  # "stage1", "sam2", "union" → ExpressionScore
    area_stage1: np.ndarray
    area_sam2: np.ndarray
    other: RankRow | None = None  # the same expression tracked with the other memory

    def decision(self, area_ratio: Fraction, vote: Fraction) -> FusionDecision:
        return decide(self.area_stage1, self.area_sam2, area_ratio, vote)

    def fused_score(self, decision: FusionDecision):
        return self.scores[branch(decision)]

    def memory_change(self, area_ratio: Fraction, vote: Fraction) -> float | None:
        """Fused J&F with this row's memory minus with the other memory (None when the
        other was not run), each under its own fusion decision at ρ, v."""
        if self.other is None:
            return None
        mine = jf(self.fused_score(self.decision(area_ratio, vote)))
        return mine - jf(self.other.fused_score(self.other.decision(area_ratio, vote)))


def rank_rows(
    rows: Iterable[RankRow], area_ratio: Fraction, vote: Fraction, order: str = "fused"
) -> list[tuple[RankRow, FusionDecision]]:
    """Rows worst first: by fused J&F (``order="fused"``), by fused − stage-1 J&F
    (``"delta"``), or by fused J&F with this memory − with the other memory (``"memory"``,
    rows ranked with both), under ρ, v; ties keep input order."""
    if order not in RANK_ORDERS:
        raise InputError(f"rank order {order!r} is not one of {list(RANK_ORDERS)}")
    rows = list(rows)
    if order == "memory" and any(r.other is None for r in rows):
        raise InputError(
            "these rows were ranked with one tracking memory only; rank again with "
            "'change between memories' to run SAM2 and SAMURAI on each expression"
        )
    out = [(r, r.decision(area_ratio, vote)) for r in rows]

    def key(item: tuple[RankRow, FusionDecision]) -> float:
        row, d = item
        fused = jf(row.fused_score(d))
        if order == "memory":
            return row.memory_change(area_ratio, vote)
        return fused - jf(row.scores["stage1"]) if order == "delta" else fused

    return sorted(out, key=key)


def _scored_row(session, case, exp_id: str, gt, settings, tracker, source: str) -> RankRow:
    """The row of one expression run (or reused) with ``settings`` and scored against gt."""
    run = session.runs.get((case.key, exp_id, settings))
    if run is None:
        run = session.track(case, exp_id, settings, tracker)
    if run.scores is None:
        run.scores = stage_scores(run, gt)
    r = run.result
    return RankRow(
        source,
        case.key,
        case.video,
        exp_id,
        case.sentence(exp_id),
        run.scores,
        r.area_stage1,
        r.area_sam2,
    )


def find_row(rows: Iterable[RankRow], video: str, exp_id: str) -> RankRow:
    """The row of (video, exp_id): what a click on a table row names, whatever order the
    table is shown in."""
    for row in rows:
        if row.video == video and row.exp_id == exp_id:
            return row
    raise InputError(f"{video}/{exp_id} is not in the ranking; rank the set again")


def rank_expressions(
    session: Session,
    items: Iterable[tuple[CaseLoader, str]],
    settings: RunSettings,
    tracker: Tracker,
    progress: Callable[[int, int, str], None] | None = None,
    source: str = "",
    compare: RunSettings | None = None,
    skipped: list[str] | None = None,
) -> list[RankRow]:
    """Run (or reuse) SAM2 in ``session`` on each (case loader, exp_id) with ground truth
    and score it; expressions without ground truth are left out. With ``compare`` (e.g. the
    other tracking memory) each expression is also run with those settings, as the row's
    ``other``. The rows become the session's ranking. ``progress(i, n, label)``; the
    session's stop request → RunCancelled. Each expression is one call of ``tracker`` (per
    settings), so a tracker that takes turns (:func:`refine.inspect.fair_queue.gated`) lets
    other work in between. An expression the tracker refuses as too much work
    (TooMuchWork) is left out, its message added to ``skipped``.
    """
    items = list(items)
    rows: list[RankRow] = []
    for i, (load, exp_id) in enumerate(items):
        if session.cancel.is_set():
            raise RunCancelled(f"stopped after {i} of {len(items)} expressions")
        case = session.case_for(load)
        if progress is not None:
            progress(i, len(items), f"{case.video}/{exp_id}")
        gt = case.ground_truth(exp_id)
        if gt is None:
            continue
        try:
            row = _scored_row(session, case, exp_id, gt, settings, tracker, source)
            if compare is not None:
                other = _scored_row(session, case, exp_id, gt, compare, tracker, source)
                row = dataclasses.replace(row, other=other)
        except TooMuchWork as err:
            if skipped is None:
                raise
            skipped.append(f"{case.video}: {err}")
            continue
        rows.append(row)
    if progress is not None:
        progress(len(items), len(items), "done")
    session.ranking = rows
    return rows
