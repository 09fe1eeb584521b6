"""Small, documented adaptations of sam2 1.1.0's video predictor (design §5).

* memory attention input upcast to float32: sam2 stores memories in bfloat16; on a
  frame where an object has memories but no object pointer yet the memory stays
  bfloat16 and CPU fp32 fails with "mat1 and mat2 must have the same dtype"
  (upstream issues #308, #577). Upcasting keeps the stored rounding and gives exactly
  the numbers that implicit promotion gives on every other frame.
* a shared, bounded feature cache: SAM2's own cache holds one frame, so each
  propagation re-runs the image encoder on every frame. ``_get_image_feature`` is
  wrapped to look frames up in a :class:`~refine.feature_cache.FeatureCache` kept in
  the inference state; the features are bitwise those SAM2 computes.
* an image-encoder call counter (``predictor.refine_encoder_calls``).
* SAM2's per-propagation tqdm bar is silenced (refine shows its own progress).
"""

from __future__ import annotations

import types
from collections import OrderedDict

import torch

from refine.memory import MemoryConfig

CACHE_KEY = "refine_feature_cache"


def _upcast_memory(module, args, kwargs):
    memory = kwargs.get("memory")
    if memory is not None and memory.dtype in (torch.bfloat16, torch.float16):
        kwargs["memory"] = memory.float()
    return args, kwargs


def patch_predictor(predictor) -> None:
    """Apply the adaptations above to one predictor instance (idempotent)."""
    if getattr(predictor, "refine_patched", False):
        return
    import sam2.sam2_video_predictor as svp

    svp.tqdm = quiet_tqdm
    predictor.memory_attention.register_forward_pre_hook(_upcast_memory, with_kwargs=True)

    predictor.refine_encoder_calls = 0
    original_forward_image = predictor.forward_image

    def forward_image(self, img_batch):
        self.refine_encoder_calls += int(img_batch.shape[0])
        return original_forward_image(img_batch)

    predictor.forward_image = types.MethodType(forward_image, predictor)

    original_get = predictor._get_image_feature

    def _get_image_feature(self, inference_state, frame_idx, batch_size):
        cache = inference_state.get(CACHE_KEY)
        hit = cache.get(frame_idx) if cache is not None else None
        if hit is not None:
            inference_state["cached_features"] = {frame_idx: hit}
        features = original_get(inference_state, frame_idx, batch_size)
        if cache is not None and hit is None:
            cache.put(frame_idx, inference_state["cached_features"][frame_idx])
        return features

    predictor._get_image_feature = types.MethodType(_get_image_feature, predictor)
    predictor.refine_patched = True


def quiet_tqdm(iterable, *args, **kwargs):
    """A stand-in for ``tqdm`` that shows no bar."""
    return iterable


def new_inference_state(
    predictor, images, height: int, width: int, cache=None, memory: MemoryConfig | None = None
) -> dict:
    """An inference state like ``predictor.init_state`` makes, over lazily built ``images``.

    ``images`` is indexable (``[t]`` → [3, S, S] float32) with ``len()``; nothing is
    decoded or encoded here. The keys are those of sam2 1.1.0's ``init_state``
    (tests compare them), plus refine's feature cache and, with a samurai ``memory``,
    SAMURAI's per-object state (:mod:`refine.samurai_sam2`).
    """
    device = predictor.device
    state = {
        "images": images,
        "num_frames": len(images),
        "offload_video_to_cpu": True,
        "offload_state_to_cpu": False,
        "video_height": height,
        "video_width": width,
        "device": device,
        "storage_device": device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
        CACHE_KEY: cache,
    }
    if memory is not None and memory.samurai:
        from refine.samurai_sam2 import enable_samurai

        enable_samurai(predictor, state, memory)
    return state
