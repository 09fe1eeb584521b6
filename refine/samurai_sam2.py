"""SAMURAI on sam2 1.1.0's video predictor: hooks that act only on SAMURAI inference states.

:func:`enable_samurai` marks one inference state; :func:`install_samurai` (idempotent)
wraps the predictor so that, while it tracks a frame of a marked state, SAMURAI's rules
(:mod:`refine.samurai`) replace SAM2's. Plain states in the same process run sam2's code
unchanged. The hooks, in the order SAM2 meets them on a tracked frame:

* ``propagate_in_video_preflight`` (run as each pass begins): restarts every object's Kalman filter;
* ``_run_single_frame_inference``: notes which object and frame is tracked (in a
  thread-local, so concurrent states in other threads are not affected), starts the
  object's filter from its prompt mask's box, and afterwards records the frame's scores;
* ``_prepare_memory_conditioned_features``: computes the memory SAMURAI selects (the
  conditioning frames as in SAM2, then the selected frames nearest last);
* ``memory_attention`` (pre-hook, before the float32 upcast): swaps SAM2's spatial
  memory for that one; the object pointers stay SAM2's (the last frames);
* ``sam_mask_decoder`` (forward hook): applies the presence threshold
  (``logit > min_obj_score``, by handing SAM2 ``logit − min_obj_score`` to compare with 0)
  and the mask choice (by handing SAM2 an IoU row whose argmax is SAMURAI's choice);
* ``_forward_sam_heads``: gives SAM2's callers back the decoder's true IoUs and logits.

With ``min_obj_score = 0``, ``kf_weight = 0`` and every memory threshold at −∞ each hook
hands SAM2 exactly what it would have computed (tests check masks are bitwise equal).
"""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from refine.errors import InputError
from refine.memory import MemoryConfig
from refine.samurai import Box, FrameScore, ObjectMotion, frames_to_keep, select_memory

STATE_KEY = "refine_samurai"
NO_OBJ_SCORE = -1024.0  # sam2's placeholder logit for absent objects


@dataclass
class SamuraiState:
    """SAMURAI's per-object memory of one inference state: filters (this pass) and the
    scores of every tracked frame (both passes: the reverse pass reads forward frames)."""

    cfg: MemoryConfig
    motion: dict[int, ObjectMotion] = field(default_factory=dict)
    scores: dict[int, dict[int, FrameScore]] = field(default_factory=dict)


@dataclass
class _Step:
    """One object on one frame, while SAM2 runs it."""

    samurai: SamuraiState
    obj_idx: int
    tracking: bool
    raw: tuple | None = None  # the decoder's (ious, object_score_logits)
    memory: tuple | None = None  # SAMURAI's (memory, memory_pos) without pointers
    score: FrameScore | None = None


def enable_samurai(predictor, state: dict, cfg: MemoryConfig) -> None:
    """Make ``state`` track with SAMURAI's memory (before any prompt is added)."""
    install_samurai(predictor)
    state[STATE_KEY] = SamuraiState(cfg)


def _current(predictor) -> _Step | None:
    return getattr(predictor.refine_samurai_local, "step", None)


def mask_box(mask: torch.Tensor) -> Box | None:
    """Pixel extents (x1, y1, x2 = last column + 1, y2) of a [H, W] bool mask; None if empty."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    if len(rows) == 0:
        return None
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return (float(cols[0]), float(rows[0]), float(cols[-1]) + 1, float(rows[-1]) + 1)


def _high_res(predictor, low_res: torch.Tensor) -> torch.Tensor:
    """[B, M, h, w] logits → [B, M, S, S] at the model's input size, as SAM2 upsamples."""
    size = (predictor.image_size, predictor.image_size)
    return F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)


def _prompt_box(predictor, output_dict: dict, frame_idx: int) -> Box | None:
    """Box of the object's conditioning mask nearest ``frame_idx`` (its prompt)."""
    cond = output_dict["cond_frame_outputs"]
    if not cond:
        return None
    nearest = min(cond, key=lambda t: (abs(t - frame_idx), t))
    masks = cond[nearest]["pred_masks"].to(predictor.device)
    return mask_box(_high_res(predictor, masks)[0, 0] > 0)


