"""Query selection (design §2 step 2) and prompt frames (step 4)."""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.275


def average_confident_scores(
    scores: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Per-query mean score over the frames where the score exceeds ``threshold``.

    scores: [T, N] → [N], computed as sum/(count + 1e-6) in the scores' own float
    precision (as the challenge code did in torch), so float32 inputs compare against
    the threshold rounded to float32.
    """
    scores = np.asarray(scores)
    thr = scores.dtype.type(threshold)
    valid = (scores > thr).astype(scores.dtype)
    return (scores * valid).sum(0) / (valid.sum(0) + scores.dtype.type(1e-6))


def select_queries(scores: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Indices of kept queries (ascending): those whose confident-frame mean > threshold.

    scores: [T, N] → [K] int64, K ≤ N (may be empty).
    """
    scores = np.asarray(scores)
    avg = average_confident_scores(scores, threshold)
    return np.flatnonzero(avg > scores.dtype.type(threshold))


def prompt_frames(scores: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Frame of each kept query's highest score (first maximum): [T, N], [K] → [K] int64."""
    return np.argmax(np.asarray(scores)[:, kept], axis=0).astype(np.int64)
