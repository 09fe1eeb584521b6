import numpy as np
import pytest

from refine.dataset import MevisDataset
from refine.errors import InputError
from refine.frames import FrameSource
from refine.pipeline import RefineParams, check_video_matches, refine_expression, refine_video
from refine.stage1 import ExpressionStage1, VideoStage1, load_stage1_npz
from refine.testing import StaticPropagator

EXAMPLES = "examples/data"
T, H, W = 6, 16, 20


def logits_of(mask):
    return np.where(mask, 3.0, -3.0).astype(np.float32)


def square(r0, c0, size):
    m = np.zeros((H, W), bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


def frames():
    return FrameSource.from_arrays(np.zeros((T, H, W, 3), np.uint8))


def test_pipeline_exact_with_fake_propagator():
    # query 0 moves right and peaks on frame 3; query 1 is static and peaks on frame 1;
    # query 2 is never confident
    q0 = [square(2, 1 + 2 * t, 4) for t in range(T)]
    q1 = [square(10, 14, 3) for _ in range(T)]
    q2 = [square(0, 0, 2) for _ in range(T)]
    masks = np.stack([[logits_of(a), logits_of(b), logits_of(c)] for a, b, c in zip(q0, q1, q2)])
    scores = np.array([[0.5, 0.6, 0.1]] * T, np.float32)
    scores[3, 0], scores[1, 1] = 0.9, 0.95
    exp = ExpressionStage1(scores, np.zeros((T, 3, 4), np.float32), masks)
    prop = StaticPropagator()
    r = refine_expression("0", exp, frames(), prop)
    assert r.kept.tolist() == [0, 1] and r.prompt_frames.tolist() == [3, 1]
    assert [(p.obj_id, p.frame) for p in prop.calls[0]] == [(0, 3), (1, 1)]
    expected_sam = q0[3] | q1[0]
    assert all(np.array_equal(r.sam2[t], expected_sam) for t in range(T))
    np.testing.assert_array_equal(r.stage1, np.stack([a | b for a, b in zip(q0, q1)]))
    # union boxes: stage-1 spans rows 2..12, cols 1+2t..16; SAM2 rows 2..12, cols 7..16
    assert r.decision.area_sam2.tolist() == [10 * 9] * T
    assert r.decision.area_stage1.tolist() == [10 * (15 - 2 * t) for t in range(T)]
    # shrunk where 90 * 3 < 2 * area, i.e. area > 135: only t = 0 (150) → 1 of 6
    assert (r.decision.valid, r.decision.shrunk, r.decision.multi) == (6, 1, False)
    np.testing.assert_array_equal(r.fused, r.sam2)
    r.refuse(area_ratio="9/10", vote="1/3")
    # ρ = 9/10: shrunk where area > 100 (t = 0, 1, 2); 3 > 6 / 3 → union
    assert r.decision.shrunk == 3 and r.decision.multi
    np.testing.assert_array_equal(r.fused, r.sam2 | r.stage1)
    assert len(prop.calls) == 1  # re-fusing never tracks again


def test_no_kept_query_gives_empty_output_without_tracking():
    exp = ExpressionStage1(
        np.full((T, 2), 0.1, np.float32),
        np.zeros((T, 2, 4), np.float32),
        np.ones((T, 2, 4, 4), np.float32),
    )
    prop = StaticPropagator()
    r = refine_expression("0", exp, frames(), prop)
    assert prop.calls == [] and not r.fused.any() and r.fused.shape == (T, H, W)
    assert r.decision.valid == 0


def test_box_prompt_mode_passes_pixel_boxes():
    masks = np.stack([[logits_of(square(2, 2, 4))]] * T)
    boxes = np.tile(np.array([0.5, 0.5, 0.5, 0.5], np.float32), (T, 1, 1))
    exp = ExpressionStage1(np.full((T, 1), 0.9, np.float32), boxes, masks)
    prop = StaticPropagator()
    r = refine_expression("0", exp, frames(), prop, RefineParams(prompt="box"))
    np.testing.assert_allclose(prop.calls[0][0].box, [5, 4, 15, 12])
    assert r.sam2[0].sum() == 10 * 8


def test_examples_take_both_fusion_branches():
    ds = MevisDataset(EXAMPLES)
    decisions = {}
    for video in ds.videos():
        info = ds.video(video)
        s1 = load_stage1_npz(f"{EXAMPLES}/stage1/{video}.npz")
        for r in refine_video(info.frame_source(), s1, StaticPropagator()):
            decisions[f"{video}/{r.exp_id}"] = (len(r.kept), r.decision.multi)
    assert decisions["birds/0"] == (2, True)
    assert decisions["ball/0"] == (1, False)
    assert decisions["ball/1"] == (0, False)


def test_check_video_matches():
    s1 = VideoStage1((H, W), ["00000", "00001"], {})
    with pytest.raises(InputError, match="T or frame names mismatch"):
        check_video_matches(s1, ["00000"], frames(), "x.npz")
    fr = FrameSource.from_arrays(np.zeros((2, H + 1, W, 3), np.uint8))
    with pytest.raises(InputError, match="video_size"):
        check_video_matches(s1, ["00000", "00001"], fr, "x.npz")


def test_unknown_expression_is_an_error():
    s1 = load_stage1_npz(f"{EXAMPLES}/stage1/ball.npz")
    fr = MevisDataset(EXAMPLES).video("ball").frame_source()
    with pytest.raises(InputError, match="'9'"):
        list(refine_video(fr, s1, StaticPropagator(), exp_ids=["9"]))
