"""One table of hostile or broken inputs; each must fail with its own specific InputError.

Covers the stage-1 npz loader, the data-set layout, frames on disk, uploaded zips of
frames or masks, uploaded videos, and the pipeline's consistency checks. Nothing in the
table may write outside the test's folder or run code from a file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from refine.cli import _devices
from refine.dataset import MevisDataset
from refine.errors import InputError
from refine.evaluate_cli import run_evaluate
from refine.frames import FrameSource
from refine.limits import UploadLimits
from refine.pipeline import check_video_matches, refine_video
from refine.stage1 import FORMAT, load_stage1_npz
from refine.testing import StaticPropagator
from refine.video_io import read_frames_zip, read_masks_zip, read_video

EXAMPLES = os.path.abspath("examples/data")


class Payload:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def npz(tmp, **changes):
    rng = np.random.default_rng(0)
    arrays = {
        "format": np.array(FORMAT),
        "video_size": np.array([8, 10]),
        "frame_names": np.array(["00000", "00001", "00002"]),
        "0/scores": rng.uniform(0, 1, (3, 2)).astype(np.float32),
        "0/boxes": rng.uniform(0, 1, (3, 2, 4)).astype(np.float32),
        "0/masks": rng.normal(size=(3, 2, 4, 5)).astype(np.float16),
    }
    for k, v in changes.items():
        arrays.pop(k) if v is None else arrays.__setitem__(k, v)
    path = os.path.join(tmp, "v.npz")
    np.savez(path, **arrays)
    return lambda: load_stage1_npz(path, max_bytes=2**20)


def npz_member(tmp, name, data):
    """The valid npz of :func:`npz` with its member ``name``.npy replaced by ``name`` holding
    ``data`` as stored (no ``.npy`` suffix when ``name`` has none)."""
    npz(tmp)
    path = os.path.join(tmp, "v.npz")
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members.pop(f"{name.removesuffix('.npy')}.npy")
    members[name] = data
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return lambda: load_stage1_npz(path, max_bytes=2**20)


def npy_header_only(shape, descr="<f4"):
    """An .npy member whose header declares ``shape`` and that holds no data."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


NESTED = "[" * 100_000 + "]" * 100_000


def _fifo_frame(root):
    frame = os.path.join(root, "JPEGImages/ball/00003.jpg")
    os.remove(frame)
    os.mkfifo(frame)


def evaluate_args(root):
    return argparse.Namespace(
        data=root, pred=root, gt=None, json=None, workers=1, allow_missing=False
    )


def evaluate_on(tmp, edit):
    root = os.path.join(tmp, "data")
    shutil.copytree(EXAMPLES, root)
    edit(root)
    return lambda: run_evaluate(evaluate_args(root))


def _replace_with_fifo(path):
    os.remove(path)
    os.mkfifo(path)