def _memory_settings(predictor, state: dict) -> tuple[int, int, int]:
    """(slots, cap, num_frames): SAM2's non-conditioning memories, SAMURAI's candidate cap
    (max_obj_ptrs_in_encoder − 1, as the reference) and the video length."""
    return (
        predictor.num_maskmem - 1,
        predictor.max_obj_ptrs_in_encoder - 1,
        state["num_frames"],
    )


def _selected_memory(predictor, step: _Step, frame_idx, output_dict, feats, reverse, num_frames):
    """(memory, memory_pos) [L, B, C] of the conditioning frames and SAMURAI's selection,
    built as SAM2 builds its own (same order: conditioning frames, then farthest first)."""
    from sam2.modeling.sam2_utils import select_closest_cond_frames

    p = predictor
    cond, _ = select_closest_cond_frames(
        frame_idx, output_dict["cond_frame_outputs"], p.max_cond_frames_in_attn
    )
    slots, cap, _ = _memory_settings(p, {"num_frames": num_frames})
    scores = step.samurai.scores.get(step.obj_idx, {})
    frames = select_memory(scores, frame_idx, reverse, step.samurai.cfg, slots, cap, num_frames)
    non_cond = output_dict["non_cond_frame_outputs"]
    t_pos_and_prevs = [(0, out) for out in cond.values()]
    t_pos_and_prevs += [(slots - i, non_cond.get(f)) for i, f in reversed(list(enumerate(frames)))]
    device = feats.device
    memory, pos = [], []
    for t_pos, prev in t_pos_and_prevs:
        if prev is None:
            continue
        memory.append(
            prev["maskmem_features"].to(device, non_blocking=True).flatten(2).permute(2, 0, 1)
        )
        enc = prev["maskmem_pos_enc"][-1].to(device).flatten(2).permute(2, 0, 1)
        pos.append(enc + p.maskmem_tpos_enc[p.num_maskmem - t_pos - 1])
    return torch.cat(memory, dim=0), torch.cat(pos, dim=0)


