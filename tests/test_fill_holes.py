"""--fill-holes: sam2's hole filling reproduced with OpenCV connected components."""

from __future__ import annotations

import os
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


EXAMPLES_ROOT = os.path.join(os.path.dirname(__file__), "..", "examples", "data")


def test_model_spec_checks_fill_holes():
    from refine.errors import InputError
    from refine.models import ModelSpec

    assert ModelSpec("tiny", fill_holes=8).fill_holes == 8
    for bad in (-1, 2.5, True):
        with pytest.raises(InputError, match="--fill-holes"):
            ModelSpec("tiny", fill_holes=bad)


def test_a_run_with_fill_holes_fills_without_sam2_warnings():
    """Random-weight tiny SAM2 on the birds example: sam2's hole filling runs on every frame
    without its CUDA extension (no "Skipping the post-processing" warning)."""
    from refine.dataset import MevisDataset
    from refine.models import ModelSpec, get_predictor
    from refine.pipeline import refine_video
    from refine.propagation import Sam2Propagator
    from refine.stage1 import load_video_stage1

    spec = ModelSpec("tiny", "cpu", random_weights=True, image_size=64, fill_holes=8)
    info = MevisDataset(EXAMPLES_ROOT).video("birds")
    frames = info.frame_source()
    size = (frames.height, frames.width)
    _, stage1 = load_video_stage1(
        f"{EXAMPLES_ROOT}/stage1", "birds", info.frame_names, size, info.expressions
    )
    assert get_predictor(spec).fill_hole_area == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = refine_video(frames, stage1, Sam2Propagator(spec), exp_ids=["0"])
    assert results[0].sam2.shape == (12, *size)
