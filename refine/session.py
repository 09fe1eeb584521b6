"""An inspection session, independent of any UI: cases, cached SAM2 runs, live re-fusion.

A :class:`Case` is one video with its stage-1 results and, when known, ground truth
(from a MeViS-layout :class:`DataSource` or from uploads). A :class:`Session` holds the
case on screen, runs SAM2 through a ``Tracker`` (the one GPU entry point of a UI), caches
each expression's :class:`CaseRun` per :class:`RunSettings` (what determines SAM2's masks:
model, θ, prompt kind), and re-fuses with new ρ, v from the cached per-frame box areas in
O(T), without touching SAM2. Renders (overlays, mp4s, plots) and downloads are made from
the cached masks.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from refine.dataset import MevisDataset
from refine.errors import InputError
from refine.frames import FrameSource
from refine.fusion import (
    DEFAULT_AREA_RATIO,
    DEFAULT_VOTE,
    FusionDecision,
    apply_decision,
    as_fraction,
    decide,
)
from refine.ground_truth import VideoGroundTruth
from refine.limits import DEFAULT_LIMITS, UploadLimits
from refine.models import ModelSpec
from refine.names import check_name
from refine.overlay import DEFAULT_FPS, STAGE_COLORS, overlay_mask, write_overlay_videos
from refine.pipeline import ExpressionResult, RefineParams, check_video_matches
from refine.selection import DEFAULT_THRESHOLD, select_queries
from refine.stage1 import (
    ExpressionStage1,
    VideoStage1,
    load_stage1_npz,
    load_video_stage1,
    stage1_from_binary_masks,
)
from refine.upsample import upsample_masks

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
Tracker = Callable[
    [FrameSource, str, ExpressionStage1, RefineParams, ModelSpec, ProgressFn], ExpressionResult
]
"""(frames, exp_id, stage-1 of the expression, params, model, progress) → ExpressionResult:
selection, prompts and SAM2 propagation of one expression (e.g. ``refine_expression`` with a
propagator for the model)."""

STAGES = ("stage1", "sam2", "fused")
DEFAULT_CACHE_BYTES = 1_500 * 2**20
RANK_ORDERS = ("fused", "delta")
MAX_CASES = 4  # videos kept in memory per session (frames + SAM2 feature caches)


class RunCancelled(Exception):
    """Raised from the progress callback when the user asked to stop."""


class OutOfMemory(InputError):
    """SAM2 ran out of memory (CUDA, MPS or host) on a run; the message says what to try.
    Nothing of the session changed, so it can run again."""


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch.cuda.OutOfMemoryError, a RuntimeError saying "out of memory" (CUDA,
    MPS, CPU allocators) and MemoryError; torch is not imported to decide."""
    if isinstance(err, MemoryError):
        return True
    return isinstance(err, RuntimeError) and (
        type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()
    )


@dataclass(frozen=True)
class RunSettings:
    """What determines an expression's SAM2 masks: the model, θ and the prompt kind.
    (ρ and v only change the fusion, which is recomputed from cached masks.)"""

    spec: ModelSpec
    threshold: float = DEFAULT_THRESHOLD
    prompt: str = "mask"

    def describe(self) -> str:
        s = self.spec
        weights = "RANDOM weights" if s.random_weights else "checkpoint"
        size = f", input {s.image_size}px" if s.image_size else ""
        return (
            f"SAM2.1 {s.size} on {s.device} ({weights}{size}), θ = {self.threshold:g}, "
            f"{self.prompt} prompts"
        )


GtLoader = Callable[[str], "np.ndarray | None"]


