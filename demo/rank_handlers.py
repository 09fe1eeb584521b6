"""Handlers of the failure-cases tab: rank a set by J&F, reorder, open a row."""

from __future__ import annotations

import dataclasses
import functools

import gradio as gr

from demo.case_handlers import CaseHandlers
from demo.context import AppContext, slider_fraction, user_errors, warning_status
from demo.controls import Controls
from demo.run_handlers import PROGRESS, RunHandlers
from demo.views import plural, rank_table, runs_text
from refine.errors import InputError
from refine.inspect import RunCancelled, Session, find_row, rank_expressions, rank_rows
from refine.memory import MemoryConfig

RANK_CURRENT = "current"
RANK_ORDER_CHOICES = [
    ("fused J&F (worst first)", "fused"),
    ("change from stage 1 (worst first)", "delta"),
    ("change between memories: this − other (worst first; runs both)", "memory"),
]
VIDEO_COLUMN, EXP_COLUMN = 1, 2  # columns of the table that name a row's case


class RankHandlers:
    """Ranking expressions with ground truth, and opening a ranked row."""

    def __init__(self, ctx: AppContext, cases: CaseHandlers, runs: RunHandlers) -> None:
        self.ctx, self.cases, self.runs = ctx, cases, runs

    def rank_sets(self) -> list[tuple[str, str]]:
        """Choices of sets to rank: example set, data set (with GT), current case."""
        out = [("bundled examples", "examples")]
        if "dataset" in self.ctx.sources and self.ctx.sources["dataset"].has_gt:
            out.append(("data set (--mevis-root)", "dataset"))
        out.append(("current case (needs ground truth)", RANK_CURRENT))
        return out

    @user_errors
    def rank(
        self,
        session: Session | None,
        rank_set: str,
        rank_order: str,
        limit: float | None,
        controls: Controls,
        area_ratio: float,
        vote: float,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
    ) -> dict:
        """Run SAM2 on every expression with ground truth in the set, rank by J&F."""
        session = self.ctx.session(session, request)
        session.set_fusion(slider_fraction(area_ratio, "ρ"), slider_fraction(vote, "v"))
        limit = int(limit or 0)
        if limit < 1:
            raise InputError(f"the number of expressions to rank must be at least 1, got {limit}")
        self.ctx.config.work.check_rank(limit)
        items = self._rank_items(session, rank_set)[:limit]
        settings = self.ctx.run_settings(controls)
        compare = None
        if rank_order == "memory":  # SAM2 and SAMURAI on every expression
            other = "sam2" if settings.memory.samurai else "samurai"
            compare = dataclasses.replace(settings, memory=MemoryConfig(other))

        done = [0]

        def on_progress(i: int, n: int, label: str) -> None:
            done[0] = i
            progress((i, n), desc=f"ranking: {label}", unit="expressions")

        def on_wait() -> None:  # between expressions, other sessions' runs go first
            progress((done[0], len(items)), desc="ranking: waiting for SAM2…", unit="expressions")

        note, skipped = None, []
        tracker = self.ctx.tracker(session, on_wait)
        try:
            with self.runs.track(session):
                rows = rank_expressions(
                    session, items, settings, tracker, on_progress, rank_set, compare, skipped
                )
        except RunCancelled as err:
            gr.Warning(f"ranking stopped ({err})")
            rows, note = session.ranking, warning_status(f"Stopped: {err}.")
        if not rows and skipped:
            raise InputError(skipped[0])
        if not rows and note is None:
            raise InputError(f"no expression of the {rank_set} set has ground truth to rank by")
        note = note or (
            f"{plural(len(rows), 'expression')} ranked with {self.ctx.model_name(settings)}. "
            "Click a row to open it (its SAM2 masks are cached)."
        )
        if skipped:
            more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            note += f" Left out, too much SAM2 work: {'; '.join(skipped[:3])}{more}"
        return {
            "session": session,
            "rank_table": self._table(session, rank_order),
            "rank_note": note,
            "sam2_runs": runs_text(session.sam2_runs),
            "status": "",
        }

    def _rank_items(self, session: Session, rank_set: str) -> list:
        if rank_set == RANK_CURRENT:
            case = session.case
            if case is None:
                raise InputError("open a case first, or rank the bundled examples")
            if case.gt is None:
                raise InputError(
                    f"{case.video} has no ground truth; upload a ground-truth zip with it, "
                    "or rank a set with ground truth"
                )
            return [((case.key, lambda charge, c=case: c), e) for e in case.exp_ids]
        if rank_set not in self.ctx.sources:
            raise InputError(
                f"unknown set {rank_set!r}; choose one of {[v for _, v in self.rank_sets()]}"
            )
        src = self.ctx.sources[rank_set]
        if not src.has_gt:
            raise InputError(f"the {rank_set} set has no mask_dict.json: no ground truth")
        return [
            ((src.case_key(video), functools.partial(src.load_case, video)), exp_id)
            for video, exp_id, _ in src.expressions()
        ]

    def _table(self, session: Session, order: str) -> list[list]:
        return rank_table(rank_rows(session.ranking, session.area_ratio, session.vote, order))

    @user_errors
    def reorder(self, session: Session | None, rank_order: str) -> dict:
        """The table in ``rank_order`` under the session's ρ, v (nothing before a ranking)."""
        if session is None or not session.ranking:
            return {"rank_table": []}
        return {"rank_table": self._table(session, rank_order)}

    @user_errors
    def open_ranked(self, session: Session | None, controls: Controls, evt: gr.SelectData) -> dict:
        """A click on a ranked row opens that case and expression. The row is found by its
        values (video, exp), not its index: the table may be sorted in the browser."""
        if session is None or not session.ranking:
            raise InputError("rank a set first")
        values = evt.row_value
        if not isinstance(values, (list, tuple)) or len(values) <= EXP_COLUMN:
            raise InputError(f"the clicked row {values!r} does not name a video and expression")
        row = find_row(session.ranking, str(values[VIDEO_COLUMN]), str(values[EXP_COLUMN]))
        case = session.known_case(row.case_key)
        if case is None:
            if row.source not in self.ctx.sources:
                raise InputError(f"{row.video} is no longer in memory; open it again")
            src = self.ctx.sources[row.source]
            case = session.case_for((row.case_key, functools.partial(src.load_case, row.video)))
        return self.cases.show(session, case, row.exp_id, controls)
