"""Handlers of the run area: Run/Stop, the frame slider, live ρ/v, the model settings and
the downloads."""

from __future__ import annotations

import threading
import time

import gradio as gr

from demo.context import AppContext, slider_fraction, user_errors, warning_status
from demo.controls import DEVICE_AUTO, Controls
from demo.gpu import device_choices
from demo.render import (
    VIDEO_OUTPUTS,
    banner_visible,
    frame_index,
    frame_overlays,
    query_plot,
    slow_parts,
    view,
)
from demo.views import decision_text, stale_notes, status_text
from refine.errors import InputError
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE
from refine.inspect import RunCancelled, Session
from refine.selection import DEFAULT_THRESHOLD

PROGRESS = gr.Progress()  # Gradio replaces this default with the event's progress tracker
# a Run may first download the checkpoint: huggingface_hub's tqdm bar shows in the page
RUN_PROGRESS = gr.Progress(track_tqdm=True)
NOT_RUNNING = "Nothing is running."


class RunHandlers:
    """SAM2 runs, re-fusion and what depends on the shown run."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._running: dict[int, int] = {}  # id(session) → runs in progress
        self._lock = threading.Lock()

    # ---- running ---------------------------------------------------------------------------
    def running(self, session: Session | None) -> bool:
        """Whether a SAM2 run or ranking of ``session`` is in progress."""
        with self._lock:
            return session is not None and self._running.get(id(session), 0) > 0

    def track(self, session: Session):
        """Context manager marking ``session`` as running (for Stop)."""
        handlers = self

        class _Mark:
            def __enter__(self) -> None:
                with handlers._lock:
                    handlers._running[id(session)] = handlers._running.get(id(session), 0) + 1

            def __exit__(self, *exc: object) -> None:
                with handlers._lock:
                    left = handlers._running.pop(id(session), 1) - 1
                    if left:
                        handlers._running[id(session)] = left

        return _Mark()

    @user_errors
    def begin(self, session: Session | None, request: gr.Request | None = None) -> dict:
        """Clear an earlier Stop before a run starts (runs outside the queue)."""
        session = self.ctx.session(session, request)
        session.begin()
        return {"session": session}

    @user_errors
    def stop(self, session: Session | None) -> dict:
        """Ask the running SAM2 job of this session to stop at its next frame."""
        if not self.running(session):
            return {"status": NOT_RUNNING}
        session.request_stop()
        return {"status": "Stopping SAM2 after the current frame…"}

    @user_errors
    def run(
        self,
        session: Session | None,
        exp_id: str | None,
        controls: Controls,
        area_ratio: float,
        vote: float,
        t: float | None,
        progress: gr.Progress = RUN_PROGRESS,
        request: gr.Request | None = None,
    ) -> dict:
        """SAM2 enhancement + fusion of the selected expression (cached per settings).
        SAM2 running out of memory is a message that says what to try; the session is
        unchanged and can run again."""
        session = self.ctx.session(session, request)
        session.require_case()  # none open (or released by the memory budget): say so
        if exp_id is not None and str(exp_id) != session.exp_id:
            session.select_expression(str(exp_id))
        session.set_fusion(slider_fraction(area_ratio, "ρ"), slider_fraction(vote, "v"))
        progress(0, desc="preparing SAM2 (the first run loads the model)…")
        settings = self.ctx.run_settings(controls)

        def on_progress(done: int, total: int) -> None:
            progress(min(done / max(total, 1), 1.0), desc="SAM2 tracking: forward, then back")

        def on_wait() -> None:
            progress(0, desc="waiting for SAM2: other sessions' runs go first…")

        cached = session.cached_run(session.exp_id, settings) is not None
        start = time.monotonic()
        try:
            with self.track(session):
                run = session.run_sam2(settings, self.ctx.tracker(session, on_wait), on_progress)
        except RunCancelled as err:
            gr.Warning(f"SAM2 run stopped ({err}); the masks shown are unchanged.")
            return view(
                self.ctx.config, session, controls, settings, t, warning_status(f"Stopped: {err}.")
            )
        model = self.ctx.model_name(settings)
        if cached:
            extra = f"Shown from this session's cache: {model} already ran on this expression."
        elif len(run.result.kept) == 0:
            extra = "No query passed θ, so SAM2 did not run."
        else:
            extra = f"Ran {model} in {time.monotonic() - start:.1f} s."
        return view(self.ctx.config, session, controls, settings, t, extra)

    @user_errors
    def videos(self, session: Session | None, progress: gr.Progress = PROGRESS) -> dict:
        """The three overlay mp4s of the shown run (rendered once per run and branch)."""
        if session is None or session.case is None or session.run is None:
            return {k: None for k in VIDEO_OUTPUTS}

        def on_progress(done: int, total: int) -> None:
            progress((done, total), desc="encoding overlay videos", unit="frames")

        paths = session.videos(on_progress)
        return {f"vid_{k}": path for k, path in paths.items()}

    # ---- live fusion and frames -------------------------------------------------------------
    @user_errors
    def refuse(
        self, session: Session | None, area_ratio: float, vote: float, t: float | None
    ) -> dict:
        """New ρ, v: re-fuse from the cached SAM2 masks (no SAM2 run) and redraw the fused
        overlay and the decision. Before a case or a run: the values are kept for later."""
        rho, v = slider_fraction(area_ratio, "ρ"), slider_fraction(vote, "v")
        if session is None or session.case is None:
            return {"status": ""}
        session.set_fusion(rho, v)
        if session.run is None:
            return {"status": ""}
        return {
            "img_fused": session.overlay("fused", frame_index(session, t)),
            "decision": decision_text(session.run, session.decision, session.preview_threshold),
        }

    @user_errors
    def refuse_slow(self, session: Session | None, progress: gr.Progress = PROGRESS) -> dict:
        """After a ρ/v change: the fused video, ratio plot and metrics."""
        if session is None or session.case is None:
            return {"status": gr.skip()}
        out = slow_parts(session)
        if session.run is not None:
            out["vid_fused"] = self.videos(session, progress).get("vid_fused")
        return out

    @user_errors
    def show_frame(self, session: Session | None, t: float | None) -> dict:
        """The three overlays of frame t (nothing to show before a case)."""
        if session is None or session.case is None:
            out = {"img_stage1": None, "img_sam2": None, "img_fused": None}
            if session is not None and session.notice:  # its case was released: say why
                out["status"] = warning_status(session.notice)
            return out
        return frame_overlays(session, t)

    @user_errors
    def controls_changed(
        self, session: Session | None, controls: Controls, t: float | None
    ) -> dict:
        """θ, prompt, model or weights changed: say whether SAM2 must run again, update the
        score plot (and the stage-1 preview before a run)."""
        out = {"banner": gr.update(visible=banner_visible(self.ctx.config, controls, session))}
        if session is None or session.case is None:
            return out
        session.preview_threshold = controls.threshold
        settings = self.ctx.settings(controls)
        out["status"] = status_text(stale_notes(session.run, settings, controls.device_auto))
        out["plot_scores"] = query_plot(session, controls.threshold)
        if session.run is None:
            out["img_stage1"] = session.overlay("stage1", frame_index(session, t))
            out["decision"] = decision_text(None, None, controls.threshold)
        return out

    @user_errors
    def detect_devices(self, device: str | None) -> dict:
        """Fill the device list with what exists here (imports torch on first use)."""
        choices = [DEVICE_AUTO, *device_choices()]
        value = device if device in choices else DEVICE_AUTO
        return {"device": gr.update(choices=choices, value=value)}

    @staticmethod
    def reset_fusion() -> dict:
        """θ, ρ, v back to the method's defaults."""
        return {
            "threshold": DEFAULT_THRESHOLD,
            "area_ratio": float(DEFAULT_AREA_RATIO),
            "vote": float(DEFAULT_VOTE),
        }

    # ---- downloads -------------------------------------------------------------------------
    @user_errors
    def downloads(self, session: Session | None) -> dict:
        """Fused masks (MeViS-layout zip) and the three overlay videos as files."""
        if session is None or session.case is None or session.run is None:
            raise InputError("run SAM2 first: there are no fused masks to download yet")
        paths = session.videos()
        files = [session.masks_zip(), paths["stage1"], paths["sam2"], paths["fused"]]
        return {"downloads": files, "status": ""}
