"""Reading and writing single-channel PNG masks (values 0/255), atomically per expression."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from refine.errors import InputError
from refine.names import check_name


def read_mask_png(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """[H, W] bool mask from a PNG (non-zero = object); ``size`` (H, W) is checked."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: mask file is missing")
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{path}: unreadable PNG ({err})") from err
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    if size is not None and arr.shape != tuple(size):
        raise InputError(
            f"{path}: mask is {arr.shape[0]}x{arr.shape[1]}, expected {size[0]}x{size[1]}"
        )
    return arr > 0


def write_mask_png(path: str, mask: np.ndarray) -> None:
    """Write an [H, W] bool mask as an 8-bit PNG with values 0/255."""
    Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)), mode="L").save(path)


def write_expression_masks(
    out_dir: str, video: str, exp_id: str, frame_names: Sequence[str], masks: np.ndarray
) -> str:
    """Write ``masks`` [T, H, W] bool to ``out_dir/video/exp_id/<frame>.png`` atomically.

    The PNGs go to a temporary sibling folder that is renamed into place when all are
    written, so the folder either holds every frame or does not exist. Returns its path.
    """
    check_name(video, "video", out_dir)
    check_name(exp_id, "exp_id", out_dir)
    if len(frame_names) != len(masks):
        raise ValueError(f"{len(frame_names)} frame names for {len(masks)} masks")
    video_dir = os.path.join(out_dir, video)
    os.makedirs(video_dir, exist_ok=True)
    final = os.path.join(video_dir, exp_id)
    for stale in os.listdir(video_dir):  # left by a run that was killed mid-write
        if stale.startswith((f".{exp_id}.tmp-", f".{exp_id}.old-")):
            shutil.rmtree(os.path.join(video_dir, stale))
    tmp = os.path.join(video_dir, f".{exp_id}.tmp-{os.getpid()}")
    os.makedirs(tmp)
    for name, mask in zip(frame_names, masks, strict=False):
        write_mask_png(os.path.join(tmp, f"{check_name(name, 'frame', out_dir)}.png"), mask)
    _fsync_dir(tmp)
    if os.path.isdir(final):
        old = os.path.join(video_dir, f".{exp_id}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(video_dir)
    return final


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
