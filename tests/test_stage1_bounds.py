"""Stage-1 uploads are bounded before their masks are upsampled (queries, frames × queries ×
pixels, npz compression ratio), and the preview's memory does not scale with the queries."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

import refine.inspect.cases as cases
from refine.errors import InputError
from refine.inspect import case_from_upload, stage1_preview
from refine.limits import UploadLimits
from refine.selection import select_queries
from refine.stage1 import ExpressionStage1, VideoStage1, save_stage1_npz
from refine.upsample import upsample_masks


def _upload(tmp_path, t: int, n: int, size=(64, 80)) -> tuple[str, str]:
    """(zip of t black frames, stage-1 npz with n confident 1x1-mask queries)."""
    frames = tmp_path / "frames.zip"
    with zipfile.ZipFile(frames, "w") as zf:
        for i in range(t):
            buf = io.BytesIO()
            Image.fromarray(np.zeros((*size, 3), np.uint8)).save(buf, "PNG")
            zf.writestr(f"{i:05d}.png", buf.getvalue())
    exp = ExpressionStage1(
        np.full((t, n), 0.9, np.float32),
        np.full((t, n, 4), 0.5, np.float32),
        np.ones((t, n, 1, 1), np.float16),
    )
    npz = tmp_path / "stage1.npz"
    save_stage1_npz(str(npz), VideoStage1(size, [f"{i:05d}" for i in range(t)], {"0": exp}))
    return str(frames), str(npz)


def test_too_many_queries_are_refused_before_any_upsampling(tmp_path, monkeypatch):
    """The finding: 200 queries of 1x1 masks on one 1080p frame took the server to ~4 GiB."""
    frames, npz = _upload(tmp_path, 1, 200)
    monkeypatch.setattr(cases, "upsample_masks", lambda *a: pytest.fail("upsampled"))
    with pytest.raises(InputError, match="expression '0' has 200 queries; at most 50"):
        case_from_upload(frames, npz)


def test_frames_times_queries_times_pixels_is_bounded(tmp_path):
    frames, npz = _upload(tmp_path, 3, 10)
    work = 3 * 10 * 64 * 80
    with pytest.raises(
        InputError, match=r"expression '0' has 10 queries x 3 masks of 80x64: .* over the limit"
    ):
        case_from_upload(frames, npz, limits=UploadLimits(max_decoded_bytes=work - 1))
    case = case_from_upload(frames, npz, limits=UploadLimits(max_decoded_bytes=work * 2))
    assert case.preview("0", 0.275, 2).shape == (64, 80)


def test_an_npz_bomb_is_refused_by_its_compression_ratio(tmp_path):
    frames, _ = _upload(tmp_path, 2, 1)
    npz = tmp_path / "bomb.npz"
    np.savez_compressed(
        npz,
        format=np.array("refine-stage1/1"),
        video_size=np.array([64, 80]),
        frame_names=np.array(["00000", "00001"]),
        **{
            "0/scores": np.full((2, 1), 0.9, np.float32),
            "0/boxes": np.full((2, 1, 4), 0.5, np.float32),
            "0/masks": np.zeros((2, 1, 1024, 1024), np.float32),  # 8 MiB of zeros
        },
    )
    with pytest.raises(InputError, match=r"'0/masks.npy' expands \d+x \(limit 200x\)"):
        case_from_upload(frames, str(npz))


def test_the_preview_is_the_union_of_the_upsampled_kept_queries(monkeypatch):
    rng = np.random.default_rng(0)
    exp = ExpressionStage1(
        rng.uniform(0, 1, (4, 7)).astype(np.float32),
        np.zeros((4, 7, 4), np.float32),
        rng.normal(size=(4, 7, 5, 6)).astype(np.float16),
    )
    monkeypatch.setattr(cases, "_PREVIEW_CHUNK", 2 * 30 * 40)  # two queries at a time
    kept = select_queries(exp.scores, 0.3)
    expected = upsample_masks(exp.masks[:, kept], (30, 40)).any(axis=1)
    assert len(kept) > 2
    preview = stage1_preview(exp, 0.3, (30, 40))
    assert preview.nbytes == 4 * 30 * 40 // 8  # a bit a pixel
    assert np.array_equal(preview.array(), expected)
    assert np.array_equal(preview[2], expected[2])


def test_stage1_mask_zips_count_their_float16_logits(tmp_path):
    """A stage-1 zip's bool masks become float16 logits beside them: 3 bytes a pixel, not
    the 1 that the bound counted (the finding: "count every dtype expansion")."""
    frames, _ = _upload(tmp_path, 3, 1)
    masks = tmp_path / "masks.zip"
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 80), 255, np.uint8)).save(buf, "PNG")
    with zipfile.ZipFile(masks, "w") as zf:
        for e in range(2):
            for i in range(3):
                zf.writestr(f"{e}/{i:05d}.png", buf.getvalue())
    bools = 2 * 3 * 64 * 80
    with pytest.raises(InputError, match=r"2 expressions x 3 masks of 80x64: 90.0 KiB decoded"):
        case_from_upload(frames, str(masks), limits=UploadLimits(max_decoded_bytes=2 * bools))
    case = case_from_upload(frames, str(masks), limits=UploadLimits(max_decoded_bytes=3 * bools))
    assert case.expression("1").masks.dtype == np.float16
