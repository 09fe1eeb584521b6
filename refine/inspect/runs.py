"""Cached SAM2 runs of an inspection session: what a run keeps and the LRU that holds them.

A run keeps only what the fusion needs for any ρ, v: the stage-1 and SAM2 union masks and
their per-frame box areas (the fused masks follow from ρ, v through
:func:`refine.fusion.apply_decision`). :class:`RunCache` owns the runs of one session: ids,
least-recently-used order, eviction by a byte budget, and the lock that makes a lookup and
its "recently used" mark one step.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from refine.bitmasks import BitMasks, FrameView
from refine.errors import InputError
from refine.frames import FrameSource
from refine.fusion import FusionDecision, apply_decision, decide
from refine.memory import SAM2_MEMORY, MemoryConfig
from refine.models import ModelSpec
from refine.pipeline import ExpressionResult, RefineParams
from refine.selection import DEFAULT_THRESHOLD
from refine.stage1 import ExpressionStage1

ProgressFn = Callable[[int, int], None]
Tracker = Callable[
    [FrameSource, str, ExpressionStage1, RefineParams, ModelSpec, ProgressFn, MemoryConfig],
    ExpressionResult,
]
"""(frames, exp_id, stage-1 of the expression, params, model, progress, tracking memory) →
ExpressionResult: selection, prompts and SAM2 propagation of one expression (e.g.
``refine_expression`` with a propagator for the model and memory)."""

DEFAULT_CACHE_BYTES = 1_500 * 2**20


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
        type(err).__name__ == "OutOfMemoryError"
        or "out of memory" in str(err).lower()
        or "can't allocate memory" in str(err)  # torch's CPU allocator (DefaultCPUAllocator)
    )


def branch(decision: FusionDecision) -> str:
    """Name of the branch :func:`refine.fusion.apply_decision` takes: "union" or "sam2"
    (keys of a run's scores and videos, and the table's label)."""
    picked = apply_decision(np.ones(1, bool), np.zeros(1, bool), decision)  # stage 1 only
    return "union" if picked[0] else "sam2"


@dataclass(frozen=True)
class RunSettings:
    """What determines an expression's SAM2 masks: the model, θ and the prompt kind.
    (ρ and v only change the fusion, which is recomputed from cached masks.) A new setting
    of the SAM2 run (e.g. a memory mode) is one more field here: runs are cached by it."""

    spec: ModelSpec
    threshold: float = DEFAULT_THRESHOLD
    prompt: str = "mask"
    memory: MemoryConfig = SAM2_MEMORY

    def describe(self) -> str:
        s = self.spec
        weights = "RANDOM weights" if s.random_weights else "checkpoint"
        size = f", input {s.image_size}px" if s.image_size else ""
        memory = ", SAMURAI memory" if self.memory.samurai else ""
        return (
            f"SAM2.1 {s.size} on {s.device} ({weights}{size}{memory}), θ = {self.threshold:g}, "
            f"{self.prompt} prompts"
        )

    def params(self) -> RefineParams:
        """The pipeline's parameters for this run (ρ, v at their defaults: the session
        re-decides the fusion from the cached areas)."""
        return RefineParams(threshold=self.threshold, prompt=self.prompt)


@dataclass(frozen=True)
class RunMasks:
    """What a run keeps: kept [K] query indices, prompt_frames [K], the stage1 / sam2 union
    masks [T, H, W] a bit a pixel (:class:`~refine.bitmasks.BitMasks`: ``[t]`` → bool
    [H, W]) and their box areas area_stage1 / area_sam2 [T] int64."""

    kept: np.ndarray
    prompt_frames: np.ndarray
    stage1: BitMasks
    sam2: BitMasks
    area_stage1: np.ndarray
    area_sam2: np.ndarray

    @classmethod
    def of(cls, result: ExpressionResult) -> RunMasks:
        d = result.decision
        return cls(
            result.kept,
            result.prompt_frames,
            BitMasks.pack(result.stage1),
            BitMasks.pack(result.sam2),
            d.area_stage1,
            d.area_sam2,
        )

    @property
    def nbytes(self) -> int:
        """Bytes of every array held (the SAM2 prompts and per-object masks are not kept)."""
        arrays = (self.kept, self.prompt_frames, self.stage1, self.sam2)
        return sum(a.nbytes for a in (*arrays, self.area_stage1, self.area_sam2))

    def decision(self, area_ratio: Fraction, vote: Fraction) -> FusionDecision:
        """The fusion vote for ρ, v from the box areas (O(T))."""
        return decide(self.area_stage1, self.area_sam2, area_ratio, vote)


@dataclass
class CaseRun:
    """One expression's SAM2 result under ``settings``, with its scores and videos.

    scores: {"stage1", "sam2", "union"} → ExpressionScore (the fused masks are either the
    SAM2 or the union masks, so these cover every ρ, v); None until computed or without GT.
    videos: {"stage1", "sam2", "fused-sam2", "fused-union"} → mp4 path.
    """

    case_key: str
    exp_id: str
    settings: RunSettings
    result: RunMasks
    run_id: int
    scores: dict | None = None
    videos: dict[str, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return self.result.nbytes

    @property
    def key(self) -> RunKey:
        return (self.case_key, self.exp_id, self.settings)

    def decision(self, area_ratio: Fraction, vote: Fraction) -> FusionDecision:
        return self.result.decision(area_ratio, vote)

    def fused(self, decision: FusionDecision, t: int | None = None) -> np.ndarray | FrameView:
        """Fused masks under ``decision``: frame ``t``'s bool [H, W], or without ``t`` all
        T frames as a FrameView (made a frame at a time; ``np.asarray`` → [T, H, W])."""
        r = self.result
        if t is None:
            return FrameView(
                lambda i: apply_decision(r.stage1[i], r.sam2[i], decision), r.sam2.shape
            )
        return apply_decision(r.stage1[t], r.sam2[t], decision)


RunKey = tuple[str, str, RunSettings]  # (case key, exp_id, settings)


class RunCache:
    """A session's cached runs: LRU by last use, bounded by ``max_bytes`` of masks.

    Every method takes the cache's lock, so that a lookup and its "recently used" mark are
    one step (a concurrent eviction cannot fall between them). Eviction never drops the
    runs it is told to keep; ``on_evict(run)`` is called for each run it drops.
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        on_evict: Callable[[CaseRun], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.on_evict = on_evict
        self._runs: OrderedDict[RunKey, CaseRun] = OrderedDict()
        self._next_id = 1
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._runs.values())

    def get(self, key: RunKey) -> CaseRun | None:
        """The run of ``key`` (marked as just used), or None."""
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
            return run

    def latest(self, case_key: str, exp_id: str) -> CaseRun | None:
        """The most recent run of (case, expression) under any settings, or None."""
        with self._lock:
            runs = [r for (k, e, _), r in self._runs.items() if k == case_key and e == exp_id]
        return max(runs, key=lambda r: r.run_id, default=None)

    def add(
        self, key: RunKey, result: ExpressionResult, keep: tuple[CaseRun | None, ...] = ()
    ) -> CaseRun:
        """Cache ``result`` under ``key`` as a new run (with the next id); then evict the
        least recently used runs beyond the budget, except the new one and ``keep``."""
        with self._lock:
            run = CaseRun(key[0], key[1], key[2], RunMasks.of(result), self._next_id)
            self._next_id += 1
            self._runs[key] = run
            self._evict((run, *keep))
            return run

    def _evict(self, keep: tuple[CaseRun | None, ...]) -> None:
        total = sum(r.nbytes for r in self._runs.values())
        for key, run in list(self._runs.items()):
            if total <= self.max_bytes:
                break
            if any(run is k for k in keep):
                continue
            total -= run.nbytes
            del self._runs[key]
            if self.on_evict is not None:
                self.on_evict(run)

    def drop(self, key: RunKey) -> CaseRun | None:
        """Forget the run of ``key`` (no ``on_evict``); returns it, or None."""
        with self._lock:
            return self._runs.pop(key, None)

    def keys_of_case(self, case_key: str) -> list[RunKey]:
        with self._lock:
            return [k for k in self._runs if k[0] == case_key]

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()


