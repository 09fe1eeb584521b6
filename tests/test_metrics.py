"""Tests of refine.metrics: hand-computed cases and agreement with slow references.

Two references live in this file:

- ``ref_*``: a straightforward transcription of the official DAVIS/MeViS code
  (davis2017-evaluation ``davis2017/metrics.py``) with python loops everywhere:
  ``_seg2bmap`` pixel by pixel, the disk dilation as a loop over boundary pixels
  and disk offsets, J and F frame by frame. It uses neither OpenCV nor skimage.
- ``official_f_measure``: the official per-frame ``f_measure`` as written
  (``cv2.dilate`` of the whole frame with ``skimage.morphology.disk``), to check
  the cropped dilation of refine.metrics at full 480x854 size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.morphology import disk

from refine.errors import InputError
from refine.metrics import (
    ExpressionScore,
    db_eval_boundary,
    db_eval_iou,
    evaluate_expression,
    evaluate_stages,
    seg2bmap,
    summarize,
)

# --------------------------------------------------------------------------- references


def ref_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Official ``_seg2bmap`` with python loops over pixels. [H, W] -> bool [H, W]."""
    seg = np.asarray(seg).astype(bool)
    h, w = seg.shape

    def at(y: int, x: int) -> bool:
        return bool(seg[y, x]) if y < h and x < w else False

    b = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            v, e, s, se = at(y, x), at(y, x + 1), at(y + 1, x), at(y + 1, x + 1)
            if y == h - 1 and x == w - 1:
                b[y, x] = False  # b[-1, -1] = 0
            elif x == w - 1:
                b[y, x] = v ^ s  # b[:, -1] = seg[:, -1] ^ s[:, -1]
            elif y == h - 1:
                b[y, x] = v ^ e  # b[-1, :] = seg[-1, :] ^ e[-1, :]
            else:
                b[y, x] = (v ^ e) or (v ^ s) or (v ^ se)
    return b


