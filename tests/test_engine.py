"""SAM2 engine: state layout, preprocessing, the shared feature cache (random tiny SAM2, CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from refine.dataset import MevisDataset
from refine.feature_cache import FeatureCache
from refine.frames import FrameSource
from refine.models import ModelSpec, get_predictor
from refine.pipeline import refine_video
from refine.propagation import Sam2Propagator
from refine.sam2_patches import CACHE_KEY, new_inference_state
from refine.stage1 import ExpressionStage1, load_stage1_npz
from refine.synthetic import textured_frames
from tests.clips import run_args

EXAMPLES = os.path.abspath("examples/data")
SPEC = ModelSpec("tiny", "cpu", random_weights=True, seed=0, image_size=128)


@pytest.fixture(scope="module")
def birds():
    info = MevisDataset(EXAMPLES).video("birds")
    return info, load_stage1_npz(f"{EXAMPLES}/stage1/birds.npz")


def test_state_has_init_state_keys(birds):
    info, _ = birds
    pred = get_predictor(SPEC)
    ref = pred.init_state(info.frames_dir)
    frames = info.frame_source()
    ours = new_inference_state(pred, frames.bind(pred.image_size), frames.height, frames.width)
    assert set(ours) - {CACHE_KEY} == set(ref)
    assert (ours["video_height"], ours["video_width"]) == (ref["video_height"], ref["video_width"])
    assert ours["num_frames"] == ref["num_frames"] == 12


def test_frame_preprocessing_is_bitwise_sam2s(birds):
    from sam2.utils.misc import load_video_frames

    info, _ = birds
    images, h, w = load_video_frames(
        info.frames_dir, 128, offload_video_to_cpu=True, compute_device=torch.device("cpu")
    )
    frames = info.frame_source()
    assert (h, w) == (frames.height, frames.width)
    for t in (0, 5, 11):
        assert torch.equal(frames.model_input(t, 128), images[t])


def _track(birds, cache_mb):
    info, s1 = birds
    prop = Sam2Propagator(SPEC, cache_mb=cache_mb)
    frames = info.frame_source()
    before = prop.encoder_calls
    results = list(refine_video(frames, s1, prop))
    return results, prop.encoder_calls - before, frames


def test_feature_cache_encodes_each_frame_once_with_identical_masks(birds):
    shared, calls_shared, frames = _track(birds, None)
    per_exp, calls_plain, _ = _track(birds, 0)
    assert calls_shared == 12  # 2 expressions, both directions: each frame encoded once
    assert frames.decode_count == 12
    # SAM2's own one-frame cache: every expression re-encodes its frames. birds/0
    # prompts frame 0 (1) and runs forward over 1..11 (11); birds/1 prompts frame 6 (1),
    # runs forward over 7..11 (5) and reverse over 5..0 (6; frame 6 is its prompt frame)
    assert calls_plain == 12 + 12
    for a, b in zip(shared, per_exp):
        np.testing.assert_array_equal(a.sam2_objects, b.sam2_objects)
        np.testing.assert_array_equal(a.fused, b.fused)
    assert any(r.sam2.any() for r in shared)


def test_bounded_cache_evicts_and_offloads():
    def entry(n):
        img = torch.zeros(1, 3, 4, 4)
        return img, {"backbone_fpn": [torch.zeros(n)], "vision_pos_enc": [torch.zeros(n)]}

    one = 48 * 4 + 1000 * 4  # bytes of entry(1000); the equal positional encodings are shared
    cache = FeatureCache(max_mb=2.5 * one / 2**20, offload=True, device="cpu")
    for t in range(4):
        cache.put(t, entry(1000))
    assert len(cache) == 2 and cache.evictions == 2 and cache.bytes == 2 * one
    assert cache.get(0) is None and cache.get(3) is not None
    cache.get(2)
    cache.put(4, entry(1000))
    assert cache.get(3) is None and cache.get(2) is not None  # LRU, not FIFO
    a, b = cache.get(2), cache.get(4)
    assert a[1]["vision_pos_enc"][0] is b[1]["vision_pos_enc"][0]
    empty = FeatureCache(max_mb=0)
    empty.put(0, entry(10))
    assert len(empty) == 0 and empty.get(0) is None


def test_two_workers_write_the_same_masks_as_one(tmp_path):
    def base(out):
        return [sys.executable, "-m", "refine", *run_args(EXAMPLES, out)]

    one = subprocess.run(base(tmp_path / "one"), capture_output=True, text=True)
    two = subprocess.run(
        [*base(tmp_path / "two"), "--workers", "2"], capture_output=True, text=True
    )
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*.png")}
    b = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*.png")}
    assert len(a) == 48 and a == b
    assert "cpu [1]" in two.stderr  # the second worker did run


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    from tests.clips import random_expression, textured_frames, write_clip

    root = str(tmp_path_factory.mktemp("long"))
    rng = np.random.default_rng(11)
    t = 40  # longer than SAM2's memory / pointer window, so pruning matters
    exps = {
        "0": random_expression(rng, t, 3, (12, 16), [(25, 0.9), (5, 0.8)]),
        "1": random_expression(rng, t, 2, (12, 16), [(0, 0.9)]),
        "2": random_expression(rng, t, 2, (12, 16), [(39, 0.7)]),
    }
    write_clip(root, "long", textured_frames(t, 48, 64, seed=5), exps)
    info = MevisDataset(root).video("long")
    return info, load_stage1_npz(f"{root}/stage1/long.npz")


def test_lockstep_with_pruning_and_a_tiny_cache_matches_sequential(long_clip):
    info, s1 = long_clip
    seq = Sam2Propagator(SPEC, cache_mb=None, schedule="sequential")
    ref = refine_video(info.frame_source(), s1, seq)
    frames = info.frame_source()
    lock = Sam2Propagator(SPEC, cache_mb=1.0, schedule="lockstep")  # 2 frames at 128
    states_seen = []
    original = lock.predictor.propagate_in_video

    def spy(state, **kw):
        states_seen.append(state)
        return original(state, **kw)

    lock.predictor.propagate_in_video = spy
    before = lock.encoder_calls
    try:
        got = refine_video(frames, s1, lock)
    finally:
        del lock.predictor.propagate_in_video
    calls = lock.encoder_calls - before
    assert lock.last_cache.evictions > 0
    # forward sweep from frame 0 (40 frames) + reverse sweep from frame 39 (40) + prompts
    assert calls <= 2 * 40 + 4
    for a, b in zip(ref, got):
        assert a.exp_id == b.exp_id
        np.testing.assert_array_equal(a.sam2_objects, b.sam2_objects)
        np.testing.assert_array_equal(a.fused, b.fused)
    assert sum(r.sam2.any() for r in got) >= 2
    # pruned: each state kept only a window of non-conditioning outputs per object
    kept = [
        len(o["non_cond_frame_outputs"])
        for s in states_seen
        for o in s["output_dict_per_obj"].values()
    ]
    assert kept and max(kept) <= 2 * 17 + 1


def test_feature_cache_is_kept_per_precision():
    """A FrameSource reused at another precision must not serve the first one's features."""
    from refine.prompts import Prompt

    frames = FrameSource.from_arrays(textured_frames(3, 32, 40))
    mask = np.zeros((32, 40), bool)
    mask[8:20, 10:30] = True
    prompts = [[Prompt(0, 0, mask=mask)]]
    fp32 = Sam2Propagator(SPEC, "fp32", cache_mb=None)
    list(fp32.track(frames, prompts))
    bf16 = Sam2Propagator(SPEC, "bf16", cache_mb=None)
    before = bf16.encoder_calls
    list(bf16.track(frames, prompts))
    assert bf16.encoder_calls - before == 3  # its own features, encoded under bf16
    assert fp32.feature_cache(frames) is not bf16.feature_cache(frames)


