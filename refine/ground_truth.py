"""Ground-truth and prediction masks for evaluation (MeViS layout).

What the official evaluation does (``henghuiding/MeViS`` ``tools/eval_mevis.py``,
commit 7869f22), and what this module reproduces:

- Expressions: every ``exp_id`` of every video in ``meta_expressions.json``
  (``videos[video]["expressions"][exp_id]["anno_id"]`` is a list of object
  annotation ids), over the frames ``videos[video]["frames"]``, in that order.
  An expression without ``anno_id`` is not scored (:attr:`Expression.scored`).
- Ground truth from ``mask_dict.json``: ``mask_dict[str(anno_id)]`` is a list
  with one entry per frame (index = position in ``frames``); an entry is a COCO
  RLE (``{"size": [H, W], "counts": str}``) or ``None`` when the object is
  absent, and falsy entries are skipped. The expression's mask on a frame is
  ``sum of cocomask.decode(rle)`` over its anno_ids in a uint8 array, which the
  metrics then read with ``astype(bool)``: i.e. the union of the objects.
- Predictions: ``cv2.imread(f"{pred}/{video}/{exp_id}/{frame}.png",
  cv2.IMREAD_GRAYSCALE)``, then ``astype(bool)`` inside the metrics: a pixel is
  foreground when its 8-bit gray value is nonzero. (So a colour or palette PNG is
  first converted to gray by OpenCV, and a 16-bit PNG is scaled to 8 bits: a
  16-bit mask of 0/1 reads as empty. Every reader in refine reads PNGs this way:
  :func:`refine.mask_io.decode_mask_png`.)
- Differences, on purpose: the official script scores a whole missing video
  folder as J = F = 0 and crashes on a missing frame; here any missing
  prediction is an InputError listing what is missing, unless ``allow_missing``,
  in which case a missing frame counts as an empty mask (so a frame whose ground
  truth is empty too scores J = F = 1). Size mismatches and unreadable files are
  InputErrors naming the file.

PNG ground truth (``<gt>/<video>/<exp_id>/<frame>.png``, the output layout) is
binarised like predictions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from refine.dataset import load_meta_expressions
from refine.errors import InputError
from refine.files import load_json
from refine.mask_io import read_mask_png
from refine.names import check_name
from refine.rle import RLE, decode_rle, rle_size

__all__ = [
    "Expression",
    "check_predictions_complete",
    "expression_gt_from_mask_dict",
    "expression_gt_from_pngs",
    "find_missing_pngs",
    "gt_shape",
    "list_gt_videos",
    "load_expressions",
    "load_mask_dict",
    "read_predictions",
    "rles_for_expression",
]

MAX_LISTED = 5
"""How many missing items an error message names before giving a count."""


@dataclass(frozen=True)
class Expression:
    """One expression to evaluate.

    Attributes:
        video: video name (a plain file name).
        exp_id: expression id (a plain file name).
        frames: frame stems, in the order of ``meta_expressions.json`` [T].
        anno_ids: object annotation ids (keys of ``mask_dict.json``), as strings;
            None when the expression has no ``anno_id`` entry (see :attr:`scored`).
    """

    video: str
    exp_id: str
    frames: tuple[str, ...]
    anno_ids: tuple[str, ...] | None

    @property
    def scored(self) -> bool:
        """Whether the expression is scored: the one rule for an expression without
        ``anno_id``, used by ``refine evaluate``, ``run --eval`` and the app.

        The official script reads ``expressions[exp]["anno_id"]`` in a worker process:
        without the key it raises KeyError, that worker dies and the expression is
        missing from its means, so it is not scored (refine says which it left out). An
        empty list is scored against empty ground truth on every frame.
        """
        return self.anno_ids is not None

    @property
    def key(self) -> str:
        """``"<video>/<exp_id>"``, the key used in reports."""
        return f"{self.video}/{self.exp_id}"


def load_expressions(path: str) -> list[Expression]:
    """All expressions of a ``meta_expressions.json``, videos and ids in file order (parsed
    by :func:`refine.dataset.load_meta_expressions`).

    Raises:
        InputError: the file is missing or malformed, a video lists no frames, or a
            video, exp_id or frame name is not a plain file name.
    """
    out: list[Expression] = []
    for video, vmeta in load_meta_expressions(path).items():
        if vmeta.frames is None:
            raise InputError(
                f"{path}: video {video!r}: 'frames' must be a non-empty list of frame names"
            )
        for exp_id, e in vmeta.expressions.items():
            out.append(Expression(video, exp_id, vmeta.frames, e.anno_ids))
    return out


def load_mask_dict(path: str) -> dict[str, list]:
    """``mask_dict.json``: anno_id (string) -> per-frame list of RLE or None.

    Raises:
        InputError: missing or not a JSON object.
    """
    data = load_json(path, "mask_dict.json")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object mapping anno_id to per-frame RLE lists")
    return data


def rles_for_expression(
    mask_dict: dict[str, list], expr: Expression, source: str = "mask_dict.json"
) -> list[list[RLE | None]]:
    """The per-frame RLEs of each of ``expr``'s objects: [n_objects][T].

    An expression with an empty ``anno_id`` list gives one object absent on every frame
    (empty ground truth, as the official code scores it).

    Raises:
        InputError: the expression is not scored (no ``anno_id``), an anno_id is not in
            the mask dict, or its list does not have one entry per frame.
    """
    if expr.anno_ids is None:
        raise InputError(
            f"{expr.key}: the expression has no 'anno_id' in meta_expressions.json, so it has "
            "no ground truth; use a labelled split (or --gt with PNG ground truth)"
        )
    if not expr.anno_ids:
        return [[None] * len(expr.frames)]
    out = []
    for anno in expr.anno_ids:
        if anno not in mask_dict:
            raise InputError(f"{source}: anno_id {anno!r} of {expr.key} is missing")
        rles = mask_dict[anno]
        if not isinstance(rles, list) or len(rles) != len(expr.frames):
            n = len(rles) if isinstance(rles, list) else type(rles).__name__
            raise InputError(
                f"{source}: anno_id {anno!r} of {expr.key} has {n} entries but the video has "
                f"{len(expr.frames)} frames; mask_dict.json and meta_expressions.json must "
                "come from the same split"
            )
        out.append(rles)
    return out


def expression_gt_from_mask_dict(
    rles: Sequence[Sequence[RLE | None]],
    key: str = "expression",
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Union over objects of their decoded RLEs, per frame.

    Args:
        rles: [n_objects][T] RLE or a falsy value (None) where the object is absent.
        key: expression name for error messages.
        shape: the expected (H, W) (the prediction's or the video's): every RLE must
            declare it, checked before anything is decoded. Without it the first RLE's
            size is expected of the others, and an all-empty ground truth is 1 x 1 (it
            scores the same whatever its size against an empty prediction).

    Returns:
        bool [T, H, W].

    Raises:
        InputError: an RLE is malformed (see :mod:`refine.rle`) or not the expected size.
    """
    n_frames = len(rles[0]) if rles else 0
    gt = None if shape is None else np.zeros((n_frames, *shape), dtype=bool)
    for obj, per_frame in enumerate(rles):
        for t, rle in enumerate(per_frame):
            if not rle:  # the official code skips falsy entries (None where absent)
                continue
            where = f"{key}: object {obj}, frame {t}"
            mask = decode_rle(rle, where, None if gt is None else gt.shape[1:])
            if gt is None:
                gt = np.zeros((n_frames, *mask.shape), dtype=bool)
            np.logical_or(gt[t], mask, out=gt[t])
    if gt is None:
        gt = np.zeros((n_frames, 1, 1), dtype=bool)
    return gt


