"""Event handlers of the app. Each takes the session (``None`` before the first event)
and component values, and returns ``{component name: value or gr.update}``; the layout
(:mod:`demo.ui`) maps names to components. Every error reaches the user as ``gr.Error``
(or ``gr.Warning`` for a stopped run): user errors with their message, SAM2 running out of
memory with what to try instead, anything unexpected as an internal error (its traceback
goes to the log); the server keeps serving.
"""

from __future__ import annotations

import functools
import html
import logging
import time
from collections.abc import Callable

import gradio as gr

from demo.config import AppConfig
from demo.gpu import device_choices, make_tracker, resolve_device
from demo.sessions import SessionStore
from demo.views import (
    case_info,
    decision_text,
    expression_choices,
    metrics_rows,
    rank_table,
    runs_text,
    stale_notes,
    status_text,
)
from refine.errors import InputError
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE, as_fraction
from refine.models import ModelSpec, resolve_checkpoint
from refine.overlay import area_ratio_plot, score_plot
from refine.selection import DEFAULT_THRESHOLD, prompt_frames, select_queries
from refine.session import (
    Case,
    DataSource,
    RunCancelled,
    RunSettings,
    Session,
    case_from_upload,
    rank_rows,
)

log = logging.getLogger(__name__)

WEIGHTS_CHECKPOINT = "checkpoint"
WEIGHTS_RANDOM = "random"
WEIGHT_CHOICES = [
    ("SAM2.1 checkpoint", WEIGHTS_CHECKPOINT),
    ("Random weights (masks meaningless)", WEIGHTS_RANDOM),
]
DEVICE_AUTO = "auto"
RANK_ORDER_CHOICES = [
    ("fused J&F (worst first)", "fused"),
    ("change from stage 1 (worst first)", "delta"),
]
RANK_CURRENT = "current"
PROGRESS = gr.Progress()  # Gradio replaces this default with the event's progress tracker
VIEW_OUTPUTS = (
    "session",
    "expression",
    "frame",
    "img_stage1",
    "img_sam2",
    "img_fused",
    "case_info",
    "decision",
    "status",
    "sam2_runs",
    "banner",
    "plot_scores",
    "plot_ratio",
    "metrics",
    "metrics_note",
    "vid_stage1",
    "vid_sam2",
    "vid_fused",
)
VIDEO_OUTPUTS = ("vid_stage1", "vid_sam2", "vid_fused")
FRAME_OUTPUTS = ("img_stage1", "img_sam2", "img_fused")
REFUSE_OUTPUTS = ("img_fused", "decision")
REFUSE_SLOW_OUTPUTS = ("vid_fused", "plot_ratio", "metrics", "metrics_note", "rank_table")


