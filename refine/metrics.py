"""Region (J) and boundary (F) metrics, numerically identical to the MeViS evaluation.

What the official code does (sources read for this module):

- ``henghuiding/MeViS`` ``tools/eval_mevis.py`` (commit 7869f22) evaluates every
  expression of ``meta_expressions.json``: it builds ``gt_masks`` and ``pred_masks``
  as uint8 arrays [T,H,W], calls ``db_eval_iou(gt_masks, pred_masks).mean()`` and
  ``db_eval_boundary(gt_masks, pred_masks).mean()`` per expression (mean over
  frames), then prints ``np.mean`` over expressions of J and of F, and
  ``J&F = (mean J + mean F) / 2`` (fractions; papers report them x100).
- ``tools/metrics.py`` of the MeViS code (read as the copy in the fork
  ``leminhhuan72/MeViS`` commit 0e9d745, which differs from
  ``davisvideochallenge/davis2017-evaluation`` ``davis2017/metrics.py`` commit
  30b698a only by ``np.bool`` -> ``bool`` and a guarded division):

  * ``db_eval_iou``: both masks ``astype(bool)`` (nonzero = foreground);
    ``J = |gt & pred| / |gt | pred|`` over the last two axes, and 1 where the
    union is 0 (both empty).
  * ``db_eval_boundary`` loops over frames calling
    ``f_measure(foreground_mask=pred, gt_mask=gt, bound_th=0.008)``:
    ``bound_pix = bound_th if bound_th >= 1 else
    np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))`` (the frame's
    (H, W) diagonal; 8 px at 480x854), boundaries by ``_seg2bmap``, each dilated
    with ``cv2.dilate(b.astype(uint8), skimage.morphology.disk(bound_pix))``,
    ``precision = sum(fg_boundary * gt_dil) / n_fg``,
    ``recall = sum(gt_boundary * fg_dil) / n_gt``; when boundaries are empty:
    n_fg = 0 & n_gt > 0 -> P=1, R=0; n_fg > 0 & n_gt = 0 -> P=0, R=1; both 0 ->
    P=R=1; ``F = 2*P*R/(P+R)``, 0 when P+R = 0.
  * ``_seg2bmap``: with e/s/se the mask shifted by one pixel east/south/south-east
    (zero fill), ``b = seg^e | seg^s | seg^se``; the last row uses only ``seg^e``,
    the last column only ``seg^s``, and the bottom-right pixel is 0.

Consequences worth knowing (official behaviour, kept on purpose): a mask covering
the whole frame has an *empty* boundary map (only transitions inside the image
count), so F(empty, full) = 1 while J(empty, full) = 0; and F depends only on the
boundary maps, so "both boundaries empty" gives F = 1.

Implementation: everything is vectorised over frames; ``seg2bmap`` uses array
shifts; the dilation is OpenCV's ``cv2.dilate`` with skimage's ``disk`` kernel
(the official kernel), applied to the bounding box of the frame's boundary
pixels. Cropping is exact: the dilated maps are only read at boundary pixels, all
boundary pixels lie in the box, and OpenCV's dilation ignores pixels outside the
image. Counts and divisions are done in the same float64 order as the official
code, so the numbers agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from refine.errors import InputError

__all__ = [
    "ExpressionScore",
    "db_eval_boundary",
    "db_eval_iou",
    "evaluate_expression",
    "evaluate_stages",
    "seg2bmap",
    "summarize",
]

BOUND_TH = 0.008
"""Official boundary tolerance: a fraction of the image diagonal (or pixels if >= 1)."""


@dataclass(frozen=True)
class ExpressionScore:
    """Scores of one expression, as fractions in [0, 1]: means over its frames."""

    J: float
    F: float


def _check_pair(
    gt: np.ndarray, pred: np.ndarray, what: str = "prediction"
) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays of the same shape [..., H, W] (nonzero = foreground)."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise InputError(
            f"ground truth has shape {gt.shape} but the {what} has shape {pred.shape}; "
            "masks must have the same number of frames and the same height and width "
            "(resize the prediction to the video's size)"
        )
    if gt.ndim < 2 or gt.shape[-1] == 0 or gt.shape[-2] == 0:
        raise InputError(f"masks of shape {gt.shape} are not [T, H, W] (or [H, W]) with H, W >= 1")
    return gt.astype(bool, copy=False), pred.astype(bool, copy=False)


def _count(masks: np.ndarray) -> np.ndarray:
    """int64 [...]: foreground pixels per frame of bool [..., H, W] masks."""
    flat = masks.reshape(-1, masks.shape[-2] * masks.shape[-1])
    # np.count_nonzero over a whole frame is much faster than with an axis argument
    counts = np.fromiter((np.count_nonzero(f) for f in flat), dtype=np.int64, count=len(flat))
    return counts.reshape(masks.shape[:-2])


def db_eval_iou(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Region similarity J (IoU) per frame.

    Args:
        gt: [T, H, W] (or any [..., H, W]) ground-truth masks; nonzero = foreground.
        pred: predicted masks, same shape as ``gt``.

    Returns:
        float64 [T] (the leading shape of the inputs): |gt & pred| / |gt | pred|,
        and 1.0 on frames where both masks are empty.

    Raises:
        InputError: the shapes differ (the message gives both).
    """
    gt, pred = _check_pair(gt, pred)
    inter = _count(gt & pred)
    union = _count(gt | pred)
    j = np.divide(inter, union, out=np.ones(np.shape(union), dtype=np.float64), where=union != 0)
    return j


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """DAVIS ``_seg2bmap`` boundary map (1 px wide, offset half a pixel to the origin).

    Args:
        mask: [H, W] or [..., H, W] mask; nonzero = foreground.

    Returns:
        bool array of the same shape: pixel (y, x) is a boundary pixel when it
        differs from its east, south or south-east neighbour (zero outside the
        image); on the last row only the east neighbour counts, on the last column
        only the south one, and the bottom-right pixel is never a boundary pixel.
    """
    seg = np.asarray(mask).astype(bool, copy=False)
    if seg.ndim < 2:
        raise InputError(f"seg2bmap needs a [..., H, W] mask, got shape {seg.shape}")
    # Same values as the official e/s/se formulation with fewer full-size passes:
    # with h = seg ^ east and v = seg ^ south, a pixel's 2x2 block (itself, east,
    # south, south-east) is not uniform iff h | v | h of the row below; the last row
    # keeps only h (seg ^ e), the last column only v (seg ^ s), the corner is 0.
    h = seg[..., :, :-1] ^ seg[..., :, 1:]  # [..., H, W-1]
    v = seg[..., :-1, :] ^ seg[..., 1:, :]  # [..., H-1, W]
    b = np.empty_like(seg)
    core = b[..., :-1, :-1]
    np.bitwise_or(h[..., :-1, :], h[..., 1:, :], out=core)
    core |= v[..., :, :-1]
    b[..., -1, :-1] = h[..., -1, :]
    b[..., :-1, -1] = v[..., :, -1]
    b[..., -1, -1] = False
    return b


