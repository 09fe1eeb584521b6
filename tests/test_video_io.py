"""Uploads → arrays: video files, zips of frames and of PNG masks, and unsafe zips."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from refine.errors import InputError
from refine.limits import UploadLimits
from refine.overlay import Mp4Writer
from refine.upload_zip import check_zip_member_name
from refine.video_io import (
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
    np.testing.assert_array_equal(video.frames.as_array(), frames)  # PNG is lossless


def test_frames_zip_reads_jpegs_via_read_video(tmp_path):
    yy, xx = np.mgrid[:16, :16]
    smooth = np.stack([yy * 10, xx * 10, 0 * xx + 128], -1).astype(np.uint8)
    frames = np.stack([smooth, 255 - smooth])
    path = _zip(tmp_path / "f.zip", {"00000.jpg": _jpg(frames[0]), "00001.jpg": _jpg(frames[1])})
    video = read_video(path)
    decoded = video.frames.as_array()
    assert decoded.shape == (2, 16, 16, 3)
    assert np.abs(decoded.astype(int) - frames).mean() < 6  # JPEG is lossy


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
        read_frames_zip(many, UploadLimits(max_zip_entries=5))
    big = _zip(tmp_path / "big.zip", {"0.png": b"\0" * 2048, "1.png": b"\0" * 2048})
    with pytest.raises(InputError, match="more than 2.9 KiB uncompressed"):
        read_frames_zip(big, UploadLimits(max_unpacked_bytes=3000))
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


def test_masks_zip_rgb_png_reads_as_the_official_gray_conversion(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 2] = (0, 0, 9)  # gray 1: object
    rgb[2, 2] = (0, 0, 2)  # gray 0: background, as in the official evaluation
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
    decoded = video.frames.as_array()
    assert decoded.shape == (5, 32, 48, 3)
    assert video.frame_names == ["00000", "00001", "00002", "00003", "00004"]
    assert video.fps == pytest.approx(10)
    # H.264 is lossy, but the bright stripe stays where it was
    assert decoded[3, :, 24:32].mean() > 200 and decoded[3, :, :16].mean() < 60


def _clip(tmp_path, t: int = 5, fps: float = 10) -> str:
    path = str(tmp_path / "clip.mp4")
    with Mp4Writer(path, 32, 48, fps=fps) as w:
        for i in range(t):
            w.write(np.full((32, 48, 3), 20 * i, np.uint8))
    return path


@pytest.fixture
def decoded(monkeypatch):
    """Counts the frames ffmpeg hands over; ``decoded["duration"]`` (when set) replaces
    the duration in ffmpeg's header, as a lying or incomplete header would."""
    import imageio_ffmpeg

    real = imageio_ffmpeg.read_frames
    seen = {"calls": 0, "frames": 0}

    def read_frames(path, *args, **kwargs):
        seen["calls"] += 1
        gen = real(path, *args, **kwargs)
        meta = next(gen)
        if "duration" in seen:
            meta = {**meta, "duration": seen["duration"]}
        try:
            yield meta
            for frame in gen:
                seen["frames"] += 1
                yield frame
        finally:
            gen.close()

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", read_frames)
    return seen


@pytest.mark.parametrize(
    "limits, message",
    [
        (UploadLimits(max_frames=3), r"about 5 frames \(0.5 s at 10 fps\), over the limit of 3"),
        (UploadLimits(max_duration_s=0.2), r"lasts 0.5 s, over the limit of 0.2 s; trim it"),
        (UploadLimits(max_frame_pixels=1000), "frame size 48x32 is not supported"),
        (
            UploadLimits(max_decoded_bytes=10_000),
            r"would take 22.5 KiB decoded, over the limit of 9.8 KiB",
        ),
    ],
)
def test_video_limits_are_checked_before_decoding(tmp_path, decoded, limits, message):
    path = _clip(tmp_path)
    with pytest.raises(InputError, match=message):
        read_video_file(path, limits)
    assert decoded == {"calls": 1, "frames": 0}  # refused from ffmpeg's header alone


def test_video_file_size_is_checked_before_ffmpeg_opens_it(tmp_path, decoded):
    path = _clip(tmp_path)
    with pytest.raises(
        InputError, match=r"clip.mp4: the video is .* KiB, over the limit of 100 bytes per file"
    ):
        read_video(path, UploadLimits(max_upload_bytes=100))
    assert decoded["calls"] == 0


@pytest.mark.parametrize(
    "limits, message",
    [
        (UploadLimits(max_frames=3), r"too long \(more than 3 frames of 48x32"),
        (UploadLimits(max_duration_s=0.25), r"lasts more than 0.25 s \(frame 4 at 10 fps"),
    ],
)
def test_video_limits_hold_when_the_header_understates(tmp_path, decoded, limits, message):
    decoded["duration"] = 0.0  # header without a duration: counted while decoding
    path = _clip(tmp_path)
    with pytest.raises(InputError, match=message):
        read_video(path, limits)
    assert decoded["frames"] == 4  # stopped at the first frame over the limit


def test_frames_zip_limits(tmp_path):
    path = _zip(tmp_path / "f.zip", {f"{i}.png": _png(f) for i, f in enumerate(_frames(4, 10, 14))})
    assert read_frames_zip(path, UploadLimits(max_frames=4)).frames.as_array().shape == (
        4,
        10,
        14,
        3,
    )
    with pytest.raises(InputError, match="4 frames, over the limit of 3"):
        read_frames_zip(path, UploadLimits(max_frames=3))
    with pytest.raises(InputError, match=r"'0.png' is 14x10; at most 139 pixels"):
        read_frames_zip(path, UploadLimits(max_frame_pixels=139))
    with pytest.raises(InputError, match="4 frames of 14x10 exceed 1.6 KiB decoded"):
        read_frames_zip(path, UploadLimits(max_decoded_bytes=1679))
    with pytest.raises(
        InputError, match="f.zip: the zip is .* over the limit of 10 bytes per file"
    ):
        read_frames_zip(path, UploadLimits(max_upload_bytes=10))


def test_masks_zip_limits(tmp_path):
    entries = {f"{e}/{t:05d}.png": _png(np.zeros((6, 8), np.uint8)) for e in "01" for t in range(3)}
    path = _zip(tmp_path / "m.zip", entries)
    assert read_masks_zip(path, UploadLimits(max_frames=3)).masks["1"].shape == (3, 6, 8)
    with pytest.raises(InputError, match="masks for 3 frames, over the limit of 2"):
        read_masks_zip(path, UploadLimits(max_frames=2))
    with pytest.raises(
        InputError,
        match="2 expressions x 3 masks of 8x6: 288 bytes decoded, over the limit of 287 bytes",
    ):
        read_masks_zip(path, UploadLimits(max_decoded_bytes=287))
    dup = _zip(
        tmp_path / "dup.zip",
        {"0/00000.png": entries["0/00000.png"], "0/00000.PNG": entries["0/00000.png"]},
    )
    with pytest.raises(InputError, match="'0/00000.png' and '0/00000.PNG' are the same mask"):
        read_masks_zip(dup)


@pytest.mark.parametrize("field", ["max_upload_bytes", "max_frames", "max_duration_s"])
@pytest.mark.parametrize("value", [0, -1, True, "10"])
def test_upload_limits_must_be_positive_numbers(field, value):
    with pytest.raises(InputError, match=f"upload limit {field} = {value!r} must be a positive"):
        UploadLimits(**{field: value})


def test_broken_video_and_unknown_extension(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="ffmpeg"):
        read_video(str(bad))
    other = tmp_path / "clip.gif"
    other.write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="unsupported video upload"):
        read_video(str(other))