def track_run(
    cache: RunCache,
    frames: FrameSource,
    key: RunKey,
    exp: ExpressionStage1,
    track: Tracker,
    cancel: threading.Event,
    progress: ProgressFn | None = None,
    keep: tuple[CaseRun | None, ...] = (),
    label: str = "",
) -> CaseRun:
    """Run SAM2 on the expression of ``key`` = (case key, exp_id, settings) and cache it.
    ``label`` names it in messages (e.g. "video/exp_id").

    ``cancel`` set before or during the run → RunCancelled (nothing cached); SAM2 out of
    memory → OutOfMemory with what to try. ``progress(done, total)`` as SAM2 tracks.
    """
    _, exp_id, settings = key

    def on_progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise RunCancelled(f"stopped after {done} of {total} tracking steps")
        if progress is not None:
            progress(done, total)

    if cancel.is_set():
        raise RunCancelled("stopped before SAM2 started")
    try:
        result = track(
            frames, exp_id, exp, settings.params(), settings.spec, on_progress, settings.memory
        )
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        raise OutOfMemory(_out_of_memory_message(frames, label or exp_id, settings, err)) from err
    return cache.add(key, result, keep)


def _out_of_memory_message(
    frames: FrameSource, label: str, settings: RunSettings, err: BaseException
) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return (
        f"SAM2 ran out of memory on {label} ({len(frames)} frames of "
        f"{frames.width}x{frames.height}) with {settings.describe()} ({first}). "
        "Try a smaller SAM2 model (tiny or small), a smaller SAM2 input size (--image-size), "
        "or fewer frames (a shorter clip). Nothing changed in this session: you can run again."
    )
