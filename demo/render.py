"""Building what the page shows from a session: the full view of a case, the overlays of
one frame, the slow parts after a ρ/v change (pure functions of the session; the text
pieces are in :mod:`demo.views`)."""

from __future__ import annotations

import gradio as gr

from demo.config import AppConfig
from demo.controls import Controls
from demo.views import (
    NO_CASE,
    case_info,
    decision_text,
    expression_choices,
    metrics_note,
    metrics_rows,
    runs_text,
    stale_notes,
    status_text,
)
from refine.inspect import RunSettings, Session
from refine.overlay import area_ratio_plot, score_plot
from refine.selection import prompt_frames, select_queries

FRAME_OUTPUTS = ("img_stage1", "img_sam2", "img_fused")
VIDEO_OUTPUTS = ("vid_stage1", "vid_sam2", "vid_fused")
SLOW_OUTPUTS = ("plot_ratio", "metrics", "metrics_note")
VIEW_OUTPUTS = (
    "session",
    "expression",
    "frame",
    *FRAME_OUTPUTS,
    "case_info",
    "decision",
    "status",
    "sam2_runs",
    "banner",
    "plot_scores",
    *SLOW_OUTPUTS,
    *VIDEO_OUTPUTS,
)
REFUSE_OUTPUTS = ("img_fused", "decision", "status")
REFUSE_SLOW_OUTPUTS = ("vid_fused", *SLOW_OUTPUTS, "rank_table", "status")


def frame_index(session: Session | None, t: float | None) -> int:
    """The frame slider's value as a frame of the open case (clamped; 0 without one)."""
    if session is None or session.case is None or t is None or t != t:  # NaN
        return 0
    return min(max(int(t), 0), session.case.num_frames - 1)


def banner_visible(config: AppConfig, controls: Controls | None, session: Session | None) -> bool:
    """The warning banner shows with random weights chosen or shown, or the fake SAM2."""
    run = session.run if session is not None else None
    return (
        config.fake_sam2
        or (controls is not None and controls.random_weights)
        or (run is not None and run.settings.spec.random_weights)
    )


def empty_view(config: AppConfig, session: Session | None, status: str = "") -> dict:
    """The page with no case open (a fresh page, or after a case could not be opened)."""
    return {
        "session": session,
        "expression": gr.update(choices=[], value=None),
        "frame": gr.update(maximum=1, value=0),
        **{k: None for k in (*FRAME_OUTPUTS, *VIDEO_OUTPUTS, "plot_scores", "plot_ratio")},
        "case_info": NO_CASE,
        "decision": "",
        "status": status,
        "sam2_runs": runs_text(session.sam2_runs if session is not None else 0),
        "banner": gr.update(visible=banner_visible(config, None, session)),
        "metrics": [],
        "metrics_note": "",
    }


def view(
    config: AppConfig,
    session: Session,
    controls: Controls,
    settings: RunSettings,
    t: float | None = 0,
    extra: str | None = None,
) -> dict:
    """Everything shown for the session's case, expression and run at frame ``t``."""
    case = session.case
    if case is None:
        return empty_view(config, session, extra or "")
    t = frame_index(session, t)
    run = session.run
    out = {
        "session": session,
        "expression": gr.update(choices=expression_choices(case), value=session.exp_id),
        "frame": gr.update(maximum=max(case.num_frames - 1, 1), value=t),
        **frame_overlays(session, t),
        "case_info": case_info(case, session.exp_id),
        "decision": decision_text(run, session.decision, controls.threshold),
        "status": status_text(stale_notes(run, settings, controls.device_auto), extra),
        "sam2_runs": runs_text(session.sam2_runs),
        "banner": gr.update(visible=banner_visible(config, controls, session)),
        "plot_scores": query_plot(session, controls.threshold),
        **slow_parts(session),
    }
    if run is None:
        out.update({k: None for k in VIDEO_OUTPUTS})
    return out


def frame_overlays(session: Session, t: float | None) -> dict:
    """The three overlays of frame ``t`` (None for SAM2/fused before a run)."""
    imgs = session.overlays(frame_index(session, t))
    return {f"img_{stage}": img for stage, img in imgs.items()}


def slow_parts(session: Session) -> dict:
    """The area-ratio plot, the metrics and their note."""
    run, d = session.run, session.decision
    ratio = None
    if run is not None and d is not None and len(run.result.kept):
        ratio = area_ratio_plot(d.area_stage1, d.area_sam2, d.area_ratio)
    scores = session.scores()
    return {
        "plot_ratio": ratio,
        "metrics": metrics_rows(scores),
        "metrics_note": metrics_note(session.case, run, scores),
    }


def query_plot(session: Session, threshold: float):
    """The query scores per frame with θ, the kept queries and their prompt frames."""
    exp = session.case.expression(session.exp_id)
    kept = select_queries(exp.scores, threshold)
    frames = prompt_frames(exp.scores, kept)
    title = None
    run = session.run
    if run is not None and run.settings.threshold != threshold:
        title = (
            f"at θ = {threshold:g} SAM2 would prompt {list(map(int, kept)) or 'no query'} "
            f"(shown masks: θ = {run.settings.threshold:g})"
        )
    return score_plot(exp.scores, threshold, kept, frames, title)
