"""COCO run-length encodings (``mask_dict.json``), checked before pycocotools decodes them.

pycocotools trusts an RLE: a declared size of 30000 x 30000 allocates 900 MB per frame,
a negative size or count raises OverflowError, and runs that do not add up to H × W
decode garbage read past the end of the counts. So every RLE is checked here first: its
size against the size the caller expects (the prediction's or the video's) or, without
one, against :data:`MAX_RLE_PIXELS`; its runs non-negative and summing to H × W.
"""

from __future__ import annotations

import warnings

import numpy as np
from pycocotools import mask as cocomask

from refine.errors import InputError

RLE = dict
"""A COCO run-length encoding: ``{"size": [H, W], "counts": str | list[int]}``."""

MAX_RLE_PIXELS = 4096 * 4096
"""Largest H × W accepted when no expected size is known (MeViS frames are at most 1080p)."""


def rle_size(rle: object, where: str, expected: tuple[int, int] | None = None) -> tuple[int, int]:
    """(H, W) that ``rle`` declares, checked: two positive integers, equal to ``expected``
    when given, else at most :data:`MAX_RLE_PIXELS` pixels."""
    size = rle.get("size") if isinstance(rle, dict) else None
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise InputError(
            f"{where}: not a valid COCO RLE: 'size' must be two positive integers [H, W], got {size!r}"
        )
    h, w = size
    if expected is not None and (h, w) != tuple(expected):
        raise InputError(
            f"{where}: ground-truth RLE is {h}x{w} (HxW) but the masks are "
            f"{expected[0]}x{expected[1]} (the prediction's size, or the first RLE's); "
            "mask_dict.json and the predictions must be for the same videos"
        )
    if h * w > MAX_RLE_PIXELS:
        raise InputError(
            f"{where}: RLE declares {h}x{w} (HxW), over the limit of {MAX_RLE_PIXELS} pixels"
        )
    return h, w


def string_runs(counts: str, where: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``:
    6-bit chunks offset by 48, 5 value bits and a continuation bit, sign-extended, each
    run after the second stored as a difference from the run two before)."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise InputError(
                    f"{where}: not a valid COCO RLE: 'counts' string ends inside a number"
                )
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise InputError(
                    f"{where}: not a valid COCO RLE: 'counts' has a character {counts[p]!r}"
                )
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def decode_rle(rle: object, where: str, expected: tuple[int, int] | None = None) -> np.ndarray:
    """[H, W] uint8 0/1 from one COCO RLE (compressed string or uncompressed counts list),
    checked as the module says before it is decoded."""
    h, w = rle_size(rle, where, expected)
    counts = rle.get("counts")
    if isinstance(counts, str):
        runs = string_runs(counts, where)
    elif isinstance(counts, list) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in counts
    ):
        runs = counts
    else:
        raise InputError(
            f"{where}: not a valid COCO RLE: 'counts' must be a string or a list of integers"
        )
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise InputError(
            f"{where}: not a valid COCO RLE: runs must be non-negative and add up to H x W = {h * w}; "
            f"they add up to {sum(runs)}"
        )
    if isinstance(counts, list):
        rle = cocomask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    with warnings.catch_warnings():
        # pycocotools 2.0.x under numpy 2 warns about __array__(copy=...) on every
        # decode; harmless, and it would flood the log.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return cocomask.decode({"size": [h, w], "counts": rle["counts"]})