def install_samurai(predictor) -> None:
    """Wrap ``predictor`` for SAMURAI states (idempotent; see the module docstring)."""
    if getattr(predictor, "refine_samurai_local", None) is not None:
        return
    if predictor.soft_no_obj_ptr:
        raise InputError("the samurai memory needs a SAM2 config with soft_no_obj_ptr off")
    predictor.refine_samurai_local = threading.local()
    originals = {
        name: getattr(predictor, name)
        for name in (
            "propagate_in_video_preflight",
            "_run_single_frame_inference",
            "_prepare_memory_conditioned_features",
            "_forward_sam_heads",
        )
    }

    def propagate_in_video_preflight(self, inference_state):  # runs as each pass begins
        samurai = inference_state.get(STATE_KEY)
        if samurai is not None:
            samurai.motion.clear()
        return originals["propagate_in_video_preflight"](inference_state)

    def _run_single_frame_inference(self, inference_state, output_dict, frame_idx, **kwargs):
        samurai = inference_state.get(STATE_KEY)
        if samurai is None:
            return originals["_run_single_frame_inference"](
                inference_state=inference_state,
                output_dict=output_dict,
                frame_idx=frame_idx,
                **kwargs,
            )
        per_obj = inference_state["output_dict_per_obj"]
        obj_idx = next((i for i, d in per_obj.items() if d is output_dict), -1)
        tracking = (
            obj_idx >= 0
            and not kwargs["is_init_cond_frame"]
            and (kwargs["point_inputs"] is None and kwargs["mask_inputs"] is None)
        )
        if tracking and obj_idx not in samurai.motion:
            box = _prompt_box(self, output_dict, frame_idx)
            samurai.motion[obj_idx] = ObjectMotion(samurai.cfg, box)
        step = _Step(samurai, obj_idx, tracking)
        self.refine_samurai_local.step = step
        try:
            out = originals["_run_single_frame_inference"](
                inference_state=inference_state,
                output_dict=output_dict,
                frame_idx=frame_idx,
                **kwargs,
            )
        finally:
            self.refine_samurai_local.step = None
        if step.score is not None:
            samurai.scores.setdefault(obj_idx, {})[frame_idx] = step.score
        return out

    def _prepare_memory_conditioned_features(self, *args, **kwargs):
        step = _current(self)
        if (
            step is not None
            and step.tracking
            and self.num_maskmem > 0
            and not kwargs["is_init_cond_frame"]
        ):
            step.memory = _selected_memory(
                self,
                step,
                kwargs["frame_idx"],
                kwargs["output_dict"],
                kwargs["current_vision_feats"][-1],
                kwargs["track_in_reverse"],
                kwargs["num_frames"],
            )
        return originals["_prepare_memory_conditioned_features"](*args, **kwargs)

    def _forward_sam_heads(self, *args, **kwargs):
        out = originals["_forward_sam_heads"](*args, **kwargs)
        step = _current(self)
        if step is None or step.raw is None:
            return out
        ious, logits = step.raw
        step.raw = None
        return (*out[:2], ious, *out[3:6], logits)

    def swap_memory(module, args, kwargs):
        step = _current(predictor)
        if step is None or step.memory is None:
            return None
        memory, pos = step.memory
        step.memory = None
        split = kwargs["memory"].shape[0] - kwargs["num_obj_ptr_tokens"]
        kwargs["memory"] = torch.cat([memory, kwargs["memory"][split:]], dim=0)
        kwargs["memory_pos"] = torch.cat([pos, kwargs["memory_pos"][split:]], dim=0)
        return args, kwargs

    def choose_mask(module, args, output):
        step = _current(predictor)
        if step is None:
            return None
        masks, ious, tokens, logits = output
        step.raw = (ious, logits)
        cfg = step.samurai.cfg
        if step.tracking:
            k, kf_score = 0, None
            if masks.shape[1] > 1:
                present = logits > cfg.min_obj_score
                gated = torch.where(present[:, None, None], masks, NO_OBJ_SCORE)
                high = _high_res(predictor, gated)[0] > 0
                motion = step.samurai.motion[step.obj_idx]
                k, kf_score = motion.choose(
                    ious[0].float().cpu().numpy(), lambda i: mask_box(high[i])
                )
                ious = torch.zeros_like(ious)
                ious[:, k] = 1
            iou = float(step.raw[0][0, k])
            step.score = FrameScore(iou, float(logits[0, 0]), kf_score)
        return masks, ious, tokens, logits - cfg.min_obj_score

    predictor.sam_mask_decoder.register_forward_hook(choose_mask)
    predictor.memory_attention.register_forward_pre_hook(
        swap_memory, with_kwargs=True, prepend=True
    )
    for name, fn in (
        ("propagate_in_video_preflight", propagate_in_video_preflight),
        ("_run_single_frame_inference", _run_single_frame_inference),
        ("_prepare_memory_conditioned_features", _prepare_memory_conditioned_features),
        ("_forward_sam_heads", _forward_sam_heads),
    ):
        setattr(predictor, name, types.MethodType(fn, predictor))


def protected_frames(
    predictor, state: dict, frame: int, reverse: bool, start: int
) -> dict[int, set[int]]:
    """Per object index, the non-conditioning frames whose outputs SAMURAI's memory selection
    can still read after ``frame`` (empty for plain SAM2 states). Pruning must keep them."""
    samurai = state.get(STATE_KEY)
    if samurai is None:
        return {}
    slots, cap, n = _memory_settings(predictor, state)
    return {
        obj: frames_to_keep(scores, frame, reverse, start, samurai.cfg, slots, cap, n)
        for obj, scores in samurai.scores.items()
    }