def gt_shape(
    rles: Sequence[Sequence[RLE | None]], key: str = "expression"
) -> tuple[int, int] | None:
    """(H, W) that the first non-empty RLE declares (checked by :func:`refine.rle.rle_size`),
    or None if all are empty."""
    for obj, per_frame in enumerate(rles):
        for t, rle in enumerate(per_frame):
            if rle:
                return rle_size(rle, f"{key}: object {obj}, frame {t}")
    return None


def read_predictions(
    folder: str,
    frames: Sequence[str],
    shape: tuple[int, int],
    allow_missing: bool = False,
    what: str = "prediction",
) -> np.ndarray:
    """``<folder>/<frame>.png`` for each frame, as bool [T, H, W].

    Args:
        folder: the expression's folder, e.g. ``<pred>/<video>/<exp_id>``.
        frames: frame stems [T].
        shape: expected (H, W), the ground truth's size.
        allow_missing: a missing file (or folder) gives an empty mask instead of
            an error.
        what: "prediction" or "ground truth", for messages.

    Raises:
        InputError: files are missing (listed), unreadable, or not H x W.
    """
    out = np.zeros((len(frames), *shape), dtype=bool)
    missing = []
    for t, frame in enumerate(frames):
        path = os.path.join(folder, f"{frame}.png")
        if not os.path.isfile(path):
            missing.append(path)
            continue
        mask = read_mask_png(path)
        if mask.shape != tuple(shape):
            raise InputError(
                f"{path}: {what} is {mask.shape[0]}x{mask.shape[1]} (HxW) but the ground truth "
                f"is {shape[0]}x{shape[1]}; masks must have the video's size"
            )
        out[t] = mask
    if missing and not allow_missing:
        hint = "--allow-missing" if what == "prediction" else None
        raise InputError(_missing_message(missing, what, hint))
    return out


