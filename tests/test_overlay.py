"""Overlays, H.264 mp4s and diagnostics plots."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest

from refine.overlay import (
    STAGE_COLORS,
    area_ratio_plot,
    area_ratios,
    figure_to_rgb,
    mask_edges,
    overlay_mask,
    pad_even,
    score_plot,
    write_overlay_videos,
)


def test_overlay_tints_inside_outlines_edge_and_keeps_outside():
    frame = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    out = overlay_mask(frame, mask, (255, 0, 0), alpha=0.5)
    assert out is not frame and (frame == 100).all()
    np.testing.assert_array_equal(out[~mask], frame[~mask])
    np.testing.assert_array_equal(out[3, 3], [177, 50, 50])  # (100·128 + 255·128) >> 8
    np.testing.assert_array_equal(out[2, 2], [255, 0, 0])  # boundary pixel
    assert mask_edges(mask).sum() == 12  # the 4x4 square's ring
    np.testing.assert_array_equal(overlay_mask(frame, np.zeros((8, 8), bool), (1, 2, 3)), frame)
    with pytest.raises(ValueError, match="sizes differ"):
        overlay_mask(frame, np.zeros((4, 4), bool), (1, 2, 3))


def test_pad_even():
    assert pad_even(np.zeros((5, 7, 3), np.uint8)).shape == (6, 8, 3)
    f = np.zeros((4, 6, 3), np.uint8)
    assert pad_even(f) is f


def _probe(path: str) -> str:
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    return subprocess.run([exe, "-hide_banner", "-i", path], capture_output=True, text=True).stderr


def test_overlay_videos_are_h264_yuv420p_with_even_size(tmp_path):
    t, h, w = 4, 17, 23
    frames = np.full((t, h, w, 3), 90, np.uint8)
    masks = np.zeros((t, h, w), bool)
    masks[:, 3:9, 4:12] = True
    paths = {"stage1": str(tmp_path / "a.mp4"), "fused": str(tmp_path / "b.mp4")}
    seen = []
    out = write_overlay_videos(
        paths,
        lambda i: frames[i],
        {"stage1": masks, "fused": ~masks},
        {"stage1": STAGE_COLORS["stage1"], "fused": STAGE_COLORS["fused"]},
        fps=5,
        progress=lambda d, n: seen.append((d, n)),
    )
    assert out == paths and seen[-1] == (t, t)
    info = _probe(paths["stage1"])
    assert "h264" in info and "yuv420p" in info and "24x18" in info
    assert not list(tmp_path.glob("*.part.mp4"))
    decoded = list(imageio_ffmpeg.read_frames(paths["fused"]))
    assert len(decoded) == 1 + t  # metadata + frames


def test_area_ratios_are_nan_where_a_box_is_missing():
    r = area_ratios(np.array([10, 0, 8, 5]), np.array([5, 3, 0, 10]))
    assert r[0] == 0.5 and r[3] == 2.0 and np.isnan(r[1]) and np.isnan(r[2])


def test_score_plot_draws_threshold_and_marks_kept_queries():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.1]], np.float32)
    fig = score_plot(scores, 0.275, kept=[0], prompt_frames=[0])
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "q0 (kept)" in labels and "q1" in labels and "θ = 0.275" in labels
    theta = next(line for line in ax.get_lines() if line.get_label() == "θ = 0.275")
    assert list(theta.get_ydata()) == [0.275, 0.275]
    assert figure_to_rgb(fig).ndim == 3


def test_area_ratio_plot_colours_shrunk_frames_and_draws_rho():
    fig = area_ratio_plot(np.array([100, 100, 100, 0]), np.array([50, 90, 10, 5]), Fraction(2, 3))
    ax = fig.axes[0]
    rho = next(line for line in ax.get_lines() if line.get_label() == "ρ = 2/3")
    assert rho.get_ydata()[0] == pytest.approx(2 / 3)
    containers = {c.get_label(): len(c.patches) for c in ax.containers}
    assert containers == {"SAM2 ≥ ρ·stage 1": 1, "shrunk: SAM2 < ρ·stage 1": 2}
    assert "2 of 3 comparable frames shrunk" in ax.get_title()
