"""Handlers of the case picker: examples, data-set videos, uploads and the expression."""

from __future__ import annotations

import functools

import gradio as gr

from demo.context import AppContext, user_errors
from demo.controls import Controls
from demo.render import frame_index, view
from refine.errors import InputError
from refine.inspect import Case, Session, case_from_upload


def example_key(video: str, exp_id: str) -> str:
    """The example picker's value of (video, exp_id)."""
    return f"{video}/{exp_id}"


class CaseHandlers:
    """Opening cases and choosing the expression."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def example_choices(self) -> list[tuple[str, str]]:
        """(label "video · sentence", "video/exp_id") of every bundled example."""
        return [
            (f"{video} · {sentence or exp_id}", example_key(video, exp_id))
            for video, exp_id, sentence in self.ctx.sources["examples"].expressions()
        ]

    @user_errors
    def open_example(
        self,
        session: Session | None,
        example: str | None,
        controls: Controls,
        request: gr.Request | None = None,
    ) -> dict:
        """Open a bundled example, given as "video/exp_id" (or just "video")."""
        if not example:
            raise InputError("pick an example first")
        video, _, exp_id = str(example).partition("/")
        return self._open_source(session, "examples", video, exp_id or None, controls, request)

    @user_errors
    def open_dataset_video(
        self,
        session: Session | None,
        video: str | None,
        controls: Controls,
        request: gr.Request | None = None,
    ) -> dict:
        """Open a video of the --mevis-root data set (its first expression)."""
        if not video:
            raise InputError("pick a video of the data set first")
        return self._open_source(session, "dataset", video, None, controls, request)

    def _open_source(self, session, source, video, exp_id, controls, request) -> dict:
        if source not in self.ctx.sources:
            raise InputError(
                f"no {source!r} data set is configured (start the app with --mevis-root)"
            )
        session = self.ctx.session(session, request)
        src = self.ctx.sources[source]
        if video not in src.videos():
            raise InputError(f"no video {video!r} in the {source} set")
        case = session.case_for((src.case_key(video), functools.partial(src.load_case, video)))
        if exp_id is not None and str(exp_id) not in case.exp_ids:
            raise InputError(
                f"{video}: no stage-1 results for expression {exp_id!r} (it has {case.exp_ids})"
            )
        return self.show(session, case, None if exp_id is None else str(exp_id), controls)

    def show(self, session: Session, case: Case, exp_id: str | None, controls: Controls) -> dict:
        """Open ``case`` at ``exp_id`` (its first without one) in ``session``: the view."""
        session.preview_threshold = controls.threshold
        session.open_case(case, exp_id)
        return view(self.ctx.config, session, controls, self.ctx.settings(controls), 0)

    @user_errors
    def open_upload(
        self,
        session: Session | None,
        video_file: str | None,
        stage1_file: str | None,
        controls: Controls,
        gt_file: str | None = None,
        meta_file: str | None = None,
        request: gr.Request | None = None,
    ) -> dict:
        """Open an uploaded video (a video file or a zip of frames) with its stage-1 results
        (a safe npz or a zip of PNG masks), optional ground truth (a zip of PNG masks) and
        optional meta_expressions.json (the sentences); each file is checked against the
        app's upload limits before it is read. A failed upload leaves the previous case."""
        if not video_file:
            raise InputError("upload a video (mp4/webm/mov) or a zip of JPEG/PNG frames first")
        if not stage1_file:
            raise InputError(
                "upload the video's stage-1 results too: a safe .npz or a zip of PNG masks "
                "<exp_id>/<frame>.png"
            )
        limits, session = self.ctx.config.limits, self.ctx.session(session, request)
        case = session.case_for(
            lambda charge: case_from_upload(
                video_file, stage1_file, gt_file or None, limits, meta_file or None, charge
            )
        )
        return self.show(session, case, None, controls)

    @user_errors
    def select_expression(
        self,
        session: Session | None,
        exp_id: str | None,
        controls: Controls,
        t: float | None = 0,
        request: gr.Request | None = None,
    ) -> dict:
        """Show another expression of the open case (its latest cached run, if any). The
        same expression again (the list opened and closed) changes nothing."""
        if session is None or session.case is None:
            return {"expression": gr.update(choices=[], value=None), "status": ""}
        if exp_id is None or str(exp_id) == session.exp_id:
            return {"expression": gr.update(value=session.exp_id)}
        if str(exp_id) not in session.case.exp_ids:  # typed text, not a choice: restore
            return {
                "expression": gr.update(value=session.exp_id),
                "status": f"No expression {str(exp_id)!r} in {session.case.video}: pick one "
                "from the list (type to search the sentences).",
            }
        session.preview_threshold = controls.threshold
        session.select_expression(str(exp_id))
        settings = self.ctx.settings(controls)
        return view(self.ctx.config, session, controls, settings, frame_index(session, t))
