"""The challenge code's SAM2 schedule, for the benchmarks: per expression a fresh
``init_state`` on the JPEG folder (every frame decoded and resized up front, SAM2's
one-frame feature cache), prompts, forward then reverse propagation."""

from __future__ import annotations

import contextlib

import numpy as np

from refine.memory import SAM2_MEMORY, MemoryConfig
from refine.propagation import add_prompt, masks_from_logits


def run_seed_schedule(
    predictor, frames_dir: str, prompt_sets, autocast, memory: MemoryConfig = SAM2_MEMORY
) -> list[np.ndarray]:
    """The challenge code's schedule: a fresh ``init_state`` per expression (tracking with
    ``memory``, as ours does, so that the masks can be compared)."""
    import torch

    from refine.samurai_sam2 import enable_samurai

    outs = []
    for prompts in prompt_sets:
        with torch.inference_mode(), autocast:
            state = predictor.init_state(video_path=frames_dir)
            if memory.samurai:
                enable_samurai(predictor, state, memory)
            for p in prompts:
                add_prompt(predictor, state, p)
            n, h, w = state["num_frames"], state["video_height"], state["video_width"]
            out = np.zeros((n, len(prompts), h, w), bool)
            for reverse in (False, True):
                for t, _, logits in predictor.propagate_in_video(state, reverse=reverse):
                    out[t] = masks_from_logits(logits)
        outs.append(out)
        del state
    return outs


@contextlib.contextmanager
def quiet_frame_loading():
    """Silence the "frame loading (JPEG)" bar ``init_state`` prints in the seed schedule."""
    import sam2.utils.misc as misc

    from refine.sam2_patches import quiet_tqdm

    saved, misc.tqdm = misc.tqdm, quiet_tqdm
    try:
        yield
    finally:
        misc.tqdm = saved
