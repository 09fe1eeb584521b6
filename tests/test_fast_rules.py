"""Fast checks of single rules: propagation order, the logit threshold, the stage-1
upsampling mode, the PNG values, and θ from the command line."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import refine.propagation as propagation
from refine.frames import FrameSource
from refine.models import ModelSpec
from refine.prompts import Prompt
from refine.propagation import Sam2Propagator
from refine.upsample import upsample_masks

T, H, W = 6, 4, 5
FORWARD = [0.5, 0.0, 1e-6, -1e-6]  # pixel values of row 0 on the forward pass
REVERSE = [-0.5, 0.0, -1e-6, 1e-6]  # and on the reverse pass


class OrderPredictor:
    """Stands in for SAM2: logits say which pass made them; records the passes."""

    image_size = 32
    memory_temporal_stride_for_eval = 1
    num_maskmem = 7
    max_obj_ptrs_in_encoder = 16
    refine_encoder_calls = 0

    def __init__(self):
        self.passes = []

    def add_new_mask(self, state, frame_idx, obj_id, mask):
        state["objects"] += 1

    def propagate_in_video(self, state, start_frame_idx, reverse):
        self.passes.append((start_frame_idx, reverse))
        frames = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, T)
        for t in frames:
            logits = torch.full((state["objects"], 1, H, W), -1.0)
            logits[:, 0, 0, :4] = torch.tensor(REVERSE if reverse else FORWARD)
            yield t, list(range(state["objects"])), logits


@pytest.fixture
def fake_sam2(monkeypatch):
    pred = OrderPredictor()
    monkeypatch.setattr(propagation, "get_predictor", lambda spec: pred)
    import refine.sam2_patches

    def new_state(predictor, images, h, w, cache, memory):
        return {"objects": 0, "output_dict_per_obj": {}}

    monkeypatch.setattr(refine.sam2_patches, "new_inference_state", new_state)
    return pred


@pytest.mark.parametrize("schedule", ["lockstep", "sequential"])
def test_forward_from_first_prompt_then_reverse_and_reverse_wins(fake_sam2, schedule):
    frames = FrameSource.from_arrays(np.zeros((T, H, W, 3), np.uint8))
    mask = np.ones((H, W), bool)
    prompt_sets = [[Prompt(0, 3, mask=mask), Prompt(1, 2, mask=mask)], [Prompt(0, 0, mask=mask)]]
    prop = Sam2Propagator(ModelSpec("tiny", "cpu", random_weights=True), schedule=schedule)
    first, second = (np.asarray(m.to_array()) for m in prop.track(frames, prompt_sets))
    # the first set starts at its earliest prompt (2), the second at 0: no reverse pass
    assert sorted(fake_sam2.passes) == [(0, False), (2, False), (2, True)]
    fwd = np.array(FORWARD) > 0
    rev = np.array(REVERSE) > 0
    for t in range(T):
        expected = rev if t <= 2 else fwd  # frame 2 comes from both passes: reverse wins
        for obj in range(2):
            np.testing.assert_array_equal(first[t, obj, 0, :4], expected, err_msg=f"t={t}")
        np.testing.assert_array_equal(second[t, 0, 0, :4], fwd)
    assert not first[:, :, 1:].any()  # logits -1 elsewhere


def test_stage1_upsampling_is_bilinear_without_corner_alignment():
    # one row [0, 1, -3] → 6 columns; bilinear with align_corners=False samples at
    # x = (i + 0.5)/2 - 0.5: values 0, 0.25, 0.75, 0, -2, -3 → > 0 at columns 1 and 2.
    # (nearest gives columns 2, 3; align_corners=True gives 1, 2, 3; ≥ 0 adds 0 and 3)
    logits = np.array([0, 1, -3], np.float32)[None, None, None].repeat(2, axis=2)
    got = upsample_masks(logits, (4, 6))[0, 0]
    assert got.tolist() == [[False, True, True, False, False, False]] * 4


def test_batch_pngs_are_8_bit_0_or_255(tmp_path):
    from refine.batch import BatchConfig, run_batch
    from refine.testing import StaticPropagator
    from tests.clips import random_expression, textured_frames, write_clip

    rng = np.random.default_rng(0)
    write_clip(
        str(tmp_path),
        "v",
        textured_frames(3, 24, 32),
        {"0": random_expression(rng, 3, 2, (6, 8), [(1, 0.9)])},
    )
    cfg = BatchConfig(
        str(tmp_path),
        str(tmp_path / "stage1"),
        str(tmp_path / "out"),
        ModelSpec("tiny", random_weights=True),
    )
    (report,) = run_batch(cfg, None, ["cpu"], StaticPropagator())
    assert report.written == ["0"]
    values = set()
    for name in os.listdir(tmp_path / "out" / "v" / "0"):
        with Image.open(tmp_path / "out" / "v" / "0" / name) as img:
            assert img.mode == "L"
            values |= set(np.unique(np.asarray(img)).tolist())
    assert values == {0, 255}


def test_threshold_from_the_cli_reaches_the_pipeline(tmp_path, monkeypatch):
    import refine.batch
    from refine.cli import main
    from refine.stage1 import ExpressionStage1
    from refine.testing import StaticPropagator
    from tests.clips import run_args, textured_frames, write_clip

    # query 0 averages 0.45 (kept at the default θ = 0.275, dropped at θ = 0.5); query 1 0.9
    scores = np.array([[0.45, 0.9]] * 3, np.float32)
    masks = np.full((3, 2, 6, 8), 2.0, np.float32)
    exp = ExpressionStage1(scores, np.full((3, 2, 4), 0.3, np.float32), masks)
    write_clip(str(tmp_path), "v", textured_frames(3, 24, 32), {"0": exp})
    seen = []

    def make(cfg):
        seen.append(cfg.params.threshold)
        return StaticPropagator()

    monkeypatch.setattr(refine.batch, "make_propagator", make)
    kept = {}
    for thr in (None, "0.5"):
        out = tmp_path / f"out-{thr}"
        extra = ["--threshold", thr] if thr else []
        assert main(run_args(str(tmp_path), str(out), *extra)) == 0
        with open(out / ".refine" / "v" / "0.json") as f:
            kept[thr] = json.load(f)["kept_queries"]
    assert seen == [0.275, 0.5]
    assert kept == {None: [0, 1], "0.5": [1]}
