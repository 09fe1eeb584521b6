"""The long-video bench's child process (``python -m refine bench --long-video``).

``python -m refine.bench_long_video MODE FRAMES_DIR IMAGE_SIZE N_TRACK CACHE_MB MODEL``
builds random-weight SAM2, creates a state on the JPEG folder (MODE ``plain``: SAM2's
``init_state``; ``ours``: a :class:`~refine.frames.FrameSource` with a feature cache),
prompts one mask on frame 0, propagates over N_TRACK frames and prints its figures as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np


def measure(mode: str, frames_dir: str, image_size: int, n_track: int, cache_mb: float, model: str):
    import psutil
    import torch

    from refine.feature_cache import FeatureCache
    from refine.frames import FrameSource
    from refine.models import ModelSpec, get_predictor
    from refine.sam2_patches import new_inference_state

    pred = get_predictor(ModelSpec(model, "cpu", random_weights=True, image_size=image_size))
    model_rss = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    with torch.inference_mode():
        if mode == "plain":
            state = pred.init_state(video_path=frames_dir)
            h, w = state["video_height"], state["video_width"]
        else:
            files = sorted(os.path.join(frames_dir, f) for f in os.listdir(frames_dir))
            src = FrameSource.from_paths(files)
            h, w = src.height, src.width
            cache = FeatureCache(cache_mb)
            state = new_inference_state(pred, src.bind(pred.image_size), h, w, cache)
        mask = np.zeros((h, w), bool)
        mask[h // 3 : h // 2, w // 3 : w // 2] = True
        pred.add_new_mask(state, frame_idx=0, obj_id=0, mask=mask)
        tracked = 0
        for _ in pred.propagate_in_video(
            state, start_frame_idx=0, max_frame_num_to_track=n_track - 1
        ):
            tracked += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "mode": mode,
        "model_rss_mb": model_rss / 2**20,
        "peak_rss_mb": peak / 2**20,
        "above_model_mb": (peak - model_rss) / 2**20,
        "seconds": time.perf_counter() - t0,
        "frames_tracked": tracked,
    }


if __name__ == "__main__":
    a = sys.argv[1:]
    figures = measure(a[0], a[1], int(a[2]), int(a[3]), float(a[4]), a[5])
    sys.stdout.write(json.dumps(figures) + "\n")
