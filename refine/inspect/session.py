"""One user's inspection session, independent of any UI: the case on screen, its
expression, cached SAM2 runs and live re-fusion with new ρ, v (O(T), no SAM2)."""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from fractions import Fraction

import numpy as np

from refine.errors import InputError
from refine.feature_cache import DEFAULT_CACHE_MB
from refine.files import remove_tree
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE, FusionDecision, as_fraction
from refine.inspect.budget import Charge, MemoryBudget
from refine.inspect.cases import Case
from refine.inspect.exports import SessionFiles
from refine.inspect.ranking import RankRow, fused_scores, stage_scores
from refine.inspect.runs import (
    DEFAULT_CACHE_BYTES,
    CaseRun,
    ProgressFn,
    RunCache,
    RunKey,
    RunSettings,
    Tracker,
    track_run,
)
from refine.inspect.session_memory import SessionMemory
from refine.overlay import STAGE_COLORS, overlay_mask
from refine.selection import DEFAULT_THRESHOLD

STAGES = ("stage1", "sam2", "fused")
MAX_CASES = 4  # videos kept in memory per session (frames + SAM2 feature caches)
Loader = Callable[[Charge], Case]
CaseLoader = Loader | tuple[str, Loader]
"""``load(charge)`` → Case (``charge`` is to be told what the case holds before it is
read), or ``(case_key, load)`` to reuse a recent case of that key."""


