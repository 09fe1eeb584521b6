import numpy as np
import pytest

from refine.prompts import boxes_to_pixels, build_prompts, sample_points


def test_boxes_to_pixels():
    b = np.array([[0.5, 0.5, 0.5, 0.25], [0.1, 0.2, 0.2, 0.4]], np.float32)
    np.testing.assert_allclose(
        boxes_to_pixels(b, height=100, width=200),
        [[50, 37.5, 150, 62.5], [0, 0, 40, 40]],
        atol=1e-4,
    )


def test_sample_points_is_seeded_inside_mask_and_without_replacement():
    m = np.zeros((20, 30), bool)
    m[5:10, 7:15] = True
    a = sample_points(m, 20, np.random.default_rng(3))
    b = sample_points(m, 20, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, 2)
    assert m[a[:, 1].astype(int), a[:, 0].astype(int)].all()  # (x, y) order
    assert len({tuple(p) for p in a}) == 20
    c = sample_points(m, 20, np.random.default_rng(4))
    assert not np.array_equal(a, c)


def test_sample_points_with_replacement_for_small_masks_and_none_for_empty():
    m = np.zeros((5, 5), bool)
    m[2, 3] = True
    pts = sample_points(m, 4, np.random.default_rng(0))
    assert pts.tolist() == [[3.0, 2.0]] * 4
    assert sample_points(np.zeros((5, 5), bool), 4, np.random.default_rng(0)).shape == (0, 2)


def test_build_prompts_kinds():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 2:4, 2:4] = True
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]], np.float32)
    frames = np.array([4, 1])
    mp = build_prompts("mask", frames, masks, boxes, (10, 10))
    assert [(p.obj_id, p.frame, p.kind) for p in mp] == [(0, 4, "mask"), (1, 1, "mask")]
    np.testing.assert_array_equal(mp[0].mask, masks[0])
    bp = build_prompts("box", frames, masks, boxes, (10, 10))
    np.testing.assert_allclose(bp[0].box, [4, 4, 6, 6], atol=1e-5)
    pp = build_prompts("points", frames, masks, boxes, (10, 10), seed=1, num_points=3)
    assert pp[0].kind == "points" and pp[0].points.shape == (3, 2)
    assert pp[1].kind == "box"  # empty mask: nothing to sample, falls back to the box
    with pytest.raises(ValueError, match="prompt kind"):
        build_prompts("scribble", frames, masks, boxes, (10, 10))


def test_points_prompts_take_20_points_by_default():
    """design §2 step 4: 20 points per query, for build_prompts and the pipeline's params."""
    from refine.pipeline import RefineParams

    masks = np.ones((1, 10, 10), bool)
    boxes = np.array([[0.5, 0.5, 0.2, 0.2]], np.float32)
    (p,) = build_prompts("points", np.array([0]), masks, boxes, (10, 10))
    assert p.points.shape == (20, 2)
    assert RefineParams().num_points == 20
