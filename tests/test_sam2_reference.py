"""`refine run` vs an independent implementation of design §2 on the same random SAM2.

The reference below is written from design §2 alone: it reads the npz with numpy,
selects queries with torch, uses SAM2's own ``init_state`` on the JPEG folder (all
frames decoded up front, SAM2's one-frame feature cache), one state per expression,
forward then reverse propagation, and the fusion rule with integer arithmetic. The only
shared code is sam2 itself. Masks must agree pixel for pixel.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.clips import random_expression, textured_frames, write_clip

SEED, SIZE, T, H, W = 0, 256, 9, 72, 100


def _upcast(module, args, kwargs):
    if kwargs["memory"].dtype != torch.float32:
        kwargs["memory"] = kwargs["memory"].to(torch.float32)
    return args, kwargs


def reference_predictor(size: int = SIZE):
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(SEED)
    pred = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        None,
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={size}"],
    )
    pred.fill_hole_area = 0
    pred.memory_attention.register_forward_pre_hook(_upcast, with_kwargs=True)
    return pred


def bbox_area(m: np.ndarray) -> int:
    rows, cols = np.where(m.any(1))[0], np.where(m.any(0))[0]
    if len(rows) == 0:
        return 0
    return int((rows[-1] - rows[0]) * (cols[-1] - cols[0]))


def reference_masks(pred, video_dir: str, npz_path: str) -> dict[str, np.ndarray]:
    data = np.load(npz_path, allow_pickle=False)
    h, w = (int(x) for x in data["video_size"])
    exp_ids = sorted({k.split("/")[0] for k in data.files if k.endswith("/scores")})
    out = {}
    for exp_id in exp_ids:
        scores = torch.from_numpy(data[f"{exp_id}/scores"])
        masks = torch.from_numpy(data[f"{exp_id}/masks"]).float()
        t = scores.shape[0]
        valid = (scores > 0.275).float()
        avg = (scores * valid).sum(0) / (valid.sum(0) + 1e-6)
        keep = avg > 0.275
        if not keep.any():
            out[exp_id] = np.zeros((t, h, w), bool)
            continue
        ori = F.interpolate(masks[:, keep], size=(h, w), mode="bilinear", align_corners=False) > 0
        fids = scores[:, keep].argmax(0).tolist()
        state = pred.init_state(video_path=video_dir)
        seg = {}
        with torch.inference_mode():
            for obj, f in enumerate(fids):
                pred.add_new_mask(state, frame_idx=f, obj_id=obj, mask=ori[f, obj].numpy())
            for rev in (False, True):
                for fi, _, logits in pred.propagate_in_video(state, reverse=rev):
                    seg[fi] = (logits[:, 0] > 0).numpy()
        ori_u = ori.any(1).numpy()
        sam_u = np.stack([seg[i].any(0) for i in range(t)])
        valid_n = shrunk = 0
        for i in range(t):
            a_o, a_s = bbox_area(ori_u[i]), bbox_area(sam_u[i])
            if a_o > 0 and a_s > 0:
                valid_n += 1
                shrunk += a_s * 3 < a_o * 2
        out[exp_id] = (sam_u | ori_u) if shrunk * 2 > valid_n else sam_u
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ref"))
    rng = np.random.default_rng(7)
    exps = {
        # kept queries peaking on different frames (0 at 6, 1 at 2, 2 at 4)
        "0": random_expression(rng, T, 5, (18, 25), [(6, 0.9), (2, 0.8), (4, 0.7)]),
        # nothing kept
        "1": random_expression(rng, T, 3, (18, 25), []),
        # one query, peak on the first frame (no reverse pass)
        "2": random_expression(rng, T, 3, (36, 50), [(0, 0.95)]),
        # one query peaking on the last frame
        "3": random_expression(rng, T, 2, (9, 12), [(T - 1, 0.6)]),
    }
    write_clip(root, "vid", textured_frames(T, H, W, seed=3), exps)
    return root


def run_cli(clip: str, out: str, size: int, *extra: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "refine",
        "run",
        "--data",
        clip,
        "--stage1",
        f"{clip}/stage1",
        "--out",
        out,
        "--model",
        "tiny",
        "--random-weights",
        "--seed",
        str(SEED),
        "--image-size",
        str(size),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "MEANINGLESS" in proc.stderr


@pytest.mark.parametrize("schedule", ["lockstep", "sequential"])
def test_cli_matches_independent_reference(clip, tmp_path, schedule):
    """Streamed, run-length encoded masks are those of the whole-clip reference."""
    out = str(tmp_path / "out")
    run_cli(clip, out, SIZE, "--schedule", schedule)
    ref = reference_masks(reference_predictor(), f"{clip}/JPEGImages/vid", f"{clip}/stage1/vid.npz")
    assert_pngs_equal(out, ref, T)
    assert not ref["1"].any()  # no kept query → empty everywhere


def assert_pngs_equal(out: str, ref: dict[str, np.ndarray], t: int) -> None:
    assert sorted(os.listdir(f"{out}/vid")) == sorted(ref)
    nonempty = 0
    for exp_id, masks in ref.items():
        files = sorted(os.listdir(f"{out}/vid/{exp_id}"))
        assert files == [f"{i:05d}.png" for i in range(t)]
        for i, f in enumerate(files):
            png = np.asarray(Image.open(f"{out}/vid/{exp_id}/{f}"))
            assert png.dtype == np.uint8 and png.shape == (H, W)
            assert set(np.unique(png)) <= {0, 255}
            np.testing.assert_array_equal(png == 255, masks[i], err_msg=f"{exp_id}/{f}")
        nonempty += masks.any()
    assert nonempty >= 2  # the comparison is not between empty masks only


LONG_T, LONG_SIZE = 44, 128


def test_pruned_states_match_plain_sam2_on_a_clip_longer_than_the_window(tmp_path):
    """State pruning keeps what SAM2 reads: 44 frames (SAM2's read window is 17), objects
    prompted late and at different frames, lockstep, against plain ``init_state``."""
    root = str(tmp_path / "long")
    rng = np.random.default_rng(11)
    exps = {
        # objects prompted on frames 40 and 20: forward 20→43 adds the second one late,
        # reverse 40→0 runs 41 frames
        "0": random_expression(rng, LONG_T, 3, (18, 25), [(20, 0.9), (40, 0.8)]),
        "1": random_expression(rng, LONG_T, 2, (18, 25), [(LONG_T - 1, 0.9)]),
        "2": random_expression(rng, LONG_T, 2, (18, 25), [(30, 0.9)]),
    }
    write_clip(root, "vid", textured_frames(LONG_T, H, W, seed=5), exps)
    out = str(tmp_path / "out")
    run_cli(root, out, LONG_SIZE, "--cache-mb", "1")
    pred = reference_predictor(LONG_SIZE)
    ref = reference_masks(pred, f"{root}/JPEGImages/vid", f"{root}/stage1/vid.npz")
    assert_pngs_equal(out, ref, LONG_T)
