"""The app's one GPU entry point: SAM2 tracking of one expression.

On Hugging Face Spaces (where the ``spaces`` package is installed) :func:`track_expression`
is wrapped in ``spaces.GPU`` so that ZeroGPU hardware attaches a GPU for the call, for
:func:`gpu_duration` seconds; elsewhere it is a plain function. torch and sam2 are imported
only when it first runs (ZeroGPU forbids CUDA at import time). The checkpoint is fetched
before the call (the app's Run resolves it first), so no GPU time goes to a download.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
from collections.abc import Callable

from refine.frames import FrameSource
from refine.inspect import ProgressFn, Tracker, is_out_of_memory
from refine.memory import SAM2_MEMORY, MemoryConfig
from refine.models import ModelSpec
from refine.pipeline import ExpressionResult, RefineParams, refine_expression
from refine.stage1 import ExpressionStage1

# ZeroGPU time asked per call: model build, then both propagation passes over every frame.
GPU_BASE_S = 60
GPU_PER_FRAME_S = 1.0


def track_expression(
    frames: FrameSource,
    exp_id: str,
    exp: ExpressionStage1,
    params: RefineParams,
    spec: ModelSpec,
    progress: ProgressFn,
    memory: MemoryConfig = SAM2_MEMORY,
    cache_mb: float | None = None,
) -> ExpressionResult:
    """Selection, prompts, SAM2 propagation and fusion of one expression with SAM2 ``spec``
    (the predictor is built once per process and spec). ``cache_mb`` bounds the video's
    frame-feature cache (None: refine's default). When SAM2 runs out of memory,
    the device's cached blocks are released before the error goes on, so that the next
    run (e.g. with a smaller model) starts from a clean device."""
    from refine.feature_cache import DEFAULT_CACHE_MB
    from refine.propagation import Sam2Propagator

    cache = DEFAULT_CACHE_MB if cache_mb is None else cache_mb
    propagator = Sam2Propagator(spec, cache_mb=cache, memory=memory)
    try:
        return refine_expression(exp_id, exp, frames, propagator, params, progress)
    except (RuntimeError, MemoryError) as err:
        if is_out_of_memory(err):
            release_memory(spec.device)
        raise


def gpu_duration(frames: FrameSource, *args: object, **kwargs: object) -> int:
    """Seconds of GPU that ZeroGPU reserves for one :func:`track_expression` call (same
    arguments): grows with the number of frames."""
    return int(GPU_BASE_S + GPU_PER_FRAME_S * len(frames))


def release_memory(device: str) -> None:
    """Free what a failed run left: garbage, and CUDA's cached blocks on a CUDA device."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


if importlib.util.find_spec("spaces") is not None:  # Hugging Face Spaces only
    import spaces

    track_expression = spaces.GPU(duration=gpu_duration)(track_expression)


def make_tracker(
    propagator_factory: Callable | None = None, cache_mb: float | None = None
) -> Tracker:
    """The tracker the app uses: SAM2 through :func:`track_expression` (with a ``cache_mb``
    feature cache), or, for tests, the propagators that ``propagator_factory(spec)`` returns."""
    if propagator_factory is None:
        return functools.partial(track_expression, cache_mb=cache_mb)

    def track(frames, exp_id, exp, params, spec, progress, memory=SAM2_MEMORY):
        propagator = propagator_factory(spec)  # test propagators track one way
        return refine_expression(exp_id, exp, frames, propagator, params, progress)

    return track


def resolve_device(device: str) -> str:
    """``"auto"`` → the first device that exists (cuda:0, else mps, else cpu); imports torch."""
    if device != "auto":
        return device
    from refine.models import available_devices

    return available_devices()[0]


def device_choices() -> list[str]:
    """Devices that exist here (imports torch): cuda:0 …, mps, cpu."""
    from refine.models import available_devices

    return available_devices()
