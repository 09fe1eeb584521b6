"""Propagators: prompts on a video → per-object masks on every frame (DESIGN §2 step 5).

:class:`Sam2Propagator` runs SAM2; tests use fakes with the same ``track`` method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np

from refine.errors import InputError
from refine.feature_cache import FeatureCache
from refine.frames import FrameSource
from refine.models import ModelSpec, get_predictor
from refine.prompts import Prompt

ProgressFn = Callable[[int, int], None]
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class Propagator(Protocol):
    """Anything that turns prompt sets into masks."""

    def track(
        self,
        frames: FrameSource,
        prompt_sets: Sequence[Sequence[Prompt]],
        progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        """For each prompt set (one expression, K ≥ 1 prompts, obj_id = 0..K-1), yield its
        masks [T, K, H, W] bool, in the order of ``prompt_sets``."""
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


class Sam2Propagator:
    """SAM2 video propagation, one inference state per expression holding all its objects.

    Frame features are kept in a :class:`FeatureCache` held by the video's FrameSource
    (one per model) and reused by every expression and both directions
    (``cache_mb=None``: unbounded; 0: SAM2's own one-frame cache only).
    """

    def __init__(
        self,
        spec: ModelSpec,
        precision: str = "auto",
        cache_mb: float | None = None,
        offload_cache: bool = False,
    ) -> None:
        self.spec = spec
        self.precision = resolve_precision(precision, spec.device)
        self.cache_mb = cache_mb
        self.offload_cache = offload_cache
        self.last_cache: FeatureCache | None = None

    @property
    def predictor(self):
        return get_predictor(self.spec)

    @property
    def encoder_calls(self) -> int:
        """Image-encoder calls made by this process's predictor so far."""
        return self.predictor.refine_encoder_calls

    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.spec.device.split(":")[0], dtype=dtype)

    def track(
        self,
        frames: FrameSource,
        prompt_sets: Sequence[Sequence[Prompt]],
        progress: ProgressFn | None = None,
    ) -> Iterator[np.ndarray]:
        import torch

        from refine.sam2_patches import new_inference_state

        predictor = self.predictor
        cache = frames.caches.get(self.spec)
        if cache is None:
            cache = FeatureCache(self.cache_mb, self.offload_cache, self.spec.device)
            frames.caches[self.spec] = cache
        self.last_cache = cache
        images = frames.bind(predictor.image_size)
        total = sum(_frames_to_track(len(frames), ps) for ps in prompt_sets)
        done = 0
        for prompts in prompt_sets:
            if not prompts:
                raise ValueError("a prompt set needs at least one prompt")
            state = new_inference_state(predictor, images, frames.height, frames.width, cache)
            out = np.zeros((len(frames), len(prompts), frames.height, frames.width), dtype=bool)
            with torch.inference_mode(), self._autocast():
                for p in prompts:
                    _add_prompt(predictor, state, p)
                start = min(p.frame for p in prompts)
                for reverse in (False, True):
                    for t, _, logits in predictor.propagate_in_video(
                        state, start_frame_idx=start, reverse=reverse
                    ):
                        out[t] = (logits[:, 0] > 0).cpu().numpy()
                        done += 1
                        if progress is not None:
                            progress(done, total)
            del state
            yield out


def _frames_to_track(num_frames: int, prompts: Sequence[Prompt]) -> int:
    start = min(p.frame for p in prompts) if prompts else 0
    return (num_frames - start) + (start + 1 if start > 0 else 0)


def _add_prompt(predictor, state: dict, p: Prompt) -> None:
    if p.mask is not None:
        predictor.add_new_mask(state, frame_idx=p.frame, obj_id=p.obj_id, mask=p.mask)
    elif p.box is not None:
        predictor.add_new_points_or_box(state, frame_idx=p.frame, obj_id=p.obj_id, box=p.box)
    else:
        labels = np.ones(len(p.points), dtype=np.int32)
        predictor.add_new_points_or_box(
            state, frame_idx=p.frame, obj_id=p.obj_id, points=p.points, labels=labels
        )
