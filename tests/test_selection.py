import numpy as np

from refine.selection import average_confident_scores, prompt_frames, select_queries


def test_average_over_confident_frames_only():
    s = np.array([[0.3, 0.1, 0.0], [0.5, 0.2, 0.0], [0.1, 0.9, 0.0]], np.float32)
    avg = average_confident_scores(s)
    np.testing.assert_allclose(avg, [0.8 / (2 + 1e-6), 0.9 / (1 + 1e-6), 0.0], rtol=1e-6)
    assert select_queries(s).tolist() == [0, 1]


def test_epsilon_in_denominator_drops_a_query_just_above_threshold():
    # one confident frame at 0.2750002: its mean is 0.2750002 / (1 + 1e-6) < 0.275
    s = np.array([[0.2750002], [0.1]], np.float32)
    assert s[0, 0] > np.float32(0.275)
    assert select_queries(s).tolist() == []
    s[0, 0] = 0.2751
    assert select_queries(s).tolist() == [0]


def test_score_equal_to_threshold_is_not_confident():
    s = np.full((3, 1), 0.275, np.float32)
    assert average_confident_scores(s)[0] == 0
    assert select_queries(s).size == 0


def test_threshold_is_a_parameter():
    s = np.array([[0.5, 0.7]], np.float32)
    assert select_queries(s, 0.6).tolist() == [1]
    assert select_queries(s, 0.4).tolist() == [0, 1]


def test_prompt_frame_is_first_maximum():
    s = np.array([[0.1, 0.9, 0.5], [0.8, 0.9, 0.2], [0.8, 0.3, 0.5]], np.float32)
    assert prompt_frames(s, np.array([0, 1, 2])).tolist() == [1, 0, 0]
    assert prompt_frames(s, np.array([2])).tolist() == [0]


def test_a_query_whose_average_equals_the_threshold_in_float32_is_dropped():
    thr = 0.275
    t32 = np.float32(thr)
    s = t32
    for _ in range(200):  # walk up from θ until the average lands exactly on θ in float32
        s = np.nextafter(s, np.float32(1))
        if average_confident_scores(np.array([[s]], np.float32), thr)[0] == t32:
            break
    else:
        raise AssertionError("no float32 score averages to exactly θ")
    assert select_queries(np.array([[s]], np.float32), thr).tolist() == []  # strict >
    above = s
    while average_confident_scores(np.array([[above]], np.float32), thr)[0] <= t32:
        above = np.nextafter(above, np.float32(1))
    assert select_queries(np.array([[above]], np.float32), thr).tolist() == [0]