def _bound_pix(shape: tuple[int, int], bound_th: float) -> float:
    """Official tolerance in pixels: bound_th if >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm(shape)))


@lru_cache(maxsize=16)
def _disk_kernel(radius: float) -> np.ndarray:
    """uint8 [2r+1, 2r+1]: the official ``skimage.morphology.disk(bound_pix)`` kernel."""
    from skimage.morphology import disk  # imported on first use: it loads scipy (~0.3 s)

    return disk(radius).astype(np.uint8)


def db_eval_boundary(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> np.ndarray:
    """Boundary F-measure per frame, with the official DAVIS/MeViS rules.

    Args:
        gt: [T, H, W] (or any [..., H, W]) ground-truth masks; nonzero = foreground.
        pred: predicted masks, same shape as ``gt``.
        bound_th: tolerance; < 1 is a fraction of the frame diagonal (rounded up to
            whole pixels), >= 1 is in pixels. The official value is 0.008.

    Returns:
        float64 [T] (the leading shape of the inputs): F per frame.

    Raises:
        InputError: the shapes differ (the message gives both).
    """
    gt, pred = _check_pair(gt, pred)
    lead = gt.shape[:-2]
    h, w = gt.shape[-2:]
    gt_b = seg2bmap(gt).reshape(-1, h, w)
    fg_b = seg2bmap(pred).reshape(-1, h, w)
    n_gt = _count(gt_b)
    n_fg = _count(fg_b)
    kernel = _disk_kernel(_bound_pix((h, w), bound_th))

    gt_match = np.zeros(len(gt_b), dtype=np.int64)  # gt boundary pixels near pred's
    fg_match = np.zeros(len(gt_b), dtype=np.int64)  # pred boundary pixels near gt's
    for i in np.flatnonzero((n_gt > 0) & (n_fg > 0)):
        x, y, bw, bh = cv2.boundingRect((gt_b[i] | fg_b[i]).view(np.uint8))
        box = (slice(y, y + bh), slice(x, x + bw))
        g = np.ascontiguousarray(gt_b[i][box]).view(np.uint8)
        f = np.ascontiguousarray(fg_b[i][box]).view(np.uint8)
        gt_match[i] = np.count_nonzero(g & cv2.dilate(f, kernel))
        fg_match[i] = np.count_nonzero(f & cv2.dilate(g, kernel))

    # Official rules: an empty boundary has P (or R) = 1; when only the other side is
    # empty, its matches are 0, which gives the official 0 for the non-empty side.
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fg > 0, fg_match / n_fg.astype(np.float64), 1.0)
        recall = np.where(n_gt > 0, gt_match / n_gt.astype(np.float64), 1.0)
    denom = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        f_res = np.where(denom == 0, 0.0, 2 * precision * recall / denom)
    return f_res.reshape(lead)


def evaluate_expression(gt: np.ndarray, pred: np.ndarray) -> ExpressionScore:
    """J and F of one expression: means over its frames, as fractions.

    Args:
        gt: [T, H, W] ground-truth masks (nonzero = foreground), T >= 1.
        pred: [T, H, W] predicted masks.

    Raises:
        InputError: the shapes differ, or there are no frames.
    """
    gt, pred = _check_pair(gt, pred)
    if gt.ndim != 3 or gt.shape[0] == 0:
        raise InputError(
            f"an expression needs masks of shape [T, H, W] with T >= 1, got {gt.shape}"
        )
    return ExpressionScore(
        J=float(db_eval_iou(gt, pred).mean()), F=float(db_eval_boundary(gt, pred).mean())
    )


def evaluate_stages(gt: np.ndarray, stages: Mapping[str, np.ndarray]) -> dict[str, ExpressionScore]:
    """Score several predictions of the same expression (e.g. stage1, sam2, fused).

    Args:
        gt: [T, H, W] ground-truth masks.
        stages: name -> [T, H, W] predicted masks.

    Returns:
        name -> ExpressionScore, in the order of ``stages``.

    Raises:
        InputError: a stage's masks do not have the ground truth's shape (the
            message names the stage and both shapes).
    """
    scores = {}
    for name, masks in stages.items():
        _check_pair(gt, masks, what=f"stage {name!r}")
        scores[name] = evaluate_expression(gt, masks)
    return scores


def summarize(scores: Mapping[str, ExpressionScore]) -> dict:
    """Overall scores in percent, as the official script forms them.

    J and F are means over expressions of the per-expression means; J&F is
    (J + F) / 2 of those two means.

    Args:
        scores: expression key (e.g. "<video>/<exp_id>") -> ExpressionScore.

    Returns:
        ``{"J": %, "F": %, "J&F": %, "per_expression": {key: {"J": %, "F": %}}}``.

    Raises:
        InputError: ``scores`` is empty.
    """
    if not scores:
        raise InputError("no expressions were evaluated, so there is nothing to summarise")
    j = float(np.mean([s.J for s in scores.values()]))
    f = float(np.mean([s.F for s in scores.values()]))
    jf = (j + f) / 2
    return {
        "J": 100 * j,
        "F": 100 * f,
        "J&F": 100 * jf,
        "per_expression": {k: {"J": 100 * s.J, "F": 100 * s.F} for k, s in scores.items()},
    }
