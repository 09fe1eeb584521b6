"""Command-line and environment settings of the app (no Gradio, no torch)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from refine.errors import InputError
from refine.feature_cache import DEFAULT_CACHE_MB
from refine.inspect.budget import MemoryBudget
from refine.inspect.work_limits import WorkLimits
from refine.limits import DEFAULT_LIMITS, MB, UploadLimits
from refine.models import MODEL_SIZES, resolve_checkpoint

IMAGE_SIZE_ENV = "REFINE_APP_IMAGE_SIZE"
GB = 2**30
DEFAULT_MEMORY_GB = 8.0  # of a Space's 16 GB: the rest is the model, Gradio and Python
DEFAULT_GPU_MEMORY_GB = 8.0
DEFAULT_IDLE_MINUTES = 20.0
EXAMPLES_ROOT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "data"
)


@dataclass(frozen=True)
class AppConfig:
    """How the app is served and what it offers.

    image_size: SAM2 input size override (a multiple of 32; small values make CPU runs fast,
    for tests); random_weights: the weights choice the page opens with;
    fake_sam2: replace SAM2 by refine.testing.StaticPropagator (UI tests: each object's mask
    is its prompt on every frame); propagator_factory: ModelSpec → propagator, replacing SAM2
    (tests); None uses SAM2 (or the fake with ``fake_sam2``); limits: what an upload may
    cost (file size, frames, pixels, duration, zips), also given to Gradio as its
    ``max_file_size``; max_memory_gb / max_gpu_memory_gb: what all sessions together may
    hold in RAM (cases, runs, CPU feature caches) and in GPU memory (feature caches);
    idle_minutes: a session unused this long gives its memory back;
    work: what one request may ask of SAM2 (expressions per ranking, frames ×
    objects per run).
    """

    host: str = "127.0.0.1"
    port: int | None = None
    mevis_root: str | None = None
    stage1_dir: str | None = None
    examples_root: str = EXAMPLES_ROOT
    model_size: str | None = None
    random_weights: bool = False
    image_size: int | None = None
    concurrency: int = 1
    cache_mb: float = DEFAULT_CACHE_MB
    fake_sam2: bool = False
    propagator_factory: Callable | None = None
    limits: UploadLimits = field(default_factory=UploadLimits)
    max_memory_gb: float = DEFAULT_MEMORY_GB
    max_gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB
    idle_minutes: float = DEFAULT_IDLE_MINUTES
    work: WorkLimits = field(default_factory=WorkLimits)

    def __post_init__(self) -> None:
        if self.model_size is not None and self.model_size not in MODEL_SIZES:
            raise InputError(f"--model-size {self.model_size!r} is not one of {list(MODEL_SIZES)}")
        if self.image_size is not None and (self.image_size <= 0 or self.image_size % 32):
            raise InputError(
                f"SAM2 image size {self.image_size} (--image-size or ${IMAGE_SIZE_ENV}) must be "
                "a positive multiple of 32"
            )
        if self.concurrency < 1:
            raise InputError(f"--concurrency must be at least 1, got {self.concurrency}")
        for flag, value in (
            ("--max-memory-gb", self.max_memory_gb),
            ("--max-gpu-memory-gb", self.max_gpu_memory_gb),
            ("--idle-minutes", self.idle_minutes),
        ):
            if not value > 0:
                raise InputError(f"{flag} must be positive, got {value:g}")
        if self.cache_mb < 0:
            raise InputError(f"--cache-mb must be ≥ 0, got {self.cache_mb:g}")
        if self.mevis_root is not None and not os.path.isdir(self.mevis_root):
            raise InputError(f"--mevis-root {self.mevis_root}: folder does not exist")
        if self.stage1_dir is not None and self.mevis_root is None:
            raise InputError("--stage1-dir needs --mevis-root (the data set it belongs to)")

    def budget(self) -> MemoryBudget:
        """The process-wide memory budget of these settings."""
        return MemoryBudget(
            round(self.max_memory_gb * GB),
            round(self.max_gpu_memory_gb * GB),
            idle_s=self.idle_minutes * 60,
        )

    def start_size(self) -> str:
        """The SAM2 size the page opens with: --model-size, else tiny with random weights
        or the fake SAM2, else the largest size whose checkpoint is on disk (no download
        is tried), else tiny."""
        if self.model_size is not None:
            return self.model_size
        fast = next(iter(MODEL_SIZES))
        if self.random_weights or self.fake_sam2:
            return fast
        for size in reversed(list(MODEL_SIZES)):
            try:
                resolve_checkpoint(size, allow_download=False)
            except InputError:
                continue
            return size
        return fast

    @property
    def dataset_stage1_dir(self) -> str | None:
        """Stage-1 folder of the data set: --stage1-dir, else <mevis-root>/stage1."""
        if self.mevis_root is None:
            return None
        return self.stage1_dir or os.path.join(self.mevis_root, "stage1")


def _image_size_from_env() -> int | None:
    raw = os.environ.get(IMAGE_SIZE_ENV, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"${IMAGE_SIZE_ENV}={raw!r} is not an integer") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python app.py",
        description="Inspect SAM2 enhancement and conditional fusion of RVOS results.",
    )
    p.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to serve on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: $GRADIO_SERVER_PORT, else 7860 or the next free one)",
    )
    p.add_argument("--mevis-root", metavar="DIR", help="MeViS-layout data set to browse")
    p.add_argument(
        "--stage1-dir", metavar="DIR", help="stage-1 results of that data set (default DIR/stage1)"
    )
    p.add_argument(
        "--model-size",
        default=None,
        choices=list(MODEL_SIZES),
        help="SAM2.1 size selected at start (default: tiny with --random-weights or without "
        "a checkpoint on disk, else the largest size whose checkpoint is there)",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="select untrained SAM2 at start (masks are meaningless; for trying the software)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="N",
        help=f"SAM2 input size, a multiple of 32 (default: the model's; also ${IMAGE_SIZE_ENV})",
    )
    p.add_argument(
        "--concurrency", type=int, default=1, help="SAM2 runs at the same time, across users"
    )
    p.add_argument(
        "--cache-mb",
        type=float,
        default=DEFAULT_CACHE_MB,
        metavar="MB",
        help="SAM2 frame-feature cache per video, shared by its expressions "
        f"(default {DEFAULT_CACHE_MB:g}; 0: none)",
    )
    p.add_argument(
        "--max-memory-gb",
        type=float,
        default=DEFAULT_MEMORY_GB,
        metavar="GB",
        help="RAM that all sessions' cases, cached runs and CPU feature caches may hold "
        "together; a new case that does not fit frees the least recently used, else is "
        f"refused as 'server busy' (default {DEFAULT_MEMORY_GB:g})",
    )
    p.add_argument(
        "--max-gpu-memory-gb",
        type=float,
        default=DEFAULT_GPU_MEMORY_GB,
        metavar="GB",
        help=f"GPU memory for SAM2 feature caches of all sessions (default "
        f"{DEFAULT_GPU_MEMORY_GB:g})",
    )
    p.add_argument(
        "--idle-minutes",
        type=float,
        default=DEFAULT_IDLE_MINUTES,
        metavar="MIN",
        help="a session unused this long gives its cases and runs back "
        f"(default {DEFAULT_IDLE_MINUTES:g})",
    )
    work = WorkLimits()
    p.add_argument(
        "--max-rank-expressions",
        type=int,
        default=work.max_rank_expressions,
        metavar="N",
        help=f"most expressions one ranking may run (default {work.max_rank_expressions})",
    )
    p.add_argument(
        "--max-run-work",
        type=int,
        default=work.max_run_work,
        metavar="N",
        help="most frames x tracked objects of one SAM2 run "
        f"(default {work.max_run_work} = 600 frames x 20 objects)",
    )
    for flag, (_, kind, metavar, text, default) in _limit_flags().items():
        p.add_argument(
            flag,
            type=kind,
            default=default,
            metavar=metavar,
            help=f"{text} (default {default:g})"
            if kind is float
            else f"{text} (default {default})",
        )
    p.add_argument(
        "--fake-sam2",
        action="store_true",
        help="UI test mode: no SAM2; each object's mask is its stage-1 prompt on every frame",
    )
    return p


def _limit_flags() -> dict[str, tuple[str, type, str, str, float]]:
    """App flag → (UploadLimits field, type, metavar, help, default in the flag's unit)."""
    d = DEFAULT_LIMITS
    return {
        "--max-upload-mb": (
            "max_upload_bytes",
            float,
            "MB",
            "largest uploaded file, in MB of 2^20 bytes",
            d.max_upload_bytes / MB,
        ),
        "--max-frames": (
            "max_frames",
            int,
            "N",
            "most frames of an uploaded video or zip",
            d.max_frames,
        ),
        "--max-pixels": (
            "max_frame_pixels",
            int,
            "N",
            "most pixels (width x height) per uploaded frame",
            d.max_frame_pixels,
        ),
        "--max-duration": (
            "max_duration_s",
            float,
            "S",
            "longest uploaded video file in seconds",
            d.max_duration_s,
        ),
        "--max-queries": (
            "max_queries",
            int,
            "N",
            "most queries per expression of an uploaded stage-1 npz",
            d.max_queries,
        ),
    }


def limits_from_args(args: argparse.Namespace) -> UploadLimits:
    """UploadLimits from the limit flags (--max-upload-mb, --max-frames, --max-pixels,
    --max-duration, --max-queries); the zip bounds keep their defaults."""
    values = {}
    for flag, (name, _, _, _, _) in _limit_flags().items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if not value > 0:
            raise InputError(f"{flag} {value:g} must be positive; raise it rather than use 0")
        values[name] = round(value * MB) if name == "max_upload_bytes" else value
    return UploadLimits(**values)


def parse_args(argv: Sequence[str] | None = None) -> AppConfig:
    """AppConfig from command-line arguments (and $REFINE_APP_IMAGE_SIZE)."""
    args = build_parser().parse_args(argv)
    return AppConfig(
        host=args.host,
        port=args.port,
        mevis_root=args.mevis_root,
        stage1_dir=args.stage1_dir,
        model_size=args.model_size,
        random_weights=args.random_weights,
        image_size=args.image_size if args.image_size is not None else _image_size_from_env(),
        concurrency=args.concurrency,
        cache_mb=args.cache_mb,
        fake_sam2=args.fake_sam2,
        max_memory_gb=args.max_memory_gb,
        max_gpu_memory_gb=args.max_gpu_memory_gb,
        idle_minutes=args.idle_minutes,
        limits=limits_from_args(args),
        work=_work_from_args(args),
    )


def _work_from_args(args: argparse.Namespace) -> WorkLimits:
    for flag in ("--max-rank-expressions", "--max-run-work"):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value < 1:
            raise InputError(f"{flag} must be at least 1, got {value}")
    return WorkLimits(args.max_rank_expressions, args.max_run_work)
