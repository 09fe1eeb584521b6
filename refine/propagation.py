"""Propagators: prompts on a video → per-object masks on every frame (design §2 step 5).

:class:`Sam2Propagator` runs SAM2; tests use fakes with the same ``track`` method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np

from refine.errors import InputError
from refine.feature_cache import DEFAULT_CACHE_MB, FeatureCache
from refine.frames import FrameSource
from refine.memory import SAM2_MEMORY, MemoryConfig
from refine.models import ModelSpec, get_predictor
from refine.prompts import Prompt
from refine.rle_masks import RleMasks

ProgressFn = Callable[[int, int], None]
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SCHEDULES = ("lockstep", "sequential")


class Propagator(Protocol):
    """Anything that turns prompt sets into masks."""

    def track(
        self,
        frames: FrameSource,
        prompt_sets: Sequence[Sequence[Prompt]],
        progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        """For each prompt set (one expression, K ≥ 1 prompts, obj_id = 0..K-1), yield its
        masks [T, K, H, W] bool (an array or :class:`~refine.rle_masks.RleMasks`), in the
        order of ``prompt_sets``."""
        ...


def resolve_precision(precision: str, device: str) -> str:
    """ "auto" → fp16 on CUDA (as the challenge code ran), fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and device == "cpu":
        raise InputError("fp16 autocast is not supported on cpu; use fp32 or bf16")
    return precision


class _Run:
    """One prompt set's SAM2 state, its output and its place in the sweeps."""

    def __init__(self, predictor, state: dict, prompts: Sequence[Prompt], shape) -> None:
        self.state = state
        self.start = min(p.frame for p in prompts)
        self.out = RleMasks(*shape)  # [T, K, H, W], run-length encoded as frames arrive
        self.gen = None
        self.predictor = predictor

    def step(self, t: int, reverse: bool) -> None:
        if self.gen is None:
            self.gen = self.predictor.propagate_in_video(
                self.state, start_frame_idx=self.start, reverse=reverse
            )
        frame, _, logits = next(self.gen)
        if frame != t:
            raise RuntimeError(f"SAM2 yielded frame {frame} where {t} was expected")
        self.out[t] = masks_from_logits(logits)

    def finish_pass(self) -> None:
        if self.gen is not None:
            for _ in self.gen:  # exhausts an empty generator; nothing else is left
                raise RuntimeError("SAM2 yielded more frames than scheduled")
        self.gen = None

    def prune(self, t: int, reverse: bool, window: int) -> None:
        """Drop outputs SAM2 will never read again (see Sam2Propagator): those ``window`` or
        more frames behind ``t`` in tracking direction, except, in the forward pass, the
        frames the reverse pass reads first, and those SAMURAI's selection can still read."""
        from refine.samurai_sam2 import protected_frames

        keep = protected_frames(self.predictor, self.state, t, reverse, self.start)
        for obj_idx, obj in self.state["output_dict_per_obj"].items():
            outputs = obj["non_cond_frame_outputs"]
            kept = keep.get(obj_idx, ())
            for f in [f for f in outputs if (f >= t + window if reverse else f <= t - window)]:
                reserved = not reverse and self.start <= f <= self.start + window
                if not reserved and f not in kept:  # reserved: the reverse pass reads these
                    del outputs[f]