@dataclass
class Case:
    """One video: frames, stage-1 results, sentences and optional ground truth.

    ``key`` identifies the case within a process (cached runs are keyed by it);
    ``video`` is the plain file name used for downloads; ``gt(exp_id)`` gives bool
    [T, H, W] or None when that expression has no ground truth.
    """

    key: str
    video: str
    frames: FrameSource
    frame_names: list[str]
    stage1: VideoStage1
    sentences: dict[str, str] = field(default_factory=dict)
    fps: float = DEFAULT_FPS
    gt: GtLoader | None = None
    source: str = ""
    _gt_cache: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)

    @property
    def exp_ids(self) -> list[str]:
        return list(self.stage1.expressions)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    def sentence(self, exp_id: str) -> str:
        exp = self.stage1.expressions.get(exp_id)
        return self.sentences.get(exp_id) or (exp.sentence if exp else None) or ""

    def expression(self, exp_id: str) -> ExpressionStage1:
        if exp_id not in self.stage1.expressions:
            raise InputError(
                f"{self.video}: no expression {exp_id!r} in its stage-1 results "
                f"(it has {self.exp_ids})"
            )
        return self.stage1.expressions[exp_id]

    def ground_truth(self, exp_id: str) -> np.ndarray | None:
        """Ground truth of ``exp_id``: bool [T, H, W], or None without one (cached)."""
        if self.gt is None:
            return None
        if exp_id not in self._gt_cache:
            gt = self.gt(exp_id)
            if gt is not None and gt.shape != (
                self.num_frames,
                self.frames.height,
                self.frames.width,
            ):
                raise InputError(
                    f"{self.video}/{exp_id}: ground truth is {list(gt.shape)} (T, H, W) but the "
                    f"video is {[self.num_frames, self.frames.height, self.frames.width]}"
                )
            self._gt_cache[exp_id] = gt
        return self._gt_cache[exp_id]


@dataclass
class CaseRun:
    """One expression's SAM2 result under ``settings``, with renders and scores cached.

    scores: {"stage1", "sam2", "union"} → ExpressionScore (the fused masks are either the
    SAM2 or the union masks, so these cover every ρ, v); None until computed or without GT.
    videos: {"stage1", "sam2", "fused-sam2", "fused-union"} → mp4 path.
    """

    case_key: str
    exp_id: str
    settings: RunSettings
    result: ExpressionResult
    run_id: int
    scores: dict | None = None
    videos: dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        r = self.result
        arrays = (r.stage1, r.sam2, r.fused, r.sam2_objects)
        return sum(a.nbytes for a in arrays if a is not None)

    def decision(self, area_ratio: Fraction, vote: Fraction) -> FusionDecision:
        """The fusion vote for ρ, v from the cached per-frame box areas (O(T))."""
        d = self.result.decision
        return decide(d.area_stage1, d.area_sam2, area_ratio, vote)

    def fused(self, decision: FusionDecision) -> np.ndarray:
        """Fused masks [T, H, W] bool under ``decision``."""
        return apply_decision(self.result.stage1, self.result.sam2, decision)

    def fused_frame(self, decision: FusionDecision, t: int) -> np.ndarray:
        """Fused mask of frame ``t``: [H, W] bool."""
        r = self.result
        return (r.sam2[t] | r.stage1[t]) if decision.multi else r.sam2[t]


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

    def decision(self, area_ratio: Fraction, vote: Fraction) -> FusionDecision:
        return decide(self.area_stage1, self.area_sam2, area_ratio, vote)

    def fused_score(self, decision: FusionDecision):
        return self.scores["union" if decision.multi else "sam2"]


def jf(score) -> float:
    """(J + F) / 2 of an ExpressionScore, as a fraction."""
    return (score.J + score.F) / 2


def rank_rows(
    rows: Iterable[RankRow], area_ratio: Fraction, vote: Fraction, order: str = "fused"
) -> list[tuple[RankRow, FusionDecision]]:
    """Rows worst first: by fused J&F (``order="fused"``) or by fused − stage-1 J&F
    (``"delta"``), under ρ, v; ties keep input order."""
    if order not in RANK_ORDERS:
        raise InputError(f"rank order {order!r} is not one of {list(RANK_ORDERS)}")
    out = [(r, r.decision(area_ratio, vote)) for r in rows]

    def key(item: tuple[RankRow, FusionDecision]) -> float:
        row, d = item
        fused = jf(row.fused_score(d))
        return fused - jf(row.scores["stage1"]) if order == "delta" else fused

    return sorted(out, key=key)


