"""--fill-holes: sam2's hole filling reproduced with OpenCV connected components."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import torch
from skimage.measure import label

from refine.fill_holes import connected_components, enable_hole_filling


def test_components_match_an_independent_8_connected_labelling():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 1, 40, 50)) < 0.45
    labels, areas = connected_components(torch.from_numpy(masks))
    for i in range(3):
        ref = label(masks[i, 0], connectivity=2)
        ref_areas = np.bincount(ref.ravel())[ref] * (ref > 0)
        assert np.array_equal(labels[i, 0].numpy() > 0, ref > 0)
        assert np.array_equal(areas[i, 0].numpy(), ref_areas)
        # same partition: pixels share a label here iff they share one in the reference
        pairs = {(int(a), int(b)) for a, b in zip(labels[i, 0].numpy().ravel(), ref.ravel())}
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_diagonal_pixels_are_one_component():
    m = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    m[0, 0, 0, 0] = m[0, 0, 1, 1] = m[0, 0, 2, 2] = True
    _, areas = connected_components(m)
    assert areas[0, 0, 0, 0] == areas[0, 0, 2, 2] == 3


def test_holes_up_to_max_area_are_filled_larger_ones_kept():
    from sam2.utils.misc import fill_holes_in_mask_scores

    predictor = types.SimpleNamespace(fill_hole_area=0)
    enable_hole_filling(predictor, 8)
    assert predictor.fill_hole_area == 8
    logits = torch.full((1, 1, 20, 20), 5.0)
    logits[0, 0, 2:4, 2:6] = -1.0  # 8 px hole: filled
    logits[0, 0, 10:13, 10:13] = -1.0  # 9 px hole: kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sam2 warns when it cannot fill
        out = fill_holes_in_mask_scores(logits, predictor.fill_hole_area)
    assert (out[0, 0, 2:4, 2:6] == 0.1).all()
    assert (out[0, 0, 10:13, 10:13] == -1.0).all()
    assert (out > 0).sum() == 400 - 9


def test_negative_area_is_refused():
    with pytest.raises(ValueError, match="-1"):
        enable_hole_filling(types.SimpleNamespace(fill_hole_area=0), -1)