class Sam2Propagator:
    """SAM2 video propagation, one inference state per expression holding all its objects.

    Frame features live in a bounded :class:`FeatureCache` held by the video's
    FrameSource (one per model and precision) and are reused by every expression and both
    directions.

    ``schedule="lockstep"`` (default) runs all prompt sets of a call together: one forward
    sweep over the frames, then one reverse sweep, every expression taking its step on a
    frame while that frame's features are fresh in the cache. So each frame is encoded
    at most twice however small the cache (once when it holds the whole video), and each
    state keeps only the outputs SAM2 can still read: memories reach back
    ``num_maskmem - 1`` frames and object pointers ``max_obj_ptrs_in_encoder - 1``, plus
    the conditioning frames and the frames the reverse pass starts from. Masks are
    identical to running the expressions one after another (``"sequential"``).

    ``memory`` chooses SAM2's memory or SAMURAI's motion-aware one (per state; pruning
    then also keeps the frames SAMURAI's memory selection can still read).
    """

    def __init__(
        self,
        spec: ModelSpec,
        precision: str = "auto",
        cache_mb: float | None = DEFAULT_CACHE_MB,
        offload_cache: bool = False,
        schedule: str = "lockstep",
        memory: MemoryConfig = SAM2_MEMORY,
    ) -> None:
        if schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")
        self.spec = spec
        self.precision = resolve_precision(precision, spec.device)
        self.cache_mb = cache_mb
        self.offload_cache = offload_cache
        self.schedule = schedule
        self.memory = memory
        self.last_cache: FeatureCache | None = None

    @property
    def predictor(self):
        return get_predictor(self.spec)

    @property
    def encoder_calls(self) -> int:
        """Image-encoder calls made by this process's predictor so far."""
        return self.predictor.refine_encoder_calls

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context SAM2 runs under at this propagator's precision."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.spec.device.split(":")[0], dtype=dtype)

    def _window(self) -> int | None:
        p = self.predictor
        if p.memory_temporal_stride_for_eval != 1:
            return None  # memories reach further back; keep everything
        return max(p.num_maskmem, p.max_obj_ptrs_in_encoder) + 1

    def feature_cache(self, frames: FrameSource) -> FeatureCache:
        """The video's cache for this model at this precision (features differ by both)."""
        key = (self.spec, self.precision)
        cache = frames.caches.get(key)
        if cache is None:
            cache = FeatureCache(self.cache_mb, self.offload_cache, self.spec.device)
            frames.caches[key] = cache
        self.last_cache = cache
        return cache

    def track(
        self,
        frames: FrameSource,
        prompt_sets: Sequence[Sequence[Prompt]],
        progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        if any(not ps for ps in prompt_sets):
            raise ValueError("a prompt set needs at least one prompt")
        if self.schedule == "sequential":
            for ps in prompt_sets:
                yield from self._sweep(frames, [ps], progress)
        else:
            yield from self._sweep(frames, prompt_sets, progress)

    def _sweep(self, frames, prompt_sets, progress) -> Iterator[np.ndarray]:
        import torch

        from refine.sam2_patches import new_inference_state

        predictor = self.predictor
        cache = self.feature_cache(frames)
        images = frames.bind(predictor.image_size)
        n = len(frames)
        window = self._window()
        total = sum(frames_to_track(n, ps) for ps in prompt_sets)
        done = 0
        with torch.inference_mode(), self.autocast():
            runs = []
            for ps in prompt_sets:
                state = new_inference_state(
                    predictor, images, frames.height, frames.width, cache, self.memory
                )
                for p in ps:
                    add_prompt(predictor, state, p)
                runs.append(_Run(predictor, state, ps, (n, len(ps), frames.height, frames.width)))
            for reverse in (False, True):
                if reverse:
                    order = range(max(r.start for r in runs), -1, -1)
                else:
                    order = range(min(r.start for r in runs), n)
                for t in order:
                    for r in runs:
                        if (t <= r.start and r.start > 0) if reverse else t >= r.start:
                            r.step(t, reverse)
                            done += 1
                            if window is not None:
                                r.prune(t, reverse, window)
                    if progress is not None:
                        progress(done, total)
                for r in runs:
                    r.finish_pass()
        for r in runs:
            r.state = None
            yield r.out


def masks_from_logits(logits) -> np.ndarray:
    """SAM2's video-resolution logits [K, 1, H, W] (torch) → masks [K, H, W] bool (> 0)."""
    return (logits[:, 0] > 0).cpu().numpy()


def frames_to_track(num_frames: int, prompts: Sequence[Prompt]) -> int:
    """Tracking steps of one prompt set: forward from its first prompt frame, then reverse."""
    start = min(p.frame for p in prompts) if prompts else 0
    return (num_frames - start) + (start + 1 if start > 0 else 0)


def add_prompt(predictor, state: dict, p: Prompt) -> None:
    """Give one prompt to a SAM2 inference state."""
    if p.mask is not None:
        predictor.add_new_mask(state, frame_idx=p.frame, obj_id=p.obj_id, mask=p.mask)
    elif p.box is not None:
        predictor.add_new_points_or_box(state, frame_idx=p.frame, obj_id=p.obj_id, box=p.box)
    else:
        labels = np.ones(len(p.points), dtype=np.int32)
        predictor.add_new_points_or_box(
            state, frame_idx=p.frame, obj_id=p.obj_id, points=p.points, labels=labels
        )