def stage_scores(result: ExpressionResult, gt: np.ndarray) -> dict:
    """J and F of the stage-1, SAM2 and union masks against ``gt`` [T, H, W]."""
    from refine.metrics import evaluate_stages

    r = result
    return evaluate_stages(gt, {"stage1": r.stage1, "sam2": r.sam2, "union": r.stage1 | r.sam2})


def stage1_preview(exp: ExpressionStage1, threshold: float, size: tuple[int, int]) -> np.ndarray:
    """Stage-1 union of the queries kept at θ, without SAM2: [T, H, W] bool."""
    kept = select_queries(exp.scores, threshold)
    t = exp.num_frames
    if len(kept) == 0:
        return np.zeros((t, *size), dtype=bool)
    return upsample_masks(exp.masks[:, kept], size).any(axis=1)


class Session:
    """One user's state: the case on screen, its expression, SAM2 runs and fusion settings.

    ``workdir`` is the session's one folder for files: rendered videos and downloads. It
    is deleted by :meth:`remove_files` (files are made again when needed), by
    :meth:`close`, and when the session is garbage-collected or the interpreter exits.
    Runs are kept in an LRU bounded by ``max_cache_bytes`` of masks.
    """

    def __init__(self, workdir: str | None = None, max_cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.workdir = workdir or tempfile.mkdtemp(prefix="refine-app-")
        os.makedirs(self.workdir, exist_ok=True)
        weakref.finalize(self, _remove_tree, self.workdir)
        self.max_cache_bytes = max_cache_bytes
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
        self._runs: OrderedDict[tuple, CaseRun] = OrderedDict()
        self._cases: OrderedDict[str, Case] = OrderedDict()
        self._preview: dict[tuple, np.ndarray] = {}
        self._next_run_id = 1
        self._lock = threading.RLock()

    # ---- case and expression -------------------------------------------------------------
    def open_case(self, case: Case, exp_id: str | None = None) -> None:
        """Show ``case`` (its first expression unless ``exp_id``); cached runs stay. A case
        already in the session under the same key is reused (with its feature cache)."""
        if not case.exp_ids:
            raise InputError(f"{case.video}: the stage-1 results have no expressions")
        case = self.case_for((case.key, lambda: case))
        with self._lock:
            self.case = case
            self._preview.clear()
            self.select_expression(exp_id if exp_id is not None else case.exp_ids[0])

    def known_case(self, key: str) -> Case | None:
        """A recently used case by key (None if evicted)."""
        return self._cases.get(key)

    def case_for(self, load: Callable[[], Case] | tuple[str, Callable[[], Case]]) -> Case:
        """``load()``'s case, or with ``(key, load)`` the recently used case of that key
        (so its frames and SAM2 feature cache are reused)."""
        key, loader = load if isinstance(load, tuple) else (None, load)
        case = self._cases.get(key) if key is not None else None
        if case is None:
            case = loader()
        with self._lock:
            self._cases[case.key] = case
            self._cases.move_to_end(case.key)
            for old in list(self._cases)[: max(len(self._cases) - MAX_CASES, 0)]:
                if self._cases[old] is not self.case:
                    del self._cases[old]
        return case

    def begin(self) -> None:
        """Clear a previous stop request (call when the user starts a run)."""
        self.cancel.clear()

    def request_stop(self) -> None:
        """Ask the running (or next) SAM2 run to stop at its next frame."""
        self.cancel.set()

    def select_expression(self, exp_id: str, settings: RunSettings | None = None) -> None:
        """Show ``exp_id`` of the current case, with its cached run for ``settings`` (or its
        most recent cached run when ``settings`` is None), if any."""
        case = self._require_case()
        case.expression(exp_id)
        with self._lock:
            self.exp_id = exp_id
            self.run = self.cached_run(exp_id, settings)
            self._update_decision()

    def cached_run(self, exp_id: str, settings: RunSettings | None = None) -> CaseRun | None:
        """The cached run of ``exp_id`` of the current case for ``settings`` (or the latest)."""
        case = self._require_case()
        if settings is not None:
            run = self._runs.get((case.key, exp_id, settings))
            return run
        latest = None
        for (key, e, _), run in self._runs.items():
            if key == case.key and e == exp_id and (latest is None or run.run_id > latest.run_id):
                latest = run
        return latest

    # ---- SAM2 ------------------------------------------------------------------------------
    def run_sam2(
        self, settings: RunSettings, track: Tracker, progress: ProgressFn | None = None
    ) -> CaseRun:
        """Selection, prompts and SAM2 for the current expression (reused when cached).

        ``progress(frames_done, frames_total)``; :attr:`cancel` set → RunCancelled.
        """
        case, exp_id = self._require_case(), self._require_exp()
        cached = self.cached_run(exp_id, settings)
        if cached is not None:
            with self._lock:
                self.run = cached
                self._runs.move_to_end((case.key, exp_id, settings))
                self._update_decision()
            return cached
        run = self._track(case, exp_id, settings, track, progress)
        with self._lock:
            if self.case is case and self.exp_id == exp_id:
                self.run = run
                self._update_decision()
        return run

    def _track(
        self,
        case: Case,
        exp_id: str,
        settings: RunSettings,
        track: Tracker,
        progress: ProgressFn | None,
    ) -> CaseRun:
        params = RefineParams(
            threshold=settings.threshold,
            area_ratio=self.area_ratio,
            vote=self.vote,
            prompt=settings.prompt,
        )
        cancel = self.cancel

        def on_progress(done: int, total: int) -> None:
            if cancel.is_set():
                raise RunCancelled(f"stopped after {done} of {total} frames")
            if progress is not None:
                progress(done, total)

        if cancel.is_set():
            raise RunCancelled("stopped before SAM2 started")
        try:
            result = track(
                case.frames, exp_id, case.expression(exp_id), params, settings.spec, on_progress
            )
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise OutOfMemory(_out_of_memory_message(case, exp_id, settings, err)) from err
        with self._lock:
            if len(result.kept):
                self.sam2_runs += 1
            run = CaseRun(case.key, exp_id, settings, result, self._next_run_id)
            self._next_run_id += 1
            self._runs[(case.key, exp_id, settings)] = run
            self._evict(keep=run)
        return run

    def _evict(self, keep: CaseRun) -> None:
        """Drop the oldest runs (and their videos) beyond max_cache_bytes, never ``keep``
        or the shown run."""
        total = sum(r.nbytes for r in self._runs.values())
        for key in list(self._runs):
            if total <= self.max_cache_bytes:
                break
            run = self._runs[key]
            if run is self.run or run is keep:
                continue
            total -= run.nbytes
            for path in run.videos.values():
                _remove(path)
            del self._runs[key]

    # ---- fusion ----------------------------------------------------------------------------
    def set_fusion(self, area_ratio: float | str | Fraction, vote: float | str | Fraction) -> None:
        """New ρ and v: re-decide the shown run from its cached box areas (no SAM2)."""
        try:
            rho = as_fraction(area_ratio, "area ratio ρ")
            v = as_fraction(vote, "vote v")
        except ValueError as err:
            raise InputError(str(err)) from err
        with self._lock:
            self.area_ratio, self.vote = rho, v
            self._update_decision()

    def _update_decision(self) -> None:
        self.decision = None if self.run is None else self.run.decision(self.area_ratio, self.vote)

    # ---- renders ---------------------------------------------------------------------------
    def overlay(self, stage: str, t: int) -> np.ndarray | None:
        """Overlay of ``stage`` ("stage1", "sam2", "fused") on frame ``t``: uint8 [H, W, 3];
        None for SAM2/fused before a run. Stage 1 before a run previews the queries kept
        at :attr:`preview_threshold`."""
        case = self._require_case()
        t = self._check_frame(t)
        mask = self.mask(stage, t)
        if mask is None:
            return None
        return overlay_mask(case.frames.rgb(t), mask, STAGE_COLORS[stage])

    def overlays(self, t: int) -> dict[str, np.ndarray | None]:
        """All three overlays of frame ``t`` (frame decoded once)."""
        case = self._require_case()
        t = self._check_frame(t)
        frame = case.frames.rgb(t)
        out: dict[str, np.ndarray | None] = {}
        for stage in STAGES:
            mask = self.mask(stage, t)
            out[stage] = None if mask is None else overlay_mask(frame, mask, STAGE_COLORS[stage])
        return out

    def mask(self, stage: str, t: int) -> np.ndarray | None:
        """The shown mask of ``stage`` on frame ``t``: [H, W] bool, or None."""
        run, decision = self.run, self.decision
        if stage == "stage1":
            if run is not None:
                return run.result.stage1[t]
            return self.preview(self.preview_threshold)[t]
        if run is None or decision is None:
            return None
        if stage == "sam2":
            return run.result.sam2[t]
        if stage == "fused":
            return run.fused_frame(decision, t)
        raise ValueError(f"unknown stage {stage!r}; use one of {STAGES}")

    def preview(self, threshold: float) -> np.ndarray:
        """Stage-1 union of the queries kept at ``threshold`` for the current expression
        (no SAM2): [T, H, W] bool, cached."""
        case, exp_id = self._require_case(), self._require_exp()
        key = (case.key, exp_id, float(threshold))
        if key not in self._preview:
            self._preview.clear()
            size = (case.frames.height, case.frames.width)
            self._preview[key] = stage1_preview(case.expression(exp_id), threshold, size)
        return self._preview[key]

    def videos(self, progress: ProgressFn | None = None) -> dict[str, str]:
        """Overlay mp4s of the shown run: {"stage1", "sam2", "fused"} → path (rendered once
        per run and fusion branch)."""
        case, run, decision = self._require_case(), self._require_run(), self.decision
        fused_key = "fused-union" if decision.multi else "fused-sam2"
        todo = {
            k: v
            for k, v in self._video_paths(case, run).items()
            if not os.path.isfile(run.videos.get(k, ""))
        }
        todo = {k: v for k, v in todo.items() if k in ("stage1", "sam2", fused_key)}
        if todo:
            r = run.result
            masks = {
                "stage1": r.stage1,
                "sam2": r.sam2,
                "fused-sam2": r.sam2,
                "fused-union": r.sam2 | r.stage1 if "fused-union" in todo else r.sam2,
            }
            colors = {
                "stage1": STAGE_COLORS["stage1"],
                "sam2": STAGE_COLORS["sam2"],
                "fused-sam2": STAGE_COLORS["fused"],
                "fused-union": STAGE_COLORS["fused"],
            }
            write_overlay_videos(
                todo,
                case.frames.rgb,
                {k: masks[k] for k in todo},
                {k: colors[k] for k in todo},
                case.fps,
                progress,
            )
            run.videos.update(todo)
        return {
            "stage1": run.videos["stage1"],
            "sam2": run.videos["sam2"],
            "fused": run.videos[fused_key],
        }

    def _video_paths(self, case: Case, run: CaseRun) -> dict[str, str]:
        stem = f"{_safe(case.video)}_{_safe(run.exp_id)}_run{run.run_id}"
        vdir = os.path.join(self._folder(), "videos")
        os.makedirs(vdir, exist_ok=True)
        keys = ("stage1", "sam2", "fused-sam2", "fused-union")
        return {k: os.path.join(vdir, f"{stem}_{k}.mp4") for k in keys}

    # ---- metrics ---------------------------------------------------------------------------
    def scores(self) -> dict | None:
        """{"stage1", "sam2", "fused"} → ExpressionScore for the shown run under the current
        ρ, v; None without ground truth or before a run."""
        case, run = self._require_case(), self.run
        if run is None or self.decision is None:
            return None
        if run.scores is None:
            gt = case.ground_truth(run.exp_id)
            if gt is None:
                return None
            run.scores = stage_scores(run.result, gt)
        s = run.scores
        return {
            "stage1": s["stage1"],
            "sam2": s["sam2"],
            "fused": s["union" if self.decision.multi else "sam2"],
        }

    # ---- failure cases ---------------------------------------------------------------------
    def rank(
        self,
        items: Iterable[tuple[Callable[[], Case], str]],
        settings: RunSettings,
        track: Tracker,
        progress: Callable[[int, int, str], None] | None = None,
        source: str = "",
    ) -> list[RankRow]:
        """Run (or reuse) SAM2 on each (case loader, exp_id) with ground truth and score it.

        A loader is ``load()`` → Case or ``(case_key, load)`` (see :meth:`case_for`).

        Expressions without ground truth are left out. ``progress(i, n, label)`` per
        expression. Runs are cached, so opening a ranked case afterwards needs no SAM2.
        """
        items = list(items)
        rows: list[RankRow] = []
        for i, (load, exp_id) in enumerate(items):
            if self.cancel.is_set():
                raise RunCancelled(f"stopped after {i} of {len(items)} expressions")
            case = self.case_for(load)
            if progress is not None:
                progress(i, len(items), f"{case.video}/{exp_id}")
            gt = case.ground_truth(exp_id)
            if gt is None:
                continue
            run = self._runs.get((case.key, exp_id, settings))
            if run is None:
                run = self._track(case, exp_id, settings, track, None)
            if run.scores is None:
                run.scores = stage_scores(run.result, gt)
            d = run.result.decision
            rows.append(
                RankRow(
                    source,
                    case.key,
                    case.video,
                    exp_id,
                    case.sentence(exp_id),
                    run.scores,
                    d.area_stage1,
                    d.area_sam2,
                )
            )
        if progress is not None:
            progress(len(items), len(items), "done")
        self.ranking = rows
        return rows

    # ---- downloads -------------------------------------------------------------------------
    def masks_zip(self) -> str:
        """The shown run's fused masks as a MeViS-layout zip ``<video>/<exp_id>/<frame>.png``
        (values 0/255); returns its path."""
        from PIL import Image

        case, run, decision = self._require_case(), self._require_run(), self.decision
        fused = run.fused(decision)
        tag = f"rho{decision.area_ratio.numerator}-{decision.area_ratio.denominator}"
        tag += f"_v{decision.vote.numerator}-{decision.vote.denominator}"
        path = os.path.join(
            self._folder(), f"{_safe(case.video)}_{_safe(run.exp_id)}_run{run.run_id}_{tag}.zip"
        )
        tmp = f"{path}.part"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, mask in zip(case.frame_names, fused, strict=True):
                buf = _png_bytes(Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)), "L"))
                zf.writestr(f"{case.video}/{run.exp_id}/{name}.png", buf)
        os.replace(tmp, path)
        return path

    def remove_files(self) -> None:
        """Delete the session's folder (videos, zips); what is still needed is made again.
        The cases and cached runs stay (e.g. a browser tab that reconnects)."""
        with self._lock:
            for run in self._runs.values():
                run.videos.clear()
        _remove_tree(self.workdir)

    def close(self) -> None:
        """End the session: delete its folder and drop its cases and cached runs."""
        with self._lock:
            self.case, self.exp_id, self.run, self.decision = None, None, None, None
            self._runs.clear()
            self._cases.clear()
            self._preview.clear()
            self.ranking = []
        _remove_tree(self.workdir)

    def _folder(self) -> str:
        """The session's folder, made again if :meth:`remove_files` deleted it."""
        os.makedirs(self.workdir, exist_ok=True)
        return self.workdir

    # ---- helpers ---------------------------------------------------------------------------
    def _require_case(self) -> Case:
        if self.case is None:
            raise InputError("no case is open: pick an example, upload a video, or pick a video")
        return self.case

    def _require_exp(self) -> str:
        if self.exp_id is None:
            raise InputError("no expression is selected")
        return self.exp_id

    def _require_run(self) -> CaseRun:
        if self.run is None or self.decision is None:
            raise InputError("SAM2 has not run for this expression and these settings: press Run")
        return self.run

    def _check_frame(self, t: int | float) -> int:
        n = self._require_case().num_frames
        t = int(t)
        if not 0 <= t < n:
            raise InputError(f"frame {t} is out of range: the video has frames 0..{n - 1}")
        return t


