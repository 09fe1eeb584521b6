"""SAMURAI's mask-choice and memory-selection rules and its settings, on constructed scores."""

import json
import math

import numpy as np
import pytest

from refine.errors import InputError
from refine.memory import MemoryConfig
from refine.samurai import FrameScore, ObjectMotion, frames_to_keep, select_memory

CFG = MemoryConfig("samurai")
A = (10.0, 10.0, 30.0, 50.0)
FAR = (100.0, 100.0, 120.0, 140.0)


def boxes(*bs):
    return lambda i: bs[i]


def test_unstable_filter_picks_the_best_predicted_iou_and_counts_confident_frames():
    m = ObjectMotion(MemoryConfig("samurai", stable_frames=3), A)
    assert m.stable == 1
    assert m.choose([0.2, 0.9, 0.5], boxes(FAR, A, FAR)) == (1, None)
    assert m.stable == 2
    # best IoU 0.25 ≤ stable_iou 0.3: no update, counting restarts
    assert m.choose([0.25, 0.1, 0.0], boxes(A, A, A)) == (0, None)
    assert m.stable == 0
    # restart: the filter starts again from the best mask's box
    assert m.choose([0.1, 0.2, 0.6], boxes(A, A, FAR)) == (2, None)
    assert m.stable == 1
    np.testing.assert_allclose(m.predicted_box(), FAR)


def test_stable_filter_weighs_its_box_against_predicted_iou():
    for weight, want in ((0.5, 1), (0.0, 0)):
        m = ObjectMotion(MemoryConfig("samurai", stable_frames=1, kf_weight=weight), A)
        # candidate 0: higher predicted IoU but far from the filter's box; 1 sits on it
        k, kf = m.choose([0.9, 0.8], boxes(FAR, A))
        assert k == want
        assert kf == (1.0 if want == 1 else 0.0)  # no velocity yet: predicted box = A
    m = ObjectMotion(MemoryConfig("samurai", stable_frames=1), A)
    m.choose([0.2, 0.1], boxes(A, A))  # chosen IoU < stable_iou: restart counting
    assert m.stable == 0


def test_empty_masks_never_start_or_update_the_filter():
    m = ObjectMotion(CFG, None)
    assert m.choose([0.9], boxes(None)) == (0, None) and m.mean is None
    m = ObjectMotion(CFG, A)
    m.choose([0.9], boxes(None))
    assert m.stable == 0
    m = ObjectMotion(MemoryConfig("samurai", stable_frames=1), A)
    assert m.choose([0.9, 0.5], boxes(None, A))[1] in (0.0, 1.0)


def scores(frames, iou=0.9, obj=1.0, kf=None):
    return {f: FrameScore(iou, obj, kf) for f in frames}


def test_memory_selection_forward_is_sams_window_when_all_frames_pass():
    s = scores(range(1, 10))
    assert select_memory(s, 10, False, CFG, 6, 15, 20) == [9, 8, 7, 6, 5, 4]
    # near the start fewer frames exist; unlike the reference, frames 1 (and 0) are reached
    assert select_memory(s, 3, False, CFG, 6, 15, 20) == [2, 1]


def test_memory_selection_skips_frames_that_fail_a_threshold_but_keeps_the_last_one():
    s = scores(range(1, 10))
    for f in (9, 7, 5):
        s[f] = FrameScore(0.4, 1.0)  # predicted IoU ≤ 0.5
    s[8] = FrameScore(0.9, -0.5)  # object score ≤ 0
    s[6] = FrameScore(0.9, 1.0, kf_score=0.0)  # Kalman IoU ≤ 0
    s[4] = FrameScore(0.9, 1.0, kf_score=0.7)
    assert select_memory(s, 10, False, CFG, 6, 15, 20) == [9, 4, 3, 2, 1]
    # the cap limits the candidates (the reference: max_obj_ptrs_in_encoder − 1)
    assert select_memory(s, 10, False, CFG, 6, 2, 20) == [9, 4, 3]
    # thresholds at −inf admit every frame: SAM2's rule
    off = MemoryConfig("samurai", memory_iou=-math.inf, memory_obj_score=-math.inf,
                       memory_kf_score=-math.inf)  # fmt: skip
    assert select_memory(s, 10, False, off, 6, 15, 20) == [9, 8, 7, 6, 5, 4]


def test_memory_selection_in_the_reverse_pass_walks_toward_later_frames():
    s = scores(range(6, 20))
    s[8] = FrameScore(0.1, 1.0)
    assert select_memory(s, 5, True, CFG, 6, 15, 20) == [6, 7, 9, 10, 11, 12]
    # the frame just tracked is kept even when it has no scores (a conditioning frame)
    assert select_memory(s, 4, True, CFG, 6, 15, 20) == [5, 6, 7, 9, 10, 11]
    assert select_memory(s, 19, True, CFG, 6, 15, 20) == [20]  # past the end: nothing read


def test_frames_to_keep_covers_the_next_selection_and_the_reverse_pass_start():
    s = scores(range(6, 31))
    for f in range(7, 28):
        s[f] = FrameScore(0.1, 1.0)
    keep = frames_to_keep(s, 30, False, 5, CFG, 6, 15, 40)
    assert {30, 29, 28, 6} <= keep  # next selection (31): 30, then 29, 28, 6
    assert select_memory(s, 4, True, CFG, 6, 15, 40)[1:] == [6, 28, 29, 30]
    assert {6, 28, 29, 30} <= keep
    assert not keep & set(range(7, 28))


def test_memory_config_validation_and_markers():
    assert MemoryConfig().as_dict() == {"mode": "sam2"}
    d = CFG.as_dict()
    assert d["mode"] == "samurai" and d["kf_weight"] == 0.25 and d["stable_frames"] == 15
    assert hash(MemoryConfig("samurai")) == hash(CFG) and MemoryConfig() != CFG
    off = MemoryConfig("samurai", memory_iou=-math.inf)
    assert json.loads(json.dumps(off.as_dict())) == off.as_dict()
    with pytest.raises(InputError, match="unknown memory mode 'kalman'"):
        MemoryConfig("kalman")
    with pytest.raises(InputError, match=r"--samurai-kf-weight must lie in \[0, 1\], got 1.5"):
        MemoryConfig("samurai", kf_weight=1.5)
    with pytest.raises(InputError, match="--samurai-memory-iou must be a number, got nan"):
        MemoryConfig("samurai", memory_iou=math.nan)
    with pytest.raises(InputError, match="--samurai-stable-frames must be ≥ 0, got -1"):
        MemoryConfig("samurai", stable_frames=-1)
    with pytest.raises(InputError, match="only apply to the samurai memory"):
        MemoryConfig("sam2", kf_weight=0.5)
