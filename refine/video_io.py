"""Uploaded files → arrays: video files, zips of frames, zips of PNG masks.

Every reader bounds what an upload can cost before decoding it, with the bounds of one
:class:`~refine.limits.UploadLimits`:

* every file's size is checked before it is opened (``max_upload_bytes``);
* video files (mp4, webm, mov, …) are decoded with imageio-ffmpeg's bundled ffmpeg after
  checking the duration, frame rate and frame size in ffmpeg's header
  (``max_duration_s``, ``max_frames``, ``max_frame_pixels``, ``max_decoded_bytes``); the
  frame count and decoded bytes are bounded again while decoding (headers can lie);
* zips are never extracted to disk. Their entries are checked first (no absolute
  paths, no ``..``, no backslashes or NUL, no symlinks; at most ``max_zip_entries``
  entries, ``max_unpacked_bytes`` uncompressed and a compression ratio of
  ``max_zip_ratio`` for large entries), then only image entries are read, in memory, each
  bounded by its declared size, and decoded with PIL after checking its pixel count.

Anything wrong is an :class:`~refine.errors.InputError` that names the file and entry.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from refine.errors import InputError
from refine.frames import FrameSource
from refine.limits import DEFAULT_LIMITS, Reserve, UploadLimits, format_bytes
from refine.mask_io import decode_mask_png
from refine.names import check_name, exp_id_sort_key, sort_frame_stems
from refine.upload_zip import image_entries, open_zip, read_entry

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".m4v", ".mkv", ".avi")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
MASK_EXTENSIONS = (".png",)


VIDEO_JPEG_QUALITY = 95


@dataclass(frozen=True)
class DecodedVideo:
    """Frames of an uploaded video, held compactly: ``frames`` (a FrameSource of T frames
    of H x W), ``frame_names`` [T] (file stems for a zip of frames, ``00000``… for a video
    file) and ``fps`` (None for frame zips). A zip's frames are kept as the zip's own
    image bytes (decoded exactly as read from files); a video file's frames as JPEG of
    quality :data:`VIDEO_JPEG_QUALITY` (a tenth of the raw size, like MeViS's own frames)."""

    frames: FrameSource
    frame_names: list[str]
    fps: float | None


@dataclass(frozen=True)
class MaskSet:
    """Masks of a zip ``<exp_id>/<frame>.png``: ``masks`` {exp_id: bool [T, H, W]} and the
    frame stems [T] in integer order (the same for every expression)."""

    masks: dict[str, np.ndarray]
    frame_names: list[str]


def is_zip_path(path: str) -> bool:
    """True when ``path`` names a .zip file (by extension)."""
    return os.path.splitext(path)[1].lower() == ".zip"


def read_video(
    path: str, limits: UploadLimits = DEFAULT_LIMITS, reserve: Reserve | None = None
) -> DecodedVideo:
    """A video file or a zip of JPEG/PNG frames, chosen by the file extension; ``reserve``
    is told the bytes kept before they are."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".zip":
        return read_frames_zip(path, limits, reserve)
    if ext in VIDEO_EXTENSIONS:
        return read_video_file(path, limits, reserve)
    raise InputError(
        f"{os.path.basename(path)}: unsupported video upload {ext or '(no extension)'!r}; "
        f"upload a video ({', '.join(VIDEO_EXTENSIONS)}) or a .zip of JPEG/PNG frames"
    )


def read_video_file(
    path: str, limits: UploadLimits = DEFAULT_LIMITS, reserve: Reserve | None = None
) -> DecodedVideo:
    """Decode every frame of a video file with ffmpeg, keeping each as JPEG (one raw frame
    in memory at a time; ``reserve`` is told each JPEG's size before it is kept).

    Frames are named ``00000``, ``00001``, … Raises InputError for unreadable files,
    videos without frames, or videos over ``limits``: the file size, then the duration,
    estimated frame count, frame size and decoded size from ffmpeg's header (before any
    frame is decoded), then the frame count and decoded size again while decoding.
    """
    import imageio_ffmpeg

    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise InputError(f"{name}: video file does not exist")
    limits.check_file_size(path, "video")
    reader = imageio_ffmpeg.read_frames(path)
    try:
        try:
            meta = next(reader)
        except (RuntimeError, OSError, StopIteration) as err:
            raise InputError(f"{name}: ffmpeg cannot read this video ({_short(err)})") from err
        width, height = (int(v) for v in meta["size"])
        fps = float(meta.get("fps") or 0) or None
        _check_video_header(name, width, height, fps, float(meta.get("duration") or 0), limits)
        frame_bytes = width * height * 3
        frames = []
        try:
            for raw in reader:
                n = len(frames) + 1
                if n > limits.max_frames or n * frame_bytes > limits.max_decoded_bytes:
                    raise InputError(
                        f"{name}: video is too long (more than {len(frames)} frames of "
                        f"{width}x{height}; limits: {limits.max_frames} frames, "
                        f"{format_bytes(limits.max_decoded_bytes)} decoded); trim it or lower its "
                        "resolution"
                    )
                if fps is not None and (n - 1) / fps > limits.max_duration_s:
                    raise InputError(
                        f"{name}: video lasts more than {limits.max_duration_s:g} s (frame {n} "
                        f"at {fps:g} fps, although its header says less); trim it"
                    )
                jpeg = _jpeg(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
                if reserve is not None:
                    reserve(len(jpeg), f"frame {n - 1} of {name}")
                frames.append(jpeg)
        except (RuntimeError, OSError, ValueError) as err:
            raise InputError(f"{name}: ffmpeg failed while decoding ({_short(err)})") from err
    finally:
        reader.close()
    if not frames:
        raise InputError(f"{name}: the video has no frames")
    names = [f"{t:05d}" for t in range(len(frames))]
    return DecodedVideo(FrameSource.from_encoded(frames, height, width), names, fps)


def _jpeg(frame: np.ndarray) -> bytes:
    """uint8 [H, W, 3] RGB → JPEG bytes of quality VIDEO_JPEG_QUALITY."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=VIDEO_JPEG_QUALITY)
    return buf.getvalue()


def _check_video_header(
    name: str, width: int, height: int, fps: float | None, duration: float, limits: UploadLimits
) -> None:
    """The checks that ffmpeg's header allows before decoding: duration, estimated frame
    count, frame size and estimated decoded bytes."""
    if duration > limits.max_duration_s:
        raise InputError(
            f"{name}: the video lasts {duration:.1f} s, over the limit of "
            f"{limits.max_duration_s:g} s; trim it to a shorter clip"
        )
    if width <= 0 or height <= 0 or width * height > limits.max_frame_pixels:
        raise InputError(
            f"{name}: frame size {width}x{height} is not supported (at most "
            f"{limits.max_frame_pixels} pixels per frame); resize the video"
        )
    estimate = round(duration * fps) if fps else 0
    if estimate > limits.max_frames:
        raise InputError(
            f"{name}: the video has about {estimate} frames ({duration:.1f} s at {fps:g} fps), "
            f"over the limit of {limits.max_frames}; trim it or lower its frame rate"
        )
    if estimate * width * height * 3 > limits.max_decoded_bytes:
        raise InputError(
            f"{name}: about {estimate} frames of {width}x{height} would take "
            f"{format_bytes(estimate * width * height * 3)} decoded, over the limit of "
            f"{format_bytes(limits.max_decoded_bytes)}; use a shorter or smaller video"
        )


def read_frames_zip(
    path: str, limits: UploadLimits = DEFAULT_LIMITS, reserve: Reserve | None = None
) -> DecodedVideo:
    """Frames from a zip of ``<frame>.jpg``/``.png`` files (at its root or in one folder).

    Stems must be integers (``00000.jpg`` …); frames are ordered by their integer value
    and must all have the first frame's size. Each frame is decoded once to check it, and
    kept as the zip's bytes (``reserve`` is told their total first).
    """
    name = os.path.basename(path)
    with open_zip(path, limits) as zf:
        entries = image_entries(zf, limits, name, FRAME_EXTENSIONS)
        parents = {p.parent for _, p in entries}
        if len(parents) != 1:
            shown = sorted(str(p) for p in parents)[:4]
            raise InputError(
                f"{name}: frames must lie at the zip's root or in one folder, found folders "
                f"{shown}; zip the frame files of one video only"
            )
        by_stem: dict[str, zipfile.ZipInfo] = {}
        for info, p in entries:
            if p.stem in by_stem:
                raise InputError(f"{name}: two frames are named {p.stem!r} (e.g. .jpg and .png)")
            by_stem[p.stem] = info
        stems = sort_frame_stems(by_stem, name)
        if len(stems) > limits.max_frames:
            raise InputError(
                f"{name}: {len(stems)} frames, over the limit of {limits.max_frames}; "
                "upload a shorter clip"
            )
        first, h, w = _read_frame(zf, by_stem[stems[0]], name, limits)
        if len(stems) * h * w * 3 > limits.max_decoded_bytes:
            raise InputError(
                f"{name}: {len(stems)} frames of {w}x{h} exceed "
                f"{format_bytes(limits.max_decoded_bytes)} decoded; use fewer or smaller frames"
            )
        if reserve is not None:
            reserve(sum(by_stem[s].file_size for s in stems), f"the {len(stems)} frames of {name}")
        frames = [first]
        for stem in stems[1:]:
            data, fh, fw = _read_frame(zf, by_stem[stem], name, limits)
            if (fh, fw) != (h, w):
                raise InputError(
                    f"{name}: frame {by_stem[stem].filename!r} is {fw}x{fh} "
                    f"but the first frame is {w}x{h}; all frames must have one size"
                )
            frames.append(data)
    return DecodedVideo(FrameSource.from_encoded(frames, h, w), stems, None)


def read_masks_zip(
    path: str,
    limits: UploadLimits = DEFAULT_LIMITS,
    what: str = "masks",
    reserve: Reserve | None = None,
    bytes_per_pixel: int = 1,
) -> MaskSet:
    """PNG masks ``<exp_id>/<frame>.png`` (optionally all inside one top folder).

    A pixel is foreground when non-zero (any channel). Every expression must have the
    same frames, all of one size. Returns {exp_id: bool [T, H, W]} and the frame stems.
    ``bytes_per_pixel``: what each mask pixel will cost the caller (1 for these bool
    masks; 3 when they become float16 logits beside them), checked against the limits and
    told to ``reserve`` once the mask size is known, before the masks are decoded.
    """
    name = os.path.basename(path)
    with open_zip(path, limits) as zf:
        entries = image_entries(zf, limits, name, MASK_EXTENSIONS)
        depths = {len(p.parts) for _, p in entries}
        tops = {p.parts[0] for _, p in entries}
        if depths == {3} and len(tops) == 1:
            entries = [(i, PurePosixPath(*p.parts[1:])) for i, p in entries]
        elif depths != {2}:
            raise InputError(
                f"{name}: {what} must be laid out as <exp_id>/<frame>.png (optionally inside "
                f"one folder), found e.g. {entries[0][1]!s}"
            )
        per_exp: dict[str, dict[str, zipfile.ZipInfo]] = {}
        for info, p in entries:
            exp_id = check_name(p.parts[0], "exp_id", name)
            frames = per_exp.setdefault(exp_id, {})
            if p.stem in frames:
                raise InputError(
                    f"{name}: {frames[p.stem].filename!r} and {info.filename!r} are the same "
                    "mask; keep one PNG per frame and expression"
                )
            frames[p.stem] = info
        exp_ids = sorted(per_exp, key=exp_id_sort_key)
        stems = sort_frame_stems(per_exp[exp_ids[0]], name)
        if len(stems) > limits.max_frames:
            raise InputError(
                f"{name}: {what} for {len(stems)} frames, over the limit of "
                f"{limits.max_frames}; upload a shorter clip"
            )
        for exp_id in exp_ids[1:]:
            if set(per_exp[exp_id]) != set(stems):
                other = sorted(set(per_exp[exp_id]) ^ set(stems))[:5]
                raise InputError(
                    f"{name}: expression {exp_id!r} and {exp_ids[0]!r} cover different frames "
                    f"(e.g. {other}); every <exp_id>/ folder needs one PNG per frame"
                )
        masks: dict[str, np.ndarray] = {}
        size: tuple[int, int] | None = None
        for exp_id in exp_ids:
            stack = None
            for t, stem in enumerate(stems):
                info = per_exp[exp_id][stem]
                m = _decode_mask(zf, info, name, limits)
                if size is None:
                    size = m.shape
                    limits.check_mask_bytes(
                        f"{name}:", len(exp_ids), "expressions", len(stems), size, bytes_per_pixel
                    )
                    if reserve is not None:
                        total = len(exp_ids) * len(stems) * size[0] * size[1] * bytes_per_pixel
                        reserve(total, f"the {what} of {name}")
                if m.shape != size:
                    raise InputError(
                        f"{name}: {info.filename!r} is {m.shape[1]}x{m.shape[0]} but the first "
                        f"mask is {size[1]}x{size[0]}; masks must have the video's size"
                    )
                if stack is None:
                    stack = np.zeros((len(stems), *size), dtype=bool)
                stack[t] = m
            masks[exp_id] = stack
    return MaskSet(masks, stems)


def _read_frame(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, limits: UploadLimits
) -> tuple[bytes, int, int]:
    """A frame entry's bytes and its (H, W), after decoding it once to check it."""
    data = read_entry(zf, info, source)
    img = _open_image(data, info, source, limits)
    try:
        img.convert("RGB").load()
    except OSError as err:
        raise InputError(f"{source}: {info.filename!r} cannot be decoded ({err})") from err
    return data, img.size[1], img.size[0]


def _open_image(
    data: bytes, info: zipfile.ZipInfo, source: str, limits: UploadLimits
) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise InputError(f"{source}: {info.filename!r} is not a readable image ({err})") from err
    w, h = img.size
    if w * h > limits.max_frame_pixels:
        raise InputError(
            f"{source}: {info.filename!r} is {w}x{h}; at most {limits.max_frame_pixels} pixels "
            "per image"
        )
    return img


def _decode_mask(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, limits: UploadLimits
) -> np.ndarray:
    data = read_entry(zf, info, source)
    return decode_mask_png(data, f"{source}: {info.filename!r}", limits.max_frame_pixels)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1][:200] if text else type(err).__name__