def png_bytes(arr, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


FRAME = png_bytes(np.zeros((6, 8, 3), np.uint8))
MASK = png_bytes(np.zeros((6, 8), np.uint8))


def zipped(tmp, members, name="up.zip", symlink=None):
    path = os.path.join(tmp, name)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def dataset(tmp, edit: Callable[[str], None]):
    root = os.path.join(tmp, "data")
    shutil.copytree(EXAMPLES, root)
    edit(root)
    return lambda: MevisDataset(root).video("ball").frame_source().rgb(3)


def _meta(root, fn):
    path = os.path.join(root, "meta_expressions.json")
    with open(path) as f:
        meta = json.load(f)
    fn(meta)
    with open(path, "w") as f:
        json.dump(meta, f)


def _corrupt_frame(root):
    with open(os.path.join(root, "JPEGImages/ball/00003.jpg"), "wb") as f:
        f.write(b"\xff\xd8 not really a jpeg")


def _resized_frame(root):
    Image.new("RGB", (64, 48)).save(os.path.join(root, "JPEGImages/ball/00003.jpg"))


def _stray_frame(root):
    shutil.copy(
        os.path.join(root, "JPEGImages/ball/00000.jpg"),
        os.path.join(root, "JPEGImages/ball/cover.jpg"),
    )


def _emptied(root):
    for f in os.listdir(os.path.join(root, "JPEGImages/ball")):
        os.remove(os.path.join(root, "JPEGImages/ball", f))


@dataclass
class Case:
    name: str
    make: Callable  # tmp → zero-argument callable that must raise
    message: str


CASES = [
    # stage-1 npz
    Case(
        "pickle payload in npz",
        lambda t: npz(t, **{"0/scores": np.array([Payload(os.path.join(t, "pwned"))])}),
        "convert-referdino --trust-pickle",
    ),
    Case(
        "challenge-code file",
        lambda t: npz(t, format=None, video_path=np.array("/x/v")),
        "not in the safe stage-1 format",
    ),
    Case(
        "NaN scores",
        lambda t: npz(t, **{"0/scores": np.full((3, 2), np.nan, np.float32)}),
        "NaN or inf",
    ),
    Case(
        "inf logits",
        lambda t: npz(t, **{"0/masks": np.full((3, 2, 4, 5), -np.inf, np.float16)}),
        "NaN or inf",
    ),
    Case(
        "scores above 1",
        lambda t: npz(t, **{"0/scores": np.full((3, 2), 2.0, np.float32)}),
        r"probabilities in \[0, 1\]",
    ),
    Case("T mismatch", lambda t: npz(t, frame_names=np.array(["00000", "00001"])), "T mismatch"),
    Case(
        "N mismatch",
        lambda t: npz(t, **{"0/boxes": np.zeros((3, 5, 4), np.float32)}),
        r"boxes must be \[T, N, 4\]",
    ),
    Case(
        "masks not 4-D",
        lambda t: npz(t, **{"0/masks": np.zeros((3, 2, 4), np.float32)}),
        r"masks must be \[T, N, h, w\]",
    ),
    Case(
        "exp_id with ..",
        lambda t: npz(t, **{"../../etc/scores": np.zeros((3, 2), np.float32)}),
        "not a plain file name",
    ),
    Case(
        "frame name with separator",
        lambda t: npz(t, frame_names=np.array(["a/0", "1", "2"])),
        "not a plain file name",
    ),
    Case(
        "npz bomb",
        lambda t: npz(t, **{"0/masks": np.zeros((3, 2, 300, 300), np.float32)}),
        "over the limit",
    ),
    Case(
        "truncated npz",
        lambda t: (
            lambda p: (open(p, "wb").write(b"PK\x03\x04trunc"), lambda: load_stage1_npz(p))[1]
        )(os.path.join(t, "v.npz")),
        "not a readable npz",
    ),
    Case(
        "npz member 'format' without .npy",
        lambda t: npz_member(t, "format", b"refine-stage1/1"),
        r"entries \['format'\] are not .npy arrays",
    ),
    Case(
        "npz member 'video_size' without .npy",
        lambda t: npz_member(t, "video_size", b"\x08\x00\x0a\x00"),
        r"entries \['video_size'\] are not .npy arrays",
    ),
    Case(
        "npy header declaring 16 TiB",
        lambda t: npz_member(t, "0/masks.npy", npy_header_only((2**42,))),
        r"entry '0/masks' declares \[4398046511104\] float32 \(17592186044416 bytes\)",
    ),
    Case(
        "deeply nested expressions JSON",
        lambda t: npz(t, expressions=np.array(NESTED)),
        "'expressions' entry is nested too deeply",
    ),
    # data set and frames on disk
    Case(
        "deeply nested meta_expressions.json",
        lambda t: dataset(
            t, lambda r: open(os.path.join(r, "meta_expressions.json"), "w").write(NESTED)
        ),
        "meta_expressions.json is nested too deeply",
    ),
    Case(
        "deeply nested meta_expressions.json (evaluate)",
        lambda t: evaluate_on(
            t, lambda r: open(os.path.join(r, "meta_expressions.json"), "w").write(NESTED)
        ),
        "meta_expressions.json is nested too deeply",
    ),
    Case(
        "FIFO as meta_expressions.json (evaluate)",
        lambda t: evaluate_on(
            t, lambda r: _replace_with_fifo(os.path.join(r, "meta_expressions.json"))
        ),
        "meta_expressions.json is a FIFO, not a regular file",
    ),
    Case(
        "FIFO as mask_dict.json (evaluate)",
        lambda t: evaluate_on(t, lambda r: _replace_with_fifo(os.path.join(r, "mask_dict.json"))),
        "mask_dict.json is a FIFO, not a regular file",
    ),
    Case(
        "FIFO in a frame folder",
        lambda t: dataset(t, _fifo_frame),
        "00003.jpg: the frame is a FIFO",
    ),
    Case(
        "device cuda:abc",
        lambda t: lambda: _devices(argparse.Namespace(gpus=None, device="cuda:abc", workers=None)),
        "'cuda:abc' is not a device",
    ),
    Case(
        "device cuda:-1 (--gpus -1)",
        lambda t: lambda: _devices(argparse.Namespace(gpus=[-1], device=None, workers=None)),
        "'cuda:-1' is not a device",
    ),
    Case(
        "video name escapes",
        lambda t: dataset(
            t, lambda r: _meta(r, lambda m: m["videos"].__setitem__("../../x", m["videos"]["ball"]))
        ),
        "not a plain file name",
    ),
    Case(
        "meta is not JSON",
        lambda t: dataset(
            t, lambda r: open(os.path.join(r, "meta_expressions.json"), "w").write("{")
        ),
        "not valid JSON",
    ),
    Case(
        "frame missing on disk",
        lambda t: dataset(t, lambda r: os.remove(os.path.join(r, "JPEGImages/ball/00004.jpg"))),
        "disagree with meta_expressions.json",
    ),
    Case("non-integer frame name", lambda t: dataset(t, _stray_frame), "is not an integer"),
    Case("corrupt frame", lambda t: dataset(t, _corrupt_frame), "unreadable image"),
    Case(
        "frame of another size", lambda t: dataset(t, _resized_frame), "but the video's first frame"
    ),
    Case("empty video folder", lambda t: dataset(t, _emptied), "no JPEG frames"),
    # uploaded zips and videos
    Case(
        "zip-slip",
        lambda t: (lambda p: lambda: read_frames_zip(p))(zipped(t, {"../../evil.jpg": FRAME})),
        "not a safe relative path",
    ),
    Case(
        "absolute path in zip",
        lambda t: (lambda p: lambda: read_frames_zip(p))(zipped(t, {"/etc/evil.jpg": FRAME})),
        "'/etc/evil.jpg' is not a safe relative path",
    ),
    Case(
        "symlink in zip",
        lambda t: (lambda p: lambda: read_frames_zip(p))(
            zipped(t, {"00000.jpg": FRAME}, symlink="00001.jpg")
        ),
        "symbolic link",
    ),
    Case(
        "zip bomb",
        lambda t: (lambda p: lambda: read_frames_zip(p, UploadLimits(max_zip_ratio=50)))(
            zipped(t, {"00000.png": b"\0" * (8 * 2**20)})
        ),
        "zip bomb",
    ),
    Case(
        "too many zip entries",
        lambda t: (lambda p: lambda: read_frames_zip(p, UploadLimits(max_zip_entries=3)))(
            zipped(t, {f"{i:05d}.png": FRAME for i in range(5)})
        ),
        "at most 3 allowed",
    ),
    Case(
        "zip without images",
        lambda t: (lambda p: lambda: read_frames_zip(p))(zipped(t, {"readme.txt": b"hi"})),
        "no jpg/jpeg/png files",
    ),
    Case(
        "masks zip exp_id with ..",
        lambda t: (lambda p: lambda: read_masks_zip(p))(
            zipped(t, {"a/../00000.png": MASK, "b/00000.png": MASK})
        ),
        "'a/../00000.png' is not a safe",
    ),
    Case(
        "corrupt PNG mask",
        lambda t: (lambda p: lambda: read_masks_zip(p))(
            zipped(t, {"0/00000.png": b"\x89PNG broken"})
        ),
        "'0/00000.png' is not a readable image",
    ),
    Case(
        "not a zip at all",
        lambda t: (lambda p: lambda: read_frames_zip(p))(
            (lambda p: (open(p, "wb").write(b"nope"), p)[1])(os.path.join(t, "x.zip"))
        ),
        "not a readable zip",
    ),
    Case(
        "video that is not a video",
        lambda t: (lambda p: lambda: read_video(p))(
            (lambda p: (open(p, "wb").write(b"\0" * 100), p)[1])(os.path.join(t, "x.mp4"))
        ),
        "ffmpeg cannot read",
    ),
    Case(
        "unsupported upload type",
        lambda t: lambda: read_video(os.path.join(t, "x.exe")),
        "unsupported video upload",
    ),
    # pipeline consistency
    Case(
        "stage-1 size differs from frames",
        lambda t: (
            lambda: check_video_matches(
                load_stage1_npz(f"{EXAMPLES}/stage1/ball.npz"),
                [f"{i:05d}" for i in range(12)],
                FrameSource.from_arrays(np.zeros((12, 50, 60, 3), np.uint8)),
                "ball.npz",
            )
        ),
        "video_size",
    ),
    Case(
        "unknown exp_id",
        lambda t: (
            lambda: refine_video(
                FrameSource.from_arrays(np.zeros((12, 96, 128, 3), np.uint8)),
                load_stage1_npz(f"{EXAMPLES}/stage1/ball.npz"),
                StaticPropagator(),
                exp_ids=["7"],
            )
        ),
        "'7' is not in the stage-1 results",
    ),
]


def test_table_is_large_enough():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, tmp_path):
    before = set(os.listdir(os.path.dirname(tmp_path)))
    action = case.make(str(tmp_path))
    with pytest.raises(InputError, match=case.message):
        action()
    assert not (tmp_path / "pwned").exists()
    assert set(os.listdir(os.path.dirname(tmp_path))) == before  # nothing written beside it