def user_errors(fn: Callable) -> Callable:
    """Turn every exception into gr.Error (message HTML-escaped: it may contain <exp_id>):
    InputError (and SAM2's OutOfMemory) with its message; any other exception, a bug, as
    an internal error naming it, with the traceback in the log. gr.Error passes as is."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from err
        except gr.Error:
            raise
        except Exception as err:
            log.exception("%s failed", fn.__qualname__)
            message = (
                f"Internal error in {fn.__name__}: {type(err).__name__}: {err}. The app keeps "
                "running: try again, or open the case again; please report this (the server "
                "log has the details)."
            )
            raise gr.Error(html.escape(message, quote=False), print_exception=False) from err

    return wrapper


def _frac(value: float | str) -> object:
    try:
        return as_fraction(value, "value").limit_denominator(1000)
    except ValueError as err:
        raise InputError(str(err)) from err


def _static_factory(cls: type) -> Callable:
    def factory(spec: ModelSpec):
        return cls()

    return factory


class Callbacks:
    """The app's handlers, bound to its configuration, data sources and SAM2 tracker."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.sessions = SessionStore()
        factory = config.propagator_factory
        if factory is None and config.fake_sam2:
            from refine.testing import StaticPropagator

            factory = _static_factory(StaticPropagator)
        self.track = make_tracker(factory, config.cache_mb)
        self.uses_sam2 = factory is None  # False: a fake/test propagator, no checkpoint needed
        self.sources: dict[str, DataSource] = {
            "examples": DataSource(
                "examples", config.examples_root, f"{config.examples_root}/stage1"
            )
        }
        if config.mevis_root is not None:
            self.sources["dataset"] = DataSource(
                "dataset", config.mevis_root, config.dataset_stage1_dir
            )

    # ---- helpers ---------------------------------------------------------------------------
    def settings(
        self,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        resolve: bool = False,
    ) -> RunSettings:
        """RunSettings from the controls; ``resolve`` turns device "auto" into a real device."""
        if weights not in (WEIGHTS_CHECKPOINT, WEIGHTS_RANDOM):
            raise InputError(
                f"weights {weights!r} must be {WEIGHTS_CHECKPOINT!r} or {WEIGHTS_RANDOM!r}"
            )
        if resolve and not self.uses_sam2 and device == DEVICE_AUTO:
            dev = "cpu"  # a fake propagator runs nowhere; don't import torch to find a GPU
        else:
            dev = resolve_device(device) if resolve else device
        spec = ModelSpec(
            size=size,
            device=dev,
            random_weights=weights == WEIGHTS_RANDOM,
            seed=0,
            image_size=self.config.image_size,
        )
        if not 0 <= float(threshold) < 1:
            raise InputError(f"θ must lie in [0, 1), got {threshold}")
        return RunSettings(spec, float(threshold), prompt)

    def _session(self, session: Session | None, request: gr.Request | None = None) -> Session:
        """``session``, or the browser session's new one (with its own folder)."""
        key = request.session_hash if request is not None else None
        return self.sessions.get(session, key)

    def end_session(self, request: gr.Request) -> None:
        """The browser tab closed (Gradio's unload event): delete the session's files."""
        if request.session_hash is not None:
            self.sessions.end(request.session_hash)

    def close(self) -> None:
        """App shutdown: close all sessions and delete their folders."""
        self.sessions.close()

    @staticmethod
    def _frame(session: Session, t: float | None) -> int:
        if session.case is None or t is None:
            return 0
        return min(max(int(t), 0), session.case.num_frames - 1)

    def view(
        self,
        session: Session,
        controls: RunSettings,
        t: float | None = 0,
        device: str = DEVICE_AUTO,
        extra: str | None = None,
    ) -> dict:
        """Everything shown for the session's case, expression and run."""
        case = session.case
        t = self._frame(session, t)
        imgs = session.overlays(t)
        run = session.run
        out = {
            "session": session,
            "expression": gr.update(choices=expression_choices(case), value=session.exp_id),
            "frame": gr.update(maximum=max(case.num_frames - 1, 1), value=t),
            "img_stage1": imgs["stage1"],
            "img_sam2": imgs["sam2"],
            "img_fused": imgs["fused"],
            "case_info": case_info(case, session.exp_id),
            "decision": decision_text(run, session.decision, controls.threshold),
            "status": status_text(stale_notes(run, controls, device == DEVICE_AUTO), extra),
            "sam2_runs": runs_text(session.sam2_runs),
            "banner": gr.update(visible=self._random(controls, run)),
            "plot_scores": self._score_plot(session, controls.threshold),
            **self._slow_parts(session),
        }
        if run is None:
            out.update({k: None for k in VIDEO_OUTPUTS})
        return out

    def _random(self, controls: RunSettings, run) -> bool:
        """Whether the warning banner shows: random weights chosen or shown, or fake SAM2."""
        return (
            self.config.fake_sam2
            or controls.spec.random_weights
            or (run is not None and run.settings.spec.random_weights)
        )

    def _slow_parts(self, session: Session) -> dict:
        run, d = session.run, session.decision
        ratio = None
        if run is not None and d is not None and len(run.result.kept):
            ratio = area_ratio_plot(d.area_stage1, d.area_sam2, d.area_ratio)
        scores = session.scores()
        if session.case is not None and session.case.gt is None:
            note = "No ground truth for this case: J and F cannot be computed."
        elif scores is None:
            note = (
                "J and F appear after SAM2 runs."
                if run is None
                else "No ground truth for this expression."
            )
        else:
            note = "J, F and J&F in % against the ground truth (fused: under the current ρ, v)."
        return {"plot_ratio": ratio, "metrics": metrics_rows(scores), "metrics_note": note}

    def _score_plot(self, session: Session, threshold: float):
        case, exp_id = session.case, session.exp_id
        exp = case.expression(exp_id)
        kept = select_queries(exp.scores, threshold)
        frames = prompt_frames(exp.scores, kept)
        title = None
        if session.run is not None and session.run.settings.threshold != threshold:
            title = (
                f"at θ = {threshold:g} SAM2 would prompt {list(map(int, kept)) or 'no query'} "
                f"(shown masks: θ = {session.run.settings.threshold:g})"
            )
        return score_plot(exp.scores, threshold, kept, frames, title)

    # ---- opening cases ---------------------------------------------------------------------
    @user_errors
    def open_example(
        self,
        session: Session | None,
        video: str,
        exp_id: str | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        request: gr.Request | None = None,
    ) -> dict:
        """Open a bundled example (video, expression)."""
        return self._open_source(
            session, "examples", video, exp_id, size, device, weights, prompt, threshold, request
        )

    @user_errors
    def open_dataset_video(
        self,
        session: Session | None,
        video: str,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        request: gr.Request | None = None,
    ) -> dict:
        """Open a video of the --mevis-root data set (its first expression)."""
        if not video:
            raise InputError("pick a video of the data set first")
        return self._open_source(
            session, "dataset", video, None, size, device, weights, prompt, threshold, request
        )

    def _open_source(
        self,
        session: Session | None,
        source: str,
        video: str,
        exp_id: str | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        request: gr.Request | None = None,
    ):
        if source not in self.sources:
            raise InputError(
                f"no {source!r} data set is configured (start the app with --mevis-root)"
            )
        if not video:
            raise InputError("no video given")
        session = self._session(session, request)
        src = self.sources[source]
        case = session.case_for((src.case_key(video), lambda: src.load_case(video)))
        if exp_id is not None and str(exp_id) not in case.exp_ids:
            raise InputError(
                f"{video}: no stage-1 results for expression {exp_id!r} (it has {case.exp_ids})"
            )
        return self._show(
            session,
            case,
            None if exp_id is None else str(exp_id),
            size,
            device,
            weights,
            prompt,
            threshold,
        )

    def _show(
        self,
        session: Session | None,
        case: Case,
        exp_id: str | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
    ) -> dict:
        session.preview_threshold = float(threshold)
        session.open_case(case, exp_id)
        controls = self.settings(size, device, weights, prompt, threshold)
        return self.view(session, controls, 0, device)

    @user_errors
    def open_upload(
        self,
        session: Session | None,
        video_file: str | None,
        stage1_file: str | None,
        gt_file: str | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        request: gr.Request | None = None,
    ) -> dict:
        """Open an uploaded video (file or zip of frames) with its stage-1 results, each
        file checked against the app's upload limits before it is read."""
        if not video_file:
            raise InputError("upload a video (mp4/webm/mov) or a zip of JPEG/PNG frames first")
        if not stage1_file:
            raise InputError(
                "upload the video's stage-1 results too: a safe .npz or a zip of PNG masks "
                "<exp_id>/<frame>.png"
            )
        case = case_from_upload(video_file, stage1_file, gt_file or None, self.config.limits)
        return self._show(
            self._session(session, request), case, None, size, device, weights, prompt, threshold
        )

    @user_errors
    def select_expression(
        self,
        session: Session | None,
        exp_id: str | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        request: gr.Request | None = None,
    ) -> dict:
        """Show another expression of the open case (its latest cached run, if any)."""
        session = self._session(session, request)
        if session.case is None:
            raise InputError("open a case first")
        session.preview_threshold = float(threshold)
        session.select_expression(str(exp_id))
        controls = self.settings(size, device, weights, prompt, threshold)
        return self.view(session, controls, 0, device)

    # ---- running SAM2 ----------------------------------------------------------------------
    @user_errors
    def begin(self, session: Session | None, request: gr.Request | None = None) -> dict:
        """Clear an earlier Stop before a run starts (runs outside the queue)."""
        session = self._session(session, request)
        session.begin()
        return {"session": session}

    @user_errors
    def stop(self, session: Session | None) -> dict:
        """Ask the running SAM2 job of this session to stop at its next frame."""
        if session is None:
            return {"status": "Nothing is running."}
        session.request_stop()
        return {"status": "Stopping SAM2 after the current frame…"}

    @user_errors
    def run(
        self,
        session: Session | None,
        exp_id: str | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        area_ratio: float,
        vote: float,
        t: float | None,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
    ) -> dict:
        """SAM2 enhancement + fusion of the selected expression (cached per settings).
        SAM2 running out of memory is a gr.Error that says what to try; the session is
        unchanged and can run again."""
        session = self._session(session, request)
        if session.case is None:
            raise InputError("open a case first: click an example, upload a video, or pick a video")
        if exp_id is not None and str(exp_id) != session.exp_id:
            session.select_expression(str(exp_id))
        session.set_fusion(_frac(area_ratio), _frac(vote))
        if weights == WEIGHTS_CHECKPOINT and self.uses_sam2:
            self._check_checkpoint(size)
        progress(0, desc="preparing SAM2 (the first run loads the model)…")
        settings = self.settings(size, device, weights, prompt, threshold, resolve=True)

        def on_progress(done: int, total: int) -> None:
            progress((done, total), desc="SAM2: frames tracked", unit="frames")

        cached = session.cached_run(session.exp_id, settings) is not None
        start = time.monotonic()
        try:
            run = session.run_sam2(settings, self.track, on_progress)
        except RunCancelled as err:
            gr.Warning(f"SAM2 run stopped ({err}); the masks shown are unchanged.")
            return self.view(session, settings, t, device, f"Stopped: {err}.")
        model = settings.describe() if self.uses_sam2 else "the FAKE SAM2 (test mode)"
        if cached:
            extra = f"Shown from this session's cache: {model} already ran on this expression."
        elif len(run.result.kept) == 0:
            extra = "No query passed θ, so SAM2 did not run."
        else:
            extra = f"Ran {model} in {time.monotonic() - start:.1f} s."
        return self.view(session, settings, t, device, extra)

    @staticmethod
    def _check_checkpoint(size: str) -> None:
        try:
            resolve_checkpoint(size)
        except InputError as err:
            raise InputError(
                f"{err}. To try the app without it, choose “Random weights (masks meaningless)” "
                "under Model."
            ) from err

    @user_errors
    def videos(self, session: Session | None, progress: gr.Progress = PROGRESS) -> dict:
        """The three overlay mp4s of the shown run (rendered once per run and branch)."""
        if session is None or session.run is None:
            return {k: None for k in VIDEO_OUTPUTS}

        def on_progress(done: int, total: int) -> None:
            progress((done, total), desc="encoding overlay videos", unit="frames")

        paths = session.videos(on_progress)
        return {
            "vid_stage1": paths["stage1"],
            "vid_sam2": paths["sam2"],
            "vid_fused": paths["fused"],
        }

    # ---- live fusion and frames -------------------------------------------------------------
    @user_errors
    def refuse(
        self, session: Session | None, area_ratio: float, vote: float, t: float | None
    ) -> dict:
        """New ρ, v: re-fuse from the cached SAM2 masks (no SAM2 run) and redraw the fused
        overlay and the decision."""
        if session is None or session.case is None:
            return {}
        session.set_fusion(_frac(area_ratio), _frac(vote))
        if session.run is None:
            return {}
        t = self._frame(session, t)
        return {
            "img_fused": session.overlay("fused", t),
            "decision": decision_text(
                session.run, session.decision, session.run.settings.threshold
            ),
        }

    @user_errors
    def refuse_slow(
        self, session: Session | None, rank_order: str, progress: gr.Progress = PROGRESS
    ) -> dict:
        """After a ρ/v change: the fused video, ratio plot, metrics and ranking."""
        if session is None or session.case is None:
            return {}
        out = self._slow_parts(session)
        if session.run is not None:
            out["vid_fused"] = self.videos(session, progress)["vid_fused"]
        if session.ranking:
            out["rank_table"] = self._rank_table(session, rank_order)
        return out

    @user_errors
    def show_frame(self, session: Session | None, t: float | None) -> dict:
        """The three overlays of frame ``t``."""
        if session is None or session.case is None:
            return {}
        imgs = session.overlays(self._frame(session, t))
        return {"img_stage1": imgs["stage1"], "img_sam2": imgs["sam2"], "img_fused": imgs["fused"]}

    @user_errors
    def controls_changed(
        self,
        session: Session | None,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        t: float | None,
    ) -> dict:
        """θ, prompt, model or weights changed: say whether SAM2 must run again, update the
        score plot (and the stage-1 preview before a run)."""
        controls = self.settings(size, device, weights, prompt, threshold)
        out = {"banner": gr.update(visible=self._random(controls, session and session.run))}
        if session is None or session.case is None:
            return out
        session.preview_threshold = float(threshold)
        out["status"] = status_text(stale_notes(session.run, controls, device == DEVICE_AUTO))
        out["plot_scores"] = self._score_plot(session, float(threshold))
        if session.run is None:
            out["img_stage1"] = session.overlay("stage1", self._frame(session, t))
            out["decision"] = decision_text(None, None, float(threshold))
        return out

    @user_errors
    def detect_devices(self, device: str) -> dict:
        """Fill the device list with what exists here (imports torch on first use)."""
        choices = [DEVICE_AUTO, *device_choices()]
        return {
            "device": gr.update(choices=choices, value=device if device in choices else DEVICE_AUTO)
        }

    @staticmethod
    def reset_fusion() -> dict:
        """θ, ρ, v back to the defaults of DESIGN §2."""
        return {
            "threshold": DEFAULT_THRESHOLD,
            "area_ratio": float(DEFAULT_AREA_RATIO),
            "vote": float(DEFAULT_VOTE),
        }

    # ---- downloads -------------------------------------------------------------------------
    @user_errors
    def downloads(self, session: Session | None) -> dict:
        """Fused masks (MeViS-layout zip) and the three overlay videos as files."""
        if session is None or session.run is None:
            raise InputError("run SAM2 first: there are no fused masks to download yet")
        paths = session.videos()
        return {"downloads": [session.masks_zip(), paths["stage1"], paths["sam2"], paths["fused"]]}

    # ---- failure cases ---------------------------------------------------------------------
    def rank_sets(self) -> list[tuple[str, str]]:
        """Choices of sets to rank: example set, data set (with GT), current case."""
        out = [("bundled examples", "examples")]
        if "dataset" in self.sources and self.sources["dataset"].has_gt:
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
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        area_ratio: float,
        vote: float,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
    ) -> dict:
        """Run SAM2 on every expression with ground truth in the set, rank by J&F."""
        session = self._session(session, request)
        session.set_fusion(_frac(area_ratio), _frac(vote))
        limit = int(limit or 0)
        if limit < 1:
            raise InputError(f"the number of expressions to rank must be at least 1, got {limit}")
        items = self._rank_items(session, rank_set)[:limit]
        if weights == WEIGHTS_CHECKPOINT and self.uses_sam2:
            self._check_checkpoint(size)
        settings = self.settings(size, device, weights, prompt, threshold, resolve=True)

        def on_progress(i: int, n: int, label: str) -> None:
            progress((i, n), desc=f"ranking: {label}", unit="expressions")

        note = None
        try:
            rows = session.rank(items, settings, self.track, on_progress, rank_set)
        except RunCancelled as err:
            gr.Warning(f"ranking stopped ({err})")
            rows, note = session.ranking, f"Stopped: {err}."
        if not rows and note is None:
            raise InputError(f"no expression of the {rank_set} set has ground truth to rank by")
        ranked = len(rows)
        model = settings.describe() if self.uses_sam2 else "the FAKE SAM2 (test mode)"
        note = note or (
            f"{ranked} expressions ranked with {model}. Click a row to open it "
            "(its SAM2 masks are cached)."
        )
        return {
            "session": session,
            "rank_table": self._rank_table(session, rank_order),
            "rank_note": note,
            "sam2_runs": runs_text(session.sam2_runs),
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
            return [((case.key, lambda c=case: c), e) for e in case.exp_ids]
        if rank_set not in self.sources:
            raise InputError(
                f"unknown set {rank_set!r}; choose one of {[v for _, v in self.rank_sets()]}"
            )
        src = self.sources[rank_set]
        if not src.has_gt:
            raise InputError(
                f"{src.root} has no mask_dict.json, so there is no ground truth to rank by"
            )
        items = []
        for video, exp_id, _ in src.expressions():
            items.append(((src.case_key(video), functools.partial(src.load_case, video)), exp_id))
        return items

    def _rank_table(self, session: Session, order: str) -> list[list]:
        return rank_table(rank_rows(session.ranking, session.area_ratio, session.vote, order))

    @user_errors
    def reorder(self, session: Session | None, rank_order: str) -> dict:
        if session is None or not session.ranking:
            return {}
        return {"rank_table": self._rank_table(session, rank_order)}

    @user_errors
    def open_ranked(
        self,
        session: Session | None,
        rank_order: str,
        size: str,
        device: str,
        weights: str,
        prompt: str,
        threshold: float,
        evt: gr.SelectData,
    ) -> dict:
        """A click on a ranked row opens that case and expression."""
        if session is None or not session.ranking:
            raise InputError("rank a set first")
        row_index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        ranked = rank_rows(session.ranking, session.area_ratio, session.vote, rank_order)
        if not 0 <= int(row_index) < len(ranked):
            raise InputError(f"row {row_index} is not in the ranking ({len(ranked)} rows)")
        row = ranked[int(row_index)][0]
        case = session.known_case(row.case_key)
        if case is None:
            if row.source not in self.sources:
                raise InputError(f"{row.video} is no longer in memory; open it again")
            src = self.sources[row.source]
            case = session.case_for((row.case_key, functools.partial(src.load_case, row.video)))
        return self._show(session, case, row.exp_id, size, device, weights, prompt, threshold)