# ---- data sources ------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """A MeViS-layout root whose stage-1 results are ``<stage1_dir>/<video>.npz`` or
    ``<stage1_dir>/<video>/<exp_id>/<frame>.png``; with ``mask_dict.json`` it has GT."""

    name: str
    root: str
    stage1_dir: str

    @property
    def dataset(self) -> MevisDataset:
        return _dataset(self.root)

    @property
    def has_gt(self) -> bool:
        return os.path.isfile(os.path.join(self.root, "mask_dict.json"))

    def videos(self) -> list[str]:
        return self.dataset.videos()

    def expressions(self) -> list[tuple[str, str, str]]:
        """(video, exp_id, sentence) of every expression in meta_expressions.json."""
        out = []
        for video in self.videos():
            entry = self.dataset.meta[video]
            exps = entry.get("expressions", {}) if isinstance(entry, dict) else {}
            for exp_id, e in exps.items():
                out.append((video, exp_id, str(e.get("exp", "")) if isinstance(e, dict) else ""))
        return out

    def case_key(self, video: str) -> str:
        return f"{self.name}:{os.path.abspath(self.root)}:{video}"

    def load_case(self, video: str) -> Case:
        """The case of ``video``: frames from JPEGImages, its stage-1 results and GT."""
        info = self.dataset.video(video)
        frames = info.frame_source()
        size = (frames.height, frames.width)
        source, stage1 = load_video_stage1(
            self.stage1_dir, video, info.frame_names, size, info.expressions
        )
        check_video_matches(stage1, info.frame_names, frames, source)
        gt = (
            VideoGroundTruth(self.root, video, (frames.height, frames.width))
            if self.has_gt
            else None
        )
        return Case(
            key=self.case_key(video),
            video=video,
            frames=frames,
            frame_names=info.frame_names,
            stage1=stage1,
            sentences=dict(info.expressions),
            gt=gt,
            source=self.name,
        )


@functools.lru_cache(maxsize=8)
def _dataset(root: str) -> MevisDataset:
    return MevisDataset(root)


# ---- uploads -----------------------------------------------------------------------------
def upload_video_name(path: str) -> str:
    """A plain file name for an uploaded file's video: its stem with characters other
    than letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip(".") or "video"
    return check_name(name, "video", path)


