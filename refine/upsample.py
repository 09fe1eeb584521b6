"""Stage-1 mask logits → binary masks at video resolution (design §2 step 3)."""

from __future__ import annotations

import numpy as np

_CHUNK_PIXELS = 64 * 2**20  # float32 elements per chunk of output


def upsample_masks(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling (align_corners=False) of logits, then > 0.

    logits: [T, K, h, w] float → [T, K, H, W] bool. Computed in float32 with torch,
    a few frames at a time to bound memory.
    """
    import torch
    import torch.nn.functional as F

    t, k = logits.shape[:2]
    h, w = size
    out = np.zeros((t, k, h, w), dtype=bool)
    step = max(1, _CHUNK_PIXELS // max(1, k * h * w))
    for s in range(0, t, step):
        x = torch.from_numpy(np.ascontiguousarray(logits[s : s + step], dtype=np.float32))
        if x.shape[-2:] == (h, w):
            out[s : s + step] = (x > 0).numpy()
        else:
            y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            out[s : s + step] = (y > 0).numpy()
    return out