class Session:
    """One user's state: the case on screen, its expression, SAM2 runs and fusion settings.

    ``workdir`` holds the session's files (:class:`SessionFiles`); it is deleted by
    :meth:`remove_files`, :meth:`close`, and when the session is garbage-collected.
    Runs live in a :class:`RunCache` bounded by ``max_cache_bytes`` of masks. Every case,
    run and SAM2 feature cache is charged to ``budget`` (shared by the process's sessions;
    none: unbounded) before it is made; when the budget takes one back, the session drops
    it and :attr:`notice` tells the user why (see :class:`SessionMemory`).
    """

    def __init__(
        self,
        workdir: str | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
        budget: MemoryBudget | None = None,
        feature_cache_mb: float = DEFAULT_CACHE_MB,
    ):
        self.workdir = workdir or tempfile.mkdtemp(prefix="refine-app-")
        os.makedirs(self.workdir, exist_ok=True)
        weakref.finalize(self, remove_tree, self.workdir, "session folder")
        self.files = SessionFiles(self.workdir)
        self.runs = RunCache(max_cache_bytes, on_evict=self._run_evicted)
        self.memory = SessionMemory(self, budget or MemoryBudget(), feature_cache_mb)
        self.notice: str | None = None
        self.case: Case | None = None
        self.exp_id: str | None = None
        self.run: CaseRun | None = None
        self.area_ratio: Fraction = DEFAULT_AREA_RATIO
        self.vote: Fraction = DEFAULT_VOTE
        self.decision: FusionDecision | None = None
        self.preview_threshold: float = DEFAULT_THRESHOLD
        self.sam2_runs = 0
        self.cancel = threading.Event()
        self.ranking: list[RankRow] = []
        self._cases: OrderedDict[str, Case] = OrderedDict()
        self._lock = threading.RLock()

    # ---- case and expression -------------------------------------------------------------
    def open_case(self, case: Case, exp_id: str | None = None) -> None:
        """Show ``case`` (its first expression unless ``exp_id``); cached runs stay. A case
        already in the session under the same key is reused (with its feature cache)."""
        if not case.exp_ids:
            raise InputError(f"{case.video}: the stage-1 results have no expressions")
        case = self.case_for((case.key, lambda charge: case))
        exp_id = exp_id if exp_id is not None else case.exp_ids[0]
        case.expression(exp_id)
        with self._lock:
            self.case, self.notice = case, None
            self.select_expression(exp_id)

    def known_case(self, key: str) -> Case | None:
        """A recently used case by key (None if evicted)."""
        return self._cases.get(key)

    def case_for(self, load: CaseLoader) -> Case:
        """``load(charge)``'s case, or with ``(key, load)`` the recently used case of that
        key. A new case is charged to the budget (ServerBusy when it cannot fit)."""
        key, loader = load if isinstance(load, tuple) else (None, load)
        case = self._cases.get(key) if key is not None else None
        if case is None:
            case = self.memory.load(loader)
        self.memory.use(case)
        with self._lock:
            self._cases[case.key] = case
            self._cases.move_to_end(case.key)
            old = list(self._cases)[: max(len(self._cases) - MAX_CASES, 0)]
            dropped = [self._cases.pop(k) for k in old if self._cases[k] is not self.case]
        for gone in dropped:
            self.memory.drop_case(gone)
        return case

    def release_case(self, case: Case, reason: str) -> None:
        """The budget took ``case`` back: forget it and its runs; tell the user if shown."""
        with self._lock:
            if self._cases.get(case.key) is case:
                del self._cases[case.key]
            for key in self.runs.keys_of_case(case.key):
                self.runs.drop(key)
                self.memory.drop_run(key)
            if self.case is case:
                self.case, self.exp_id, self.run, self.decision = None, None, None, None
                self.notice = f"{case.video} was closed {reason}: open it again to go on."

    def select_expression(self, exp_id: str, settings: RunSettings | None = None) -> None:
        """Show ``exp_id`` of the current case, with its cached run for ``settings`` (or its
        most recent cached run when ``settings`` is None), if any."""
        self.require_case().expression(exp_id)
        with self._lock:
            self.exp_id = exp_id
            self.run = self.cached_run(exp_id, settings)
            self._update_decision()

    def cached_run(self, exp_id: str, settings: RunSettings | None = None) -> CaseRun | None:
        """The cached run of ``exp_id`` of the current case for ``settings`` (or the latest)."""
        key = self.require_case().key
        if settings is None:
            return self.runs.latest(key, exp_id)
        return self.runs.get((key, exp_id, settings))

    def release_run(self, key: RunKey, reason: str) -> None:
        """The budget took the run of ``key`` back: forget it (the page shows no SAM2 masks
        until Run)."""
        with self._lock:
            run = self.runs.drop(key)
            if run is not None and self.run is run:
                self.run, self.decision = None, None
                self.notice = f"The SAM2 run was released {reason}: press Run again."
        if run is not None:
            self.files.drop_videos(run)

    # ---- SAM2 ------------------------------------------------------------------------------
    def begin(self) -> None:
        """Clear a previous stop request (call when the user starts a run)."""
        self.cancel.clear()

    def request_stop(self) -> None:
        """Ask the running (or next) SAM2 run to stop at its next frame."""
        self.cancel.set()

    def run_sam2(
        self, settings: RunSettings, track: Tracker, progress: ProgressFn | None = None
    ) -> CaseRun:
        """Selection, prompts and SAM2 for the current expression (reused when cached).
        ``progress(done, total)``; :attr:`cancel` set → RunCancelled."""
        case, exp_id = self.require_case(), self._require_exp()
        run = self.cached_run(exp_id, settings)  # looked up and marked used in one step
        if run is None:
            run = self.track(case, exp_id, settings, track, progress)
        with self._lock:
            if self.case is case and self.exp_id == exp_id:
                self.run = run
                self._update_decision()
        return run

    def track(
        self,
        case: Case,
        exp_id: str,
        settings: RunSettings,
        tracker: Tracker,
        progress: ProgressFn | None = None,
    ) -> CaseRun:
        """Run SAM2 on ``exp_id`` of ``case`` (not the cache's run: a new one) and cache it."""
        key = (case.key, exp_id, settings)
        with self.memory.tracking(case, key, settings.spec):
            run = track_run(
                self.runs,
                case.frames,
                key,
                case.expression(exp_id),
                tracker,
                self.cancel,
                progress,
                keep=(self.run,),
                label=f"{case.video}/{exp_id}",
            )
        self.memory.settle_run(run)
        if len(run.result.kept):
            with self._lock:
                self.sam2_runs += 1
        return run

    # ---- fusion and views ------------------------------------------------------------------
    def set_fusion(self, area_ratio: float | str | Fraction, vote: float | str | Fraction) -> None:
        """New ρ and v: re-decide the shown run from its cached box areas (no SAM2)."""
        try:
            rho, v = as_fraction(area_ratio, "area ratio ρ"), as_fraction(vote, "vote v")
        except ValueError as err:
            raise InputError(str(err)) from err
        with self._lock:
            self.area_ratio, self.vote = rho, v
            self._update_decision()

    def _update_decision(self) -> None:
        self.decision = None if self.run is None else self.run.decision(self.area_ratio, self.vote)

    def overlays(self, t: int, stages: Iterable[str] = STAGES) -> dict[str, np.ndarray | None]:
        """Overlays of frame ``t`` per stage: uint8 [H, W, 3], None for SAM2/fused before a
        run (the frame is decoded once)."""
        case, t = self.require_case(), self._check_frame(t)
        frame = case.frames.rgb(t)
        masks = {stage: self.mask(stage, t) for stage in stages}
        return {
            s: None if m is None else overlay_mask(frame, m, STAGE_COLORS[s])
            for s, m in masks.items()
        }

    def overlay(self, stage: str, t: int) -> np.ndarray | None:
        return self.overlays(t, (stage,))[stage]

    def mask(self, stage: str, t: int) -> np.ndarray | None:
        """The shown mask of ``stage`` on frame ``t``: [H, W] bool, or None. Stage 1 before
        a run previews the queries kept at :attr:`preview_threshold`."""
        run, decision = self.run, self.decision
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of {STAGES}")
        if stage == "stage1":
            if run is not None:
                return run.result.stage1[t]
            return self.require_case().preview(self._require_exp(), self.preview_threshold, t)
        if run is None or decision is None:
            return None
        return run.result.sam2[t] if stage == "sam2" else run.fused(decision, t)

    def scores(self) -> dict | None:
        """{"stage1", "sam2", "fused"} → ExpressionScore of the shown run under the current
        ρ, v; None without ground truth or before a run."""
        case, run = self.require_case(), self.run
        if run is None or self.decision is None:
            return None
        if run.scores is None:
            gt = case.ground_truth(run.exp_id)
            if gt is None:
                return None
            run.scores = stage_scores(run, gt)
        return fused_scores(run.scores, self.decision)

    # ---- files -----------------------------------------------------------------------------
    def videos(self, progress: ProgressFn | None = None) -> dict[str, str]:
        """Overlay mp4s of the shown run: {"stage1", "sam2", "fused"} → path."""
        run = self.require_run()
        return self.files.videos(self.require_case(), run, self.decision, progress)

    def masks_zip(self) -> str:
        """The shown run's fused masks as a MeViS-layout zip; returns its path."""
        run = self.require_run()
        return self.files.masks_zip(self.require_case(), run, self.decision)

    def remove_files(self) -> None:
        """Delete the session's files (made again when needed); cases and runs stay."""
        with self._lock:
            self.files.remove()

    def touch(self) -> None:
        """The user did something: this session's memory is the most recently used."""
        self.memory.touch()

    def _run_evicted(self, run: CaseRun) -> None:
        self.files.drop_videos(run)
        self.memory.drop_run(run.key)

    def close(self) -> None:
        """End the session: delete its folder, drop its cases and cached runs and return
        their memory to the budget."""
        with self._lock:
            self.case, self.exp_id, self.run, self.decision = None, None, None, None
            self.runs.clear()
            self._cases.clear()
            self.ranking = []
            self.files.remove()
        self.memory.close()

    # ---- checks ----------------------------------------------------------------------------
    def require_case(self) -> Case:
        if self.case is None:
            raise InputError(
                self.notice or "open a case first: pick an example, upload a video, or pick a video"
            )
        return self.case

    def _require_exp(self) -> str:
        if self.exp_id is None:
            raise InputError("no expression is selected")
        return self.exp_id

    def require_run(self) -> CaseRun:
        if self.run is None or self.decision is None:
            raise InputError("SAM2 has not run for this expression and these settings: press Run")
        return self.run

    def _check_frame(self, t: int | float) -> int:
        n = self.require_case().num_frames
        t = int(t)
        if not 0 <= t < n:
            raise InputError(f"frame {t} is out of range: the video has frames 0..{n - 1}")
        return t
