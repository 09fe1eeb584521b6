"""Hypothesis fuzz of the upload readers: zips of frames and of PNG masks with random
members (hostile names, odd extensions, random bytes, valid and damaged small images,
symbolic links, nested folders) and damaged zip files. A reader may succeed or raise
refine's InputError; nothing else may come out, and nothing may be written."""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from refine.errors import InputError
from refine.limits import UploadLimits
from refine.video_io import MaskSet, read_frames_zip, read_masks_zip

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = UploadLimits(
    max_upload_bytes=2**20,
    max_frames=6,
    max_frame_pixels=400,
    max_decoded_bytes=20_000,
    max_zip_entries=12,
    max_unpacked_bytes=200_000,
)
limits = st.sampled_from([UploadLimits(), SMALL])


def _image_bytes(mode: str, w: int, h: int, fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "RGB":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _huge_png(w: int, h: int) -> bytes:
    """A small valid PNG whose header then claims w x h pixels."""
    data = bytearray(_image_bytes("L", 2, 2, "PNG", 0))
    ihdr = b"IHDR" + struct.pack(">II", w, h) + bytes(data[24:29])  # keep depth, type, …
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


_sizes = (st.integers(1, 12), st.integers(1, 12))
valid_image = st.one_of(
    st.builds(
        _image_bytes,
        st.sampled_from(["RGB", "L", "1", "P", "RGBA", "LA", "I;16"]),
        *_sizes,
        st.just("PNG"),
        st.integers(0, 2**16),
    ),
    st.builds(
        _image_bytes, st.sampled_from(["RGB", "L"]), *_sizes, st.just("JPEG"), st.integers(0, 2**16)
    ),
)


@st.composite
def damaged(draw, source=valid_image) -> bytes:
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


contents = st.one_of(
    valid_image,
    valid_image,
    damaged(),
    st.binary(max_size=64),
    st.builds(_huge_png, st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)),
)
parts = st.one_of(
    st.sampled_from(
        ["..", ".", "", "0", "1", "00000", "00001", "7", "a", "clip", "__MACOSX", ".hidden", "C:"]
    ),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), max_size=6),
)
extensions = st.sampled_from(
    [".png", ".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".txt", "", ".gif", ".png.exe", "/"]
)


@st.composite
def member_name(draw, folder: str = "") -> str:
    """Mostly a plausible name in ``folder`` (random stem and extension), sometimes a
    hostile path: ``..``, absolute, backslashes, drive letters, odd characters, nesting."""
    stem = draw(st.one_of(st.integers(0, 99_999).map(lambda i: f"{i:05d}"), parts))
    if draw(st.integers(0, 2)):
        return folder + stem + draw(extensions)
    folders = draw(st.lists(parts, max_size=3))
    name = draw(st.sampled_from(["/", "\\"])).join([*folders, stem]) + draw(extensions)
    if draw(st.integers(0, 4)) == 0:
        name = "/" + name
    return name


def _extras(draw, folders: list[str]) -> list[tuple[str, bytes, bool]]:
    names = st.sampled_from(folders).flatmap(member_name)
    extra = draw(st.lists(st.tuples(names, contents), max_size=4))
    return [(n, d, draw(st.sampled_from([False] * 9 + [True]))) for n, d in extra]


@st.composite
def frame_members(draw) -> list[tuple[str, bytes, bool]]:
    """(name, data, is_symlink) members: plausible frames, plus random extra members."""
    folder = draw(st.sampled_from(["", "clip/", "a/b/"]))
    count = draw(st.integers(1, 5))
    shape = (draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    good = [
        (f"{folder}{t:05d}.png", _image_bytes("RGB", *shape, "PNG", t), False) for t in range(count)
    ]
    return draw(st.permutations(good + _extras(draw, [folder, ""])))


@st.composite
def mask_members(draw) -> list[tuple[str, bytes, bool]]:
    """(name, data, is_symlink) members: masks <exp_id>/<frame>.png, plus random extras."""
    top = draw(st.sampled_from(["", "video/", "a/b/"]))
    exp_ids = draw(st.lists(st.sampled_from(["0", "1", "x", ".."]), min_size=1, max_size=3))
    exp_ids = list(dict.fromkeys(exp_ids))
    count = draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    mode = draw(st.sampled_from(["L", "1", "RGB", "P"]))
    good = [
        (f"{top}{e}/{t:05d}.png", _image_bytes(mode, *shape, "PNG", t), False)
        for e in exp_ids
        for t in range(count)
    ]
    folders = [f"{top}{e}/" for e in exp_ids] + [top]
    return draw(st.permutations(good + _extras(draw, folders)))


def _write_zip(path: str, members: list[tuple[str, bytes, bool]], deflate: bool) -> None:
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the fuzz
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, data, link in members:
                info = zipfile.ZipInfo(name)
                info.compress_type = method
                if link:
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, data)


def _read_only_input_errors(reader, path: str, lim: UploadLimits):
    """Run the reader; InputError is fine, any other exception fails the test."""
    folder = os.path.dirname(path)
    before = set(os.listdir(folder))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            out = reader(path, lim)
    except InputError as err:
        assert str(err)  # a message for the user
        event(f"InputError: {str(err).split(': ', 1)[-1][:30]}")
        out = None
    else:
        event("read")
    assert set(os.listdir(folder)) == before  # nothing extracted or written
    return out


@FUZZ
@given(members=frame_members(), deflate=st.booleans(), lim=limits)
def test_frames_zip_fuzz(members, deflate, lim):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frames.zip")
        _write_zip(path, members, deflate)
        video = _read_only_input_errors(read_frames_zip, path, lim)
    if video is not None:
        decoded = video.frames.as_array()  # every kept frame decodes
        t, h, w, c = decoded.shape
        assert decoded.dtype == np.uint8 and c == 3 and t == len(video.frame_names)
        assert t <= lim.max_frames and h * w <= lim.max_frame_pixels


@FUZZ
@given(members=mask_members(), deflate=st.booleans(), lim=limits)
def test_masks_zip_fuzz(members, deflate, lim):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "masks.zip")
        _write_zip(path, members, deflate)
        masks = _read_only_input_errors(read_masks_zip, path, lim)
    if masks is not None:
        assert isinstance(masks, MaskSet) and masks.masks
        for m in masks.masks.values():
            assert m.dtype == bool and m.shape[0] == len(masks.frame_names)
            assert ".." not in masks.masks and m.shape[1] * m.shape[2] <= lim.max_frame_pixels


@FUZZ
@given(
    members=st.one_of(frame_members(), mask_members()),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    masks=st.booleans(),
)
def test_damaged_zip_file_fuzz(members, flips, cut, masks):
    """Whole zip files with flipped bytes or cut short (damaged downloads, crafted headers)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "up.zip")
        _write_zip(path, members, deflate=True)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        for where, value in flips:
            data[int(where * len(data))] = value
        if cut is not None:
            data = data[: int(cut * len(data))]
        with open(path, "wb") as f:
            f.write(data)
        _read_only_input_errors(read_masks_zip if masks else read_frames_zip, path, SMALL)
