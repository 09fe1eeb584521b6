"""A constant-velocity Kalman filter on boxes, the DeepSORT/ByteTrack model SAMURAI uses.

State (8): box centre x, y, aspect ratio a = w/h, height h, and their velocities.
Measurement (4): x, y, a, h. Time step 1 frame. The noise scales with the box height:
position std 1/20 of h, velocity std 1/160 of h; the aspect ratio has fixed stds
(1e-2 position, 1e-5 velocity, 1e-1 measurement). numpy only; boxes in pixels.
"""

from __future__ import annotations

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160
_MOTION = np.eye(8)
_MOTION[np.arange(4), np.arange(4) + 4] = 1.0  # x' = x + v·dt, dt = 1
_MEASURE = np.eye(4, 8)


def xyxy_to_xyah(box) -> np.ndarray:
    """[x1, y1, x2, y2] → [cx, cy, w/h, h] (h > 0)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    return np.array([x1 + w / 2, y1 + h / 2, w / h, h])


def xyah_to_xyxy(xyah) -> np.ndarray:
    """[cx, cy, a, h] → [x1, y1, x2, y2]."""
    cx, cy, a, h = (float(v) for v in xyah[:4])
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def box_iou(box, boxes) -> np.ndarray:
    """IoU of one [x1, y1, x2, y2] box with each of ``boxes`` [M, 4] → [M] (0 where the union
    is empty)."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    iw = np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0, None)
    inter = iw * ih
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    union = area + (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def initiate(measurement) -> tuple[np.ndarray, np.ndarray]:
    """Mean [8] and covariance [8, 8] of a new track at ``measurement`` [x, y, a, h]
    (zero velocity)."""
    h = float(measurement[3])
    mean = np.concatenate([np.asarray(measurement, dtype=float), np.zeros(4)])
    std = [2 * STD_POSITION * h, 2 * STD_POSITION * h, 1e-2, 2 * STD_POSITION * h,
           10 * STD_VELOCITY * h, 10 * STD_VELOCITY * h, 1e-5, 10 * STD_VELOCITY * h]  # fmt: skip
    return mean, np.diag(np.square(std))


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: x ← F x, P ← F P Fᵀ + Q, Q from the current height."""
    h = mean[3]
    std = [STD_POSITION * h, STD_POSITION * h, 1e-2, STD_POSITION * h,
           STD_VELOCITY * h, STD_VELOCITY * h, 1e-5, STD_VELOCITY * h]  # fmt: skip
    return _MOTION @ mean, _MOTION @ cov @ _MOTION.T + np.diag(np.square(std))


def update(mean: np.ndarray, cov: np.ndarray, measurement) -> tuple[np.ndarray, np.ndarray]:
    """Correct with ``measurement`` [x, y, a, h]: S = H P Hᵀ + R, K = P Hᵀ S⁻¹,
    x ← x + K (z − H x), P ← P − K S Kᵀ (R from the predicted height)."""
    h = mean[3]
    r = np.diag(np.square([STD_POSITION * h, STD_POSITION * h, 1e-1, STD_POSITION * h]))
    s = _MEASURE @ cov @ _MEASURE.T + r
    gain = np.linalg.solve(s, _MEASURE @ cov).T  # S symmetric: (S⁻¹ H P)ᵀ = P Hᵀ S⁻¹
    innovation = np.asarray(measurement, dtype=float) - _MEASURE @ mean
    return mean + gain @ innovation, cov - gain @ s @ gain.T
