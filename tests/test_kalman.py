"""The constant-velocity box Kalman filter against hand-computed values and the textbook
formulas (filterpy is not a dependency; its KalmanFilter computes the same equations)."""

import numpy as np
import pytest

from refine import kalman


def test_box_conversions_and_iou():
    np.testing.assert_allclose(kalman.xyxy_to_xyah([0, 0, 4, 2]), [2, 1, 2, 2])
    np.testing.assert_allclose(kalman.xyah_to_xyxy([2, 1, 2, 2]), [0, 0, 4, 2])
    np.testing.assert_allclose(
        kalman.box_iou(np.array([0, 0, 2, 2]), [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]]),
        [1 / 7, 1, 0],
    )
    # an empty box against an empty box: union 0 → IoU 0, not NaN
    assert kalman.box_iou(np.array([1, 1, 1, 1]), [[1, 1, 1, 1]])[0] == 0


def test_initiate_predict_update_by_hand():
    # h = 40: position std 40/20 = 2, velocity std 40/160 = 0.25
    mean, cov = kalman.initiate([10, 20, 0.5, 40])
    np.testing.assert_array_equal(mean, [10, 20, 0.5, 40, 0, 0, 0, 0])
    np.testing.assert_allclose(np.diag(cov), [16, 16, 1e-4, 16, 6.25, 6.25, 1e-10, 6.25])
    mean, cov = kalman.predict(mean, cov)
    np.testing.assert_array_equal(mean, [10, 20, 0.5, 40, 0, 0, 0, 0])  # no velocity yet
    assert cov[0, 0] == pytest.approx(16 + 6.25 + 4)  # P_xx + P_vv + Q_xx
    assert cov[0, 4] == pytest.approx(6.25)
    assert cov[4, 4] == pytest.approx(6.25 + 0.0625)
    mean, cov = kalman.update(mean, cov, [12, 20, 0.5, 40])  # moved 2 px right
    s = 26.25 + 4  # innovation variance: P_xx + R_xx
    assert mean[0] == pytest.approx(10 + 2 * 26.25 / s)
    assert mean[4] == pytest.approx(2 * 6.25 / s)
    np.testing.assert_allclose(mean[[1, 2, 3, 5, 6, 7]], [20, 0.5, 40, 0, 0, 0])
    assert cov[0, 0] == pytest.approx(26.25 * 4 / s)


def test_update_matches_textbook_formulas():
    rng = np.random.default_rng(0)
    mean, cov = kalman.initiate([50, 60, 0.8, 30])
    for _ in range(5):
        mean, cov = kalman.predict(mean, cov)
        z = mean[:4] + rng.normal(0, [2, 2, 0.05, 1])
        h = np.eye(4, 8)
        r = np.diag(np.square([mean[3] / 20, mean[3] / 20, 0.1, mean[3] / 20]))
        k = cov @ h.T @ np.linalg.inv(h @ cov @ h.T + r)
        want_mean, want_cov = mean + k @ (z - h @ mean), (np.eye(8) - k @ h) @ cov
        mean, cov = kalman.update(mean, cov, z)
        np.testing.assert_allclose(mean, want_mean, rtol=1e-10)
        np.testing.assert_allclose(cov, want_cov, rtol=1e-8, atol=1e-12)


def test_constant_motion_is_learned():
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah([0, 0, 10, 20]))
    for t in range(1, 30):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, kalman.xyxy_to_xyah([3 * t, 0, 3 * t + 10, 20]))
    assert mean[4] == pytest.approx(3, abs=0.05)  # x velocity, px per frame
    mean, _ = kalman.predict(mean, cov)
    np.testing.assert_allclose(kalman.xyah_to_xyxy(mean), [90, 0, 100, 20], atol=0.5)
