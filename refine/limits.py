"""Bounds on what an uploaded file may cost, in one place.

:class:`UploadLimits` is the one source of truth for the upload readers
(:mod:`refine.video_io`, :func:`refine.inspect.case_from_upload`) and for the app's
``--max-upload-mb``, ``--max-frames``, ``--max-pixels`` and ``--max-duration`` flags.
Every bound is checked before the expensive step it protects: file sizes before a file is
opened, a video's duration and frame size from ffmpeg's header before frames are decoded,
zip directories before any entry is read, image headers before pixels are decoded.

The defaults suit a public demo (e.g. a Hugging Face Space with 16 GB of RAM shared by a
few users): clips of up to a couple of minutes, 600 frames and 1080p.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields

from refine.errors import InputError

MB = 2**20

Reserve = Callable[[int, str], None]
"""``reserve(nbytes, what)`` is called by a reader before ``nbytes`` more are kept in
memory (e.g. :meth:`refine.inspect.budget.Charge.grow`, which raises when they don't fit)."""


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: "812 bytes", "22.5 KiB", "200.0 MiB", "2.0 GiB"."""
    for unit, size in (("GiB", 2**30), ("MiB", MB), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} bytes"


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on one upload.

    max_upload_bytes: size of each uploaded file on disk;
    max_frames: frames of a video (file or zip of frames) and of a mask zip;
    max_frame_pixels: width × height of each frame or mask;
    max_duration_s: a video file's duration as ffmpeg's header states it (and as decoded);
    max_decoded_bytes: RGB bytes of all decoded frames together;
    max_zip_entries: entries of a zip (masks: frames × expressions);
    max_unpacked_bytes: total uncompressed size of a zip or a stage-1 npz;
    max_zip_ratio: compression ratio of any zip or npz entry over 1 MiB (zip bombs);
    max_queries: candidate objects (queries) per expression of an uploaded stage-1 npz; with
        the frames and the frame size they bound the stage-1 work (frames × queries × pixels
        ≤ max_decoded_bytes) before any mask is upsampled.
    """

    max_upload_bytes: int = 200 * MB
    max_frames: int = 600
    max_frame_pixels: int = 1920 * 1080
    max_duration_s: float = 120.0
    max_decoded_bytes: int = 2048 * MB
    max_zip_entries: int = 20_000
    max_unpacked_bytes: int = 2048 * MB
    max_zip_ratio: float = 200.0
    max_queries: int = 50

    def check_stage1_work(
        self, exp_id: str, frames: int, queries: int, size: tuple[int, int], source: str
    ) -> None:
        """InputError when an expression's stage-1 masks would cost more than these limits
        once upsampled to the video size: more than :attr:`max_queries` queries, or frames ×
        queries × H × W over :attr:`max_decoded_bytes`."""
        if queries > self.max_queries:
            raise InputError(
                f"{source}: expression {exp_id!r} has {queries} queries; at most "
                f"{self.max_queries} per expression are accepted (keep the model's top queries)"
            )
        self.check_mask_bytes(
            f"{source}: expression {exp_id!r} has", queries, "queries", frames, size
        )

    def check_mask_bytes(
        self,
        source: str,
        count: int,
        noun: str,
        frames: int,
        size: tuple[int, int],
        bytes_per_pixel: int = 1,
    ) -> None:
        """InputError when ``count`` ``noun`` (expressions, queries) × ``frames`` masks of
        ``size`` (H, W) take more than :attr:`max_decoded_bytes` at ``bytes_per_pixel``
        (1: bool arrays; 3: bool masks and their float16 logits). ``source`` begins the
        message."""
        total = count * frames * size[0] * size[1] * bytes_per_pixel
        if total > self.max_decoded_bytes:
            raise InputError(
                f"{source} {count} {noun} x {frames} masks of {size[1]}x{size[0]}: "
                f"{format_bytes(total)} decoded, over the limit of "
                f"{format_bytes(self.max_decoded_bytes)}; upload fewer {noun} or a shorter clip"
            )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(
                    f"upload limit {f.name} = {value!r} must be a positive number; "
                    "raise it rather than turning it off"
                )

    def check_file_size(self, path: str, what: str = "upload") -> None:
        """InputError when the file at ``path`` is larger than :attr:`max_upload_bytes`
        (or does not exist); reads nothing but its size."""
        name = os.path.basename(path)
        try:
            size = os.path.getsize(path)
        except OSError as err:
            raise InputError(f"{name}: cannot read the {what} ({err.strerror})") from err
        if size > self.max_upload_bytes:
            raise InputError(
                f"{name}: the {what} is {format_bytes(size)}, over the limit of "
                f"{format_bytes(self.max_upload_bytes)} per file; upload a shorter or smaller "
                "file"
            )


DEFAULT_LIMITS = UploadLimits()
