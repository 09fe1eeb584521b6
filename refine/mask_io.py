"""Reading and writing single-channel PNG masks (values 0/255), atomically per expression.

One reading rule for every mask refine reads (predictions, ground truth, stage-1 PNG
masks, uploaded zips): the official MeViS evaluation's. It reads a mask with
``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` and its metrics take ``astype(bool)``: a pixel
is foreground when its 8-bit gray value is non-zero. So OpenCV first converts a colour or
palette PNG to gray (an RGB pixel (0, 0, 2) becomes 0) and scales a 16-bit PNG to 8 bits
(a 16-bit mask of 0/1 reads as empty). Scores must match the official ones, so every
reader here follows that rule through :func:`decode_mask_png`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from refine.errors import InputError
from refine.files import read_regular_file, remove_tree
from refine.names import check_name
from refine.out_tree import check_no_links, check_written_by_refine

REWRITE_HINT = "re-write it as a single-channel PNG with values 0/255"


def decode_mask_png(data: bytes, source: str, max_pixels: int | None = None) -> np.ndarray:
    """[H, W] bool mask from the bytes of an image file, read as the official MeViS
    evaluation reads it (8-bit gray through OpenCV, non-zero = object).

    ``source`` names the file in messages. ``max_pixels`` bounds W × H, checked from the
    image header before any pixel is decoded.
    """
    if max_pixels is not None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
            raise InputError(f"{source} is not a readable image ({err}); {REWRITE_HINT}") from err
        if w * h > max_pixels:
            raise InputError(f"{source} is {w}x{h}; at most {max_pixels} pixels per mask")
    gray = None
    if data:
        try:
            gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        except cv2.error:
            gray = None
    if gray is None:
        raise InputError(
            f"{source}: cannot read this file as an image (corrupt, empty or not a PNG); "
            f"{REWRITE_HINT}"
        )
    return gray > 0


def read_mask_png(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """[H, W] bool mask from a PNG file (the rule of :func:`decode_mask_png`); ``size``
    (H, W) is checked. Only regular files are read (a FIFO would block)."""
    mask = decode_mask_png(read_regular_file(path, "mask file"), path)
    if size is not None and mask.shape != tuple(size):
        raise InputError(
            f"{path}: mask is {mask.shape[0]}x{mask.shape[1]}, expected {size[0]}x{size[1]}"
        )
    return mask


def encode_mask_png(mask: np.ndarray) -> bytes:
    """An [H, W] bool mask as the bytes of an 8-bit single-channel PNG, values 0/255 (the
    output format of design §2 step 7; every writer of mask PNGs uses this)."""
    buf = io.BytesIO()
    Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)), mode="L").save(buf, "PNG")
    return buf.getvalue()


def write_mask_png(path: str, mask: np.ndarray) -> None:
    """Write an [H, W] bool mask as an 8-bit PNG with values 0/255."""
    with open(path, "wb") as f:
        f.write(encode_mask_png(mask))


def write_expression_masks(
    out_dir: str, video: str, exp_id: str, frame_names: Sequence[str], masks: np.ndarray
) -> str:
    """Write ``masks`` [T, H, W] bool to ``out_dir/video/exp_id/<frame>.png`` atomically.

    The PNGs go to a temporary sibling folder that is renamed into place when all are
    written, so the folder either holds every frame or does not exist. Returns its path.
    A symbolic link on the way, or an existing folder holding anything but PNG files,
    is an InputError (see :mod:`refine.out_tree`).
    """
    check_name(video, "video", out_dir)
    check_name(exp_id, "exp_id", out_dir)
    if len(frame_names) != len(masks):
        raise ValueError(f"{len(frame_names)} frame names for {len(masks)} masks")
    video_dir = os.path.join(out_dir, video)
    final = check_no_links(out_dir, os.path.join(video_dir, exp_id))
    if os.path.isdir(final):
        check_written_by_refine(final)
    os.makedirs(video_dir, exist_ok=True)
    for stale in os.listdir(video_dir):  # left by a run that was killed mid-write
        if stale.startswith((f".{exp_id}.tmp-", f".{exp_id}.old-")):
            remove_tree(os.path.join(video_dir, stale), "unfinished output folder")
    tmp = os.path.join(video_dir, f".{exp_id}.tmp-{os.getpid()}")
    os.makedirs(tmp)
    for name, mask in zip(frame_names, masks, strict=False):
        write_mask_png(os.path.join(tmp, f"{check_name(name, 'frame', out_dir)}.png"), mask)
    _fsync_dir(tmp)
    if os.path.isdir(final):
        old = os.path.join(video_dir, f".{exp_id}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        remove_tree(old, "replaced output folder")
    else:
        os.replace(tmp, final)
    _fsync_dir(video_dir)
    return final


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