def case_from_upload(
    video_path: str,
    stage1_path: str,
    gt_path: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> Case:
    """A case from uploaded files.

    video_path: a video file (mp4, webm, mov, …) or a zip of JPEG/PNG frames;
    stage1_path: a safe stage-1 ``.npz`` or a zip of PNG masks ``<exp_id>/<frame>.png``;
    gt_path: optional zip of ground-truth PNG masks ``<exp_id>/<frame>.png``.
    A video file's frames take the stage-1 frame names (the counts must agree); a zip's
    frame names must equal them. Every file is checked against ``limits`` before it is
    read (sizes of all three first); the npz is never unpickled.
    """
    from refine.video_io import is_zip_path, read_masks_zip, read_video

    vname = os.path.basename(video_path)
    sname = os.path.basename(stage1_path)
    ext = os.path.splitext(stage1_path)[1].lower()
    if ext != ".npz" and not is_zip_path(stage1_path):
        raise InputError(
            f"{sname}: stage-1 results must be a .npz (safe format) or a .zip of PNG masks "
            f"<exp_id>/<frame>.png, got {ext or 'no extension'!r}"
        )
    uploads = {"video": video_path, "stage-1 results": stage1_path, "ground truth": gt_path}
    for what, path in uploads.items():
        if path:
            limits.check_file_size(path, what)
    video = read_video(video_path, limits)
    t, h, w = video.frames.shape[:3]
    if ext == ".npz":
        stage1 = load_stage1_npz(stage1_path, max_bytes=limits.max_unpacked_bytes)
    else:
        masks = read_masks_zip(stage1_path, limits, what="stage-1 masks")
        _check_mask_size(masks.masks, (h, w), sname, vname)
        stage1 = stage1_from_binary_masks(masks.masks, masks.frame_names, {})
    names = video.frame_names
    if video.fps is not None:  # a video file: its frames have no names of their own
        if len(stage1.frame_names) != t:
            raise InputError(
                f"{sname}: stage-1 results cover {len(stage1.frame_names)} frames but {vname} "
                f"has {t}; upload the results made from this video"
            )
        names = list(stage1.frame_names)
    frames = FrameSource.from_arrays(video.frames)
    check_video_matches(stage1, names, frames, sname)
    gt = None
    if gt_path:
        gt_set = read_masks_zip(gt_path, limits, what="ground-truth masks")
        gname = os.path.basename(gt_path)
        _check_mask_size(gt_set.masks, (h, w), gname, vname)
        if gt_set.frame_names != names:
            raise InputError(
                f"{gname}: ground truth covers frames {gt_set.frame_names[:3]}… "
                f"({len(gt_set.frame_names)}), the video has {names[:3]}… ({len(names)})"
            )
        unknown = sorted(set(gt_set.masks) - set(stage1.expressions))
        if unknown:
            raise InputError(
                f"{gname}: ground truth for expressions {unknown} that have no stage-1 results"
            )
        gt = gt_set.masks.get
    return Case(
        key=f"upload:{uuid.uuid4().hex}",
        video=upload_video_name(video_path),
        frames=frames,
        frame_names=names,
        stage1=stage1,
        sentences={k: e.sentence for k, e in stage1.expressions.items() if e.sentence},
        fps=video.fps or DEFAULT_FPS,
        gt=gt,
        source="upload",
    )


def _check_mask_size(masks: dict, size: tuple[int, int], source: str, video: str) -> None:
    for exp_id, m in masks.items():
        if m.shape[1:] != size:
            raise InputError(
                f"{source}: masks of expression {exp_id!r} are {m.shape[2]}x{m.shape[1]} but "
                f"{video} is {size[1]}x{size[0]}; masks must have the video's size"
            )


def _png_bytes(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _out_of_memory_message(
    case: Case, exp_id: str, settings: RunSettings, err: BaseException
) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return (
        f"SAM2 ran out of memory on {case.video}/{exp_id} ({case.num_frames} frames of "
        f"{case.frames.width}x{case.frames.height}) with {settings.describe()} ({first}). "
        "Try a smaller SAM2 model (tiny or small), a smaller SAM2 input size (--image-size), "
        "or fewer frames (a shorter clip). Nothing changed in this session: you can run again."
    )


def _remove_tree(path: str) -> None:
    """Delete the folder ``path`` (already gone is fine; other failures are logged)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        log.debug("%s was already removed", path)
    except OSError as err:
        log.warning("could not remove the session folder %s: %s", path, err)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        log.debug("%s was already removed", path)