def ref_f_measure(fg: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """Official ``f_measure(foreground_mask, gt_mask)`` with loops. [H, W] each."""
    h, w = fg.shape
    bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * math.sqrt(h * h + w * w))
    rad = int(bound_pix)
    offsets = [
        (dy, dx)
        for dy in range(-rad, rad + 1)
        for dx in range(-rad, rad + 1)
        if dy * dy + dx * dx <= bound_pix * bound_pix
    ]
    fg_b = ref_seg2bmap(fg)
    gt_b = ref_seg2bmap(gt)

    def matched(src: np.ndarray, other: np.ndarray) -> int:
        """Pixels of ``src`` with a pixel of ``other`` within the disk."""
        n = 0
        for y, x in zip(*np.nonzero(src), strict=True):
            for dy, dx in offsets:
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and other[yy, xx]:
                    n += 1
                    break
        return n

    n_fg = int(fg_b.sum())
    n_gt = int(gt_b.sum())
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = matched(fg_b, gt_b) / float(n_fg)
        recall = matched(gt_b, fg_b) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def ref_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Official J on one [H, W] frame, with python integers."""
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    inter = int((gt & pred).sum())
    union = int((gt | pred).sum())
    return 1.0 if union == 0 else inter / union


def official_f_measure(fg: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """Official ``f_measure`` as written (full-frame cv2.dilate, skimage disk)."""
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_boundary = ref_seg2bmap_fast(fg)
    gt_boundary = ref_seg2bmap_fast(gt)
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def ref_seg2bmap_fast(seg: np.ndarray) -> np.ndarray:
    """Official ``_seg2bmap`` as written (numpy slices), for full-size frames."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def blobs(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """bool [t, h, w]: smooth random blobs (some touching the border) plus specks."""
    out = np.empty((t, h, w), dtype=bool)
    for i in range(t):
        field = cv2.GaussianBlur(rng.random((h, w)), (0, 0), sigmaX=max(h, w) / rng.uniform(8, 20))
        out[i] = field > np.quantile(field, rng.uniform(0.3, 0.95))
    out ^= rng.random(out.shape) < 0.003
    return out


# --------------------------------------------------------------------------- hand cases


def test_seg2bmap_of_a_2x2_block_is_the_ring_offset_towards_the_origin() -> None:
    m = np.zeros((5, 5), dtype=bool)
    m[1:3, 1:3] = True
    expected = np.zeros((5, 5), dtype=bool)
    expected[0:3, 0:3] = True
    expected[1, 1] = False
    np.testing.assert_array_equal(seg2bmap(m), expected)


def test_seg2bmap_of_a_full_or_empty_mask_is_empty() -> None:
    assert not seg2bmap(np.ones((7, 9), dtype=bool)).any()
    assert not seg2bmap(np.zeros((7, 9), dtype=bool)).any()


def test_seg2bmap_is_vectorised_over_frames() -> None:
    rng = np.random.default_rng(1)
    m = rng.random((3, 11, 13)) < 0.4
    got = seg2bmap(m)
    assert got.shape == (3, 11, 13) and got.dtype == bool
    for t in range(3):
        np.testing.assert_array_equal(got[t], ref_seg2bmap(m[t]))


def test_empty_vs_empty_scores_one() -> None:
    z = np.zeros((2, 97, 131), dtype=bool)
    np.testing.assert_array_equal(db_eval_iou(z, z), [1.0, 1.0])
    np.testing.assert_array_equal(db_eval_boundary(z, z), [1.0, 1.0])
    assert evaluate_expression(z, z) == ExpressionScore(J=1.0, F=1.0)


def test_empty_vs_full_is_j0_but_f1_because_a_full_mask_has_no_boundary() -> None:
    z = np.zeros((1, 97, 131), dtype=bool)
    full = np.ones_like(z)
    assert db_eval_iou(z, full)[0] == 0.0
    assert db_eval_iou(full, z)[0] == 0.0
    # Official behaviour: seg2bmap(full) is empty, so both boundaries are empty.
    assert db_eval_boundary(z, full)[0] == 1.0
    assert db_eval_boundary(full, full)[0] == 1.0


def test_one_side_empty_with_a_real_boundary_scores_f0() -> None:
    gt = np.zeros((1, 97, 131), dtype=bool)
    gt[0, 20:40, 30:70] = True
    z = np.zeros_like(gt)
    assert db_eval_boundary(gt, z)[0] == 0.0  # n_fg = 0, n_gt > 0: P=1, R=0
    assert db_eval_boundary(z, gt)[0] == 0.0  # n_fg > 0, n_gt = 0: P=0, R=1
    assert db_eval_iou(gt, z)[0] == 0.0


@pytest.mark.parametrize(
    ("shift", "j", "f"),
    [(0, 1.0, 1.0), (1, 0.0, 1.0), (2, 0.0, 1.0), (3, 0.0, 0.5), (4, 0.0, 0.0)],
)
def test_one_pixel_masks_on_97x131(shift: int, j: float, f: float) -> None:
    # diagonal sqrt(97^2 + 131^2) = 163.0 -> ceil(0.008 * 163.0) = 2 px tolerance.
    # A pixel's boundary is the 2x2 block up-left of it; shifting by 3 columns
    # leaves one column of each 2x2 block within 2 px of the other: P = R = 1/2.
    gt = np.zeros((1, 97, 131), dtype=bool)
    pred = np.zeros_like(gt)
    gt[0, 50, 60] = True
    pred[0, 50, 60 + shift] = True
    assert db_eval_iou(gt, pred)[0] == j
    assert db_eval_boundary(gt, pred)[0] == f


@pytest.mark.parametrize(("shift", "f"), [(9, 0.5), (10, 0.0)])
def test_tolerance_is_8px_at_480x854(shift: int, f: float) -> None:
    gt = np.zeros((1, 480, 854), dtype=bool)
    pred = np.zeros_like(gt)
    gt[0, 200, 300] = True
    pred[0, 200, 300 + shift] = True
    assert db_eval_boundary(gt, pred)[0] == f


def test_bound_th_in_pixels() -> None:
    gt = np.zeros((1, 97, 131), dtype=bool)
    pred = np.zeros_like(gt)
    gt[0, 50, 60] = True
    pred[0, 50, 65] = True
    assert db_eval_boundary(gt, pred)[0] == 0.0  # 2 px by default
    assert db_eval_boundary(gt, pred, bound_th=4)[0] == 0.5
    assert db_eval_boundary(gt, pred, bound_th=5)[0] == 1.0


def test_iou_of_overlapping_squares() -> None:
    gt = np.zeros((2, 40, 50), dtype=bool)
    pred = np.zeros_like(gt)
    gt[:, 10:20, 10:20] = True
    pred[0, 10:20, 15:25] = True  # 50 shared of 150
    pred[1, 10:20, 10:20] = True
    np.testing.assert_array_equal(db_eval_iou(gt, pred), [50 / 150, 1.0])
    score = evaluate_expression(gt, pred)
    assert score.J == pytest.approx((1 / 3 + 1) / 2, abs=1e-15)


def test_nonbool_inputs_are_nonzero_foreground() -> None:
    rng = np.random.default_rng(2)
    gt = blobs(rng, 2, 30, 40)
    pred = blobs(rng, 2, 30, 40)
    ref_j = db_eval_iou(gt, pred)
    ref_f = db_eval_boundary(gt, pred)
    gt_u8 = gt.astype(np.uint8) * 2  # summed overlapping objects, as the official GT
    pred_u8 = pred.astype(np.uint8) * 255
    np.testing.assert_array_equal(db_eval_iou(gt_u8, pred_u8), ref_j)
    np.testing.assert_array_equal(db_eval_boundary(gt_u8, pred_u8), ref_f)


def test_size_mismatch_names_both_shapes() -> None:
    a = np.zeros((3, 10, 12), dtype=bool)
    b = np.zeros((3, 12, 10), dtype=bool)
    for fn in (db_eval_iou, db_eval_boundary, evaluate_expression):
        with pytest.raises(InputError, match=r"\(3, 10, 12\).*\(3, 12, 10\)"):
            fn(a, b)


def test_expression_needs_frames() -> None:
    z = np.zeros((0, 10, 12), dtype=bool)
    with pytest.raises(InputError, match="T >= 1"):
        evaluate_expression(z, z)


def test_summarize_means_in_percent() -> None:
    res = summarize({"v/0": ExpressionScore(1.0, 0.5), "v/1": ExpressionScore(0.0, 1.0)})
    assert res["J"] == 50.0
    assert res["F"] == 75.0
    assert res["J&F"] == 62.5
    assert res["per_expression"] == {"v/0": {"J": 100.0, "F": 50.0}, "v/1": {"J": 0.0, "F": 100.0}}
    with pytest.raises(InputError, match="no expressions"):
        summarize({})


def test_evaluate_stages_scores_each_and_names_a_bad_stage() -> None:
    gt = np.zeros((2, 30, 40), dtype=bool)
    gt[:, 5:15, 5:20] = True
    half = gt.copy()
    half[1] = False
    got = evaluate_stages(gt, {"stage1": np.zeros_like(gt), "sam2": gt, "fused": half})
    assert list(got) == ["stage1", "sam2", "fused"]
    assert got["stage1"] == ExpressionScore(0.0, 0.0)
    assert got["sam2"] == ExpressionScore(1.0, 1.0)
    assert got["fused"] == ExpressionScore(0.5, 0.5)
    with pytest.raises(InputError, match=r"\(2, 30, 40\).*stage 'fused'.*\(2, 30, 41\)"):
        evaluate_stages(gt, {"sam2": gt, "fused": np.zeros((2, 30, 41), dtype=bool)})


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(("h", "w", "seed"), [(23, 31, 0), (40, 57, 1), (97, 131, 2), (64, 1, 3)])
def test_agrees_with_loop_reference_on_random_blobs(h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = 5
    gt = blobs(rng, t, h, w)
    pred = gt.copy()
    pred[: t - 1] = blobs(rng, t - 1, h, w)  # last frame identical
    gt[1] = False  # an empty ground-truth frame
    pred[2] = True  # a full prediction
    j = db_eval_iou(gt, pred)
    f = db_eval_boundary(gt, pred)
    assert j.shape == f.shape == (t,)
    ref_j = [ref_iou(gt[i], pred[i]) for i in range(t)]
    ref_f = [ref_f_measure(pred[i], gt[i]) for i in range(t)]
    np.testing.assert_allclose(j, ref_j, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f, ref_f, rtol=0, atol=1e-12)
    assert j[-1] == 1.0 and f[-1] == 1.0
    score = evaluate_expression(gt, pred)
    assert abs(score.J - float(np.mean(ref_j))) < 1e-12
    assert abs(score.F - float(np.mean(ref_f))) < 1e-12


def test_agrees_with_official_full_frame_dilation_at_480x854() -> None:
    rng = np.random.default_rng(7)
    gt = blobs(rng, 4, 480, 854)
    pred = gt.copy()
    pred[0] = np.roll(gt[0], (5, -7), axis=(0, 1))  # a near miss
    pred[1:3] = blobs(rng, 2, 480, 854)
    pred[3] = cv2.erode(gt[3].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    f = db_eval_boundary(gt, pred)
    expected = [official_f_measure(pred[i], gt[i]) for i in range(4)]
    np.testing.assert_allclose(f, expected, rtol=0, atol=1e-12)
    assert 0.0 < f[0] < 1.0 and 0.0 < f[3] < 1.0  # the cases exercise partial matches


@settings(max_examples=60, deadline=None)
@given(
    pair=st.integers(1, 14).flatmap(
        lambda h: st.integers(1, 14).flatmap(
            lambda w: st.tuples(
                arrays(np.bool_, (1, h, w)),
                arrays(np.bool_, (1, h, w)),
                st.sampled_from([0.008, 1, 2]),
            )
        )
    )
)
def test_agrees_with_loop_reference_on_tiny_masks(pair: tuple) -> None:
    gt, pred, th = pair
    np.testing.assert_array_equal(seg2bmap(gt[0]), ref_seg2bmap(gt[0]))
    assert abs(db_eval_iou(gt, pred)[0] - ref_iou(gt[0], pred[0])) < 1e-12
    assert abs(db_eval_boundary(gt, pred, th)[0] - ref_f_measure(pred[0], gt[0], th)) < 1e-12
