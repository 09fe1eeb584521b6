"""Uploads → arrays: video files, zips of frames and of PNG masks, and unsafe zips."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from refine.errors import InputError
from refine.overlay import Mp4Writer
from refine.video_io import (
    ZipLimits,
    check_zip_member_name,
    read_frames_zip,
    read_masks_zip,
    read_video,
    read_video_file,
)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _zip(path, entries: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return str(path)


def _frames(t: int = 3, h: int = 10, w: int = 14) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)


def test_frames_zip_orders_by_integer_stem_and_ignores_junk(tmp_path):
    frames = _frames(3)
    entries = {f"clip/{i * 5}.png": _png(f) for i, f in enumerate(frames)}
    entries["clip/notes.txt"] = b"ignored"
    entries["__MACOSX/clip/._0.png"] = b"junk"
    path = _zip(tmp_path / "frames.zip", dict(reversed(list(entries.items()))))
    video = read_frames_zip(path)
    assert video.frame_names == ["0", "5", "10"]
    assert video.fps is None
    np.testing.assert_array_equal(video.frames, frames)  # PNG is lossless


def test_frames_zip_reads_jpegs_via_read_video(tmp_path):
    yy, xx = np.mgrid[:16, :16]
    smooth = np.stack([yy * 10, xx * 10, 0 * xx + 128], -1).astype(np.uint8)
    frames = np.stack([smooth, 255 - smooth])
    path = _zip(tmp_path / "f.zip", {"00000.jpg": _jpg(frames[0]), "00001.jpg": _jpg(frames[1])})
    video = read_video(path)
    assert video.frames.shape == (2, 16, 16, 3)
    assert np.abs(video.frames.astype(int) - frames).mean() < 6  # JPEG is lossy


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"a/0.png": b"", "b/1.png": b""}, "one folder"),
        ({"0.png": b"not an image"}, "not a readable image"),
        ({"readme.txt": b"hi"}, "no jpg/jpeg/png files"),
        ({"frame_a.png": b""}, "is not an integer"),
    ],
)
def test_frames_zip_layout_errors(tmp_path, entries, message):
    path = _zip(tmp_path / "bad.zip", entries)
    with pytest.raises(InputError, match=message):
        read_frames_zip(path)


def test_frames_zip_rejects_mixed_frame_sizes(tmp_path):
    path = _zip(
        tmp_path / "sizes.zip",
        {"0.png": _png(_frames(1, 8, 8)[0]), "1.png": _png(_frames(1, 9, 8)[0])},
    )
    with pytest.raises(InputError, match="all frames must have one size"):
        read_frames_zip(path)


@pytest.mark.parametrize(
    "name", ["../evil.png", "a/../../evil.png", "/abs/0.png", "C:0.png", "dir\\0.png"]
)
def test_unsafe_member_names_are_rejected(tmp_path, name):
    with pytest.raises(InputError, match="not a safe relative path"):
        check_zip_member_name(name, "up.zip")
    path = _zip(tmp_path / "slip.zip", {name: _png(_frames(1)[0])})
    with pytest.raises(InputError, match="not a safe relative path"):
        read_frames_zip(path)


def test_symlink_entries_are_rejected(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("0.png", _png(_frames(1)[0]))
        info = zipfile.ZipInfo("1.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        read_frames_zip(str(path))


def test_entry_count_total_size_and_ratio_limits(tmp_path):
    many = _zip(tmp_path / "many.zip", {f"{i}.png": b"x" for i in range(6)})
    with pytest.raises(InputError, match="6 entries; at most 5"):
        read_frames_zip(many, ZipLimits(max_entries=5))
    big = _zip(tmp_path / "big.zip", {"0.png": b"\0" * 2048, "1.png": b"\0" * 2048})
    with pytest.raises(InputError, match="MiB uncompressed"):
        read_frames_zip(big, ZipLimits(max_total_bytes=3000))
    bomb = _zip(tmp_path / "bomb.zip", {"0.png": b"\0" * (4 * 2**20)})
    with pytest.raises(InputError, match="zip bomb"):
        read_frames_zip(bomb)


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"definitely not a zip")
    with pytest.raises(InputError, match="not a readable zip"):
        read_frames_zip(str(path))


def test_masks_zip_with_top_folder(tmp_path):
    m = np.zeros((2, 6, 8), np.uint8)
    m[0, 1:3, 2:5] = 255
    m[1, 4, 7] = 1
    entries = {}
    for exp in ("0", "1"):
        for t in range(2):
            entries[f"video/{exp}/0000{t}.png"] = _png(m[t] if exp == "0" else np.zeros_like(m[t]))
    masks = read_masks_zip(_zip(tmp_path / "m.zip", entries))
    assert masks.frame_names == ["00000", "00001"]
    assert sorted(masks.masks) == ["0", "1"]
    np.testing.assert_array_equal(masks.masks["0"], m > 0)
    assert not masks.masks["1"].any()


def test_masks_zip_rgb_png_counts_any_channel(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 2] = (0, 0, 9)
    masks = read_masks_zip(_zip(tmp_path / "c.zip", {"e/0.png": _png(rgb)}))
    assert masks.masks["e"].sum() == 1 and masks.masks["e"][0, 1, 2]


def test_masks_zip_errors(tmp_path):
    flat = _zip(tmp_path / "flat.zip", {"0.png": _png(np.zeros((4, 4), np.uint8))})
    with pytest.raises(InputError, match="<exp_id>/<frame>.png"):
        read_masks_zip(flat)
    uneven = _zip(
        tmp_path / "uneven.zip",
        {
            "0/0.png": _png(np.zeros((4, 4), np.uint8)),
            "0/1.png": _png(np.zeros((4, 4), np.uint8)),
            "1/0.png": _png(np.zeros((4, 4), np.uint8)),
        },
    )
    with pytest.raises(InputError, match="cover different frames"):
        read_masks_zip(uneven)


def test_video_file_round_trip(tmp_path):
    frames = np.zeros((5, 32, 48, 3), np.uint8)
    for t in range(5):
        frames[t, :, t * 8 : t * 8 + 8] = 255
    path = str(tmp_path / "clip.mp4")
    with Mp4Writer(path, 32, 48, fps=10) as w:
        for f in frames:
            w.write(f)
    video = read_video(path)
    assert video.frames.shape == (5, 32, 48, 3)
    assert video.frame_names == ["00000", "00001", "00002", "00003", "00004"]
    assert video.fps == pytest.approx(10)
    # H.264 is lossy, but the bright stripe stays where it was
    assert video.frames[3, :, 24:32].mean() > 200 and video.frames[3, :, :16].mean() < 60
    with pytest.raises(InputError, match="too long"):
        read_video_file(path, max_frames=3)


def test_broken_video_and_unknown_extension(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="ffmpeg"):
        read_video(str(bad))
    other = tmp_path / "clip.gif"
    other.write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="unsupported video upload"):
        read_video(str(other))