def _missing_message(missing: Sequence[str], what: str, hint: str | None) -> str:
    shown = ", ".join(missing[:MAX_LISTED])
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    msg = f"{len(missing)} {what} file(s)/folder(s) missing: {shown}{more}"
    if hint:
        msg += f"; write them, or pass {hint} to count them as empty masks"
    return msg


def find_missing_pngs(root: str, expressions: Iterable[Expression]) -> list[str]:
    """Paths of ``<root>/<video>/<exp_id>/<frame>.png`` that do not exist.

    A missing expression folder is reported once, as the folder (with a trailing
    separator and its frame count), not frame by frame. Lists each folder once.
    """
    missing: list[str] = []
    for expr in expressions:
        folder = os.path.join(root, expr.video, expr.exp_id)
        try:
            present = set(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            missing.append(f"{folder}{os.sep} (all {len(expr.frames)} frames)")
            continue
        missing.extend(
            os.path.join(folder, f"{f}.png") for f in expr.frames if f"{f}.png" not in present
        )
    return missing


def check_predictions_complete(pred: str, expressions: Sequence[Expression]) -> None:
    """Raise InputError listing the first missing predicted PNGs and their count."""
    missing = find_missing_pngs(pred, expressions)
    if missing:
        raise InputError(_missing_message(missing, "prediction", "--allow-missing"))


def list_gt_videos(gt_dir: str) -> list[str]:
    """Video folders of a PNG ground-truth folder ``<gt>/<video>/<exp_id>/<frame>.png``.

    Raises:
        InputError: the folder does not exist or a video name is not a plain name.
    """
    if not os.path.isdir(gt_dir):
        raise InputError(f"{gt_dir}: ground-truth folder does not exist")
    names = sorted(e.name for e in os.scandir(gt_dir) if e.is_dir())
    return [check_name(n, "video", gt_dir) for n in names]


def expression_gt_from_pngs(gt_dir: str, expr: Expression) -> np.ndarray:
    """Ground truth of ``expr`` from ``<gt_dir>/<video>/<exp_id>/<frame>.png``.

    Returns:
        bool [T, H, W], the size of the first frame's PNG.

    Raises:
        InputError: a ground-truth PNG is missing (listed), unreadable, or not the
            size of the first one.
    """
    folder = os.path.join(gt_dir, expr.video, expr.exp_id)
    first = os.path.join(folder, f"{expr.frames[0]}.png")
    if not os.path.isfile(first):
        missing = find_missing_pngs(gt_dir, [expr])
        raise InputError(_missing_message(missing, "ground truth", None))
    shape = read_mask_png(first).shape
    return read_predictions(folder, expr.frames, shape, allow_missing=False, what="ground truth")


@functools.lru_cache(maxsize=2)
def _mask_dict(path: str, mtime: float) -> dict:
    return load_mask_dict(path)


@functools.lru_cache(maxsize=4)
def _meta_expressions(path: str, mtime: float) -> dict:
    return {(e.video, e.exp_id): e for e in load_expressions(path)}


class VideoGroundTruth:
    """Ground truth of one video's expressions from ``mask_dict.json`` (parsed once per
    process and file version): ``gt(exp_id)`` → bool [T, H, W], or None for an
    expression that is not scored (:attr:`Expression.scored`). ``size`` (H, W) is used when
    every frame is empty."""

    def __init__(self, root: str, video: str, size: tuple[int, int]) -> None:
        self.meta_path = os.path.join(root, "meta_expressions.json")
        self.mask_path = os.path.join(root, "mask_dict.json")
        self.video = video
        self.size = size

    def __call__(self, exp_id: str) -> np.ndarray | None:
        meta = _meta_expressions(self.meta_path, os.path.getmtime(self.meta_path))
        expr = meta.get((self.video, exp_id))
        if expr is None or not expr.scored:
            return None
        masks = _mask_dict(self.mask_path, os.path.getmtime(self.mask_path))
        rles = rles_for_expression(masks, expr, self.mask_path)
        return expression_gt_from_mask_dict(rles, expr.key, self.size)
