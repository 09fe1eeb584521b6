"""Compact, streamed results: RLE storage, per-frame stage-1 upsampling, lazy stage-1
members, and batch memory that does not grow with the number of expressions."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from refine.bench_batch_memory import write_inputs
from refine.frames import FrameSource
from refine.fusion import fuse
from refine.npz_member import NpzMember
from refine.pipeline import refine_video
from refine.rle_masks import RleMasks
from refine.stage1 import load_stage1_npz
from refine.testing import StaticPropagator
from refine.upsample import upsample_masks
from tests.clips import random_expression, textured_frames, write_clip


def test_rle_masks_round_trip():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 3, 17, 23)) > 0.6
    masks[1] = False
    rle = RleMasks.from_array(masks)
    np.testing.assert_array_equal(rle.to_array(), masks)
    np.testing.assert_array_equal(rle.union(2), masks[2].any(0))
    assert rle[3].dtype == bool and rle[3].shape == (3, 17, 23)
    empty = RleMasks(2, 0, 5, 6)
    empty[0] = np.zeros((0, 5, 6), bool)
    assert empty[0].shape == (0, 5, 6) and not empty.union(1).any()
    with pytest.raises(ValueError):
        rle[0] = masks[0, :2]


def test_per_frame_upsampling_is_bitwise_the_clip_upsampling():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (7, 3, 9, 13)).astype(np.float16)
    clip = upsample_masks(logits, (50, 71))
    for t in range(7):
        np.testing.assert_array_equal(upsample_masks(logits[t : t + 1], (50, 71))[0], clip[t])


def test_lazy_stage1_reads_members_on_demand(tmp_path):
    root = str(tmp_path)
    rng = np.random.default_rng(2)
    exps = {str(i): random_expression(rng, 5, 3, (6, 8), [(i, 0.9)]) for i in range(3)}
    write_clip(root, "v", textured_frames(5, 24, 32), exps)
    eager = load_stage1_npz(f"{root}/stage1/v.npz")
    lazy = load_stage1_npz(f"{root}/stage1/v.npz", lazy=True)
    for exp_id, exp in lazy.expressions.items():
        assert isinstance(exp.masks, NpzMember)
        np.testing.assert_array_equal(
            exp.masks[:, [0, 2]], eager.expressions[exp_id].masks[:, [0, 2]]
        )
        np.testing.assert_array_equal(exp.scores, eager.expressions[exp_id].scores)


def test_results_decode_to_the_whole_clip_fusion():
    """Per-frame streamed masks and the whole-clip arrays are today's full-array fusion."""
    t, h, w = 6, 30, 40
    rng = np.random.default_rng(3)
    exps = {
        str(i): random_expression(rng, t, 4, (8, 10), [(i, 0.9), (5 - i, 0.8)]) for i in range(3)
    }
    from refine.stage1 import VideoStage1

    stage1 = VideoStage1((h, w), [f"{i:05d}" for i in range(t)], exps)
    frames = FrameSource.from_arrays(textured_frames(t, h, w))
    for r in refine_video(frames, stage1, StaticPropagator()):
        objects = r.sam2_objects
        ori = upsample_masks(exps[r.exp_id].masks[:, r.kept], (h, w)).any(1)
        fused, decision = fuse(ori, objects.any(1))
        np.testing.assert_array_equal(r.stage1, ori)
        np.testing.assert_array_equal(r.fused, fused)
        assert (r.decision.valid, r.decision.shrunk, r.decision.multi) == (
            decision.valid,
            decision.shrunk,
            decision.multi,
        )
        np.testing.assert_array_equal(r.decision.area_stage1, decision.area_stage1)
        np.testing.assert_array_equal(r.decision.area_sam2, decision.area_sam2)
        for i in range(t):
            np.testing.assert_array_equal(r.fused_frame(i), fused[i])
            np.testing.assert_array_equal(r.sam2_objects_frame(i), objects[i])
        assert r.mask_bytes < objects.size // 8  # compact: under a bit per pixel


def _peak_rss_gb(tmp_path, e: int) -> float:
    root = str(tmp_path / f"data-{e}")
    data, stage1 = write_inputs(root, 24, 360, 640, e, 5, (90, 160))
    cmd = [sys.executable, "-m", "refine.bench_batch_memory", "lockstep", data, stage1]
    proc = subprocess.run(
        [*cmd, str(tmp_path / f"out-{e}"), "tiny", "64"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(tmp_path / f"out-{e}" / "v0")) == e
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_gb"]


def test_batch_peak_memory_does_not_grow_with_expressions(tmp_path):
    """24 frames at 640x360: the full-array pipeline held ~35 MB more per expression
    (stage-1, SAM2, fused and per-object masks, and the stage-1 logits) — ~280 MB for
    8 more expressions. Streaming holds one expression's masks at a time."""
    small, large = _peak_rss_gb(tmp_path, 2), _peak_rss_gb(tmp_path, 10)
    assert large - small < 0.1, f"peak RSS {small:.3f} GB at E=2, {large:.3f} GB at E=10"