def _two_apart_queries(t: int) -> ExpressionStage1:
    """Two queries far apart (top-left, bottom-right discs at 12x16), peaking on frames 0
    and 3: each prompt frame's stage-1 union spans both, SAM2's only the prompted one."""
    yy, xx = np.mgrid[:12, :16]
    a = 2.5 - np.hypot(yy - 2, xx - 3)
    b = 2.5 - np.hypot(yy - 9, xx - 12)
    masks = np.broadcast_to(np.stack([a, b])[None], (t, 2, 12, 16)).astype(np.float32)
    scores = np.full((t, 2), 0.5, np.float32)
    scores[0, 0] = scores[3, 1] = 0.9
    return ExpressionStage1(scores, np.full((t, 2, 4), 0.2, np.float32), masks)


def test_union_branch_end_to_end_with_real_sam2(tmp_path):
    """Random-weight SAM2 (seed 6, 64 px) loses tracked objects on unprompted frames, so
    only the prompt frames are comparable, and on both SAM2 holds one of two objects:
    shrunk on 2 of 2 frames → multi → the written masks are SAM2 ∪ stage 1."""
    from refine.batch import BatchConfig, marker_path, run_batch
    from refine.mask_io import read_mask_png
    from tests.clips import write_clip

    t = 6
    root = str(tmp_path / "data")
    write_clip(root, "v", textured_frames(t, 48, 64), {"0": _two_apart_queries(t)})
    spec = ModelSpec("tiny", "cpu", random_weights=True, seed=6, image_size=64)
    stage1 = load_stage1_npz(f"{root}/stage1/v.npz")
    (r,) = refine_video(MevisDataset(root).video("v").frame_source(), stage1, Sam2Propagator(spec))
    assert r.decision.multi and r.decision.valid == 2 and r.decision.shrunk == 2
    np.testing.assert_array_equal(r.fused, r.sam2 | r.stage1)
    assert (r.fused != r.sam2).any()  # the union adds the lost object
    cfg = BatchConfig(root, f"{root}/stage1", str(tmp_path / "out"), spec)
    (report,) = run_batch(cfg, None, ["cpu"], Sam2Propagator(spec))
    assert report.written == ["0"]
    with open(marker_path(cfg.out, "v", "0")) as f:
        assert json.load(f)["multi"] is True
    for i in range(t):
        np.testing.assert_array_equal(read_mask_png(f"{cfg.out}/v/0/{i:05d}.png"), r.fused[i])
