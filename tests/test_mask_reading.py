"""One mask-reading rule everywhere (the official MeViS evaluation's cv2 gray read).

Each reader of mask PNGs — output/stage-1 masks on disk, PNG ground truth for
``refine evaluate --gt``, uploaded mask zips (decoded from bytes), stage-1 PNG folders —
must read the same PNG as the same mask, the one ``cv2.imread(p, IMREAD_GRAYSCALE) > 0``
gives. A 16-bit 0/1 mask and an RGB mask with pixel (0, 0, 2) are background there.
"""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from refine.errors import InputError
from refine.ground_truth import Expression, expression_gt_from_pngs
from refine.mask_io import decode_mask_png, read_mask_png
from refine.stage1 import load_stage1_png_dir
from refine.video_io import read_masks_zip

H, W = 6, 8


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _sixteen_bit() -> bytes:
    a = np.zeros((H, W), np.uint16)
    a[1:3, 2:5] = 1
    return _png(a)


def _rgb_002() -> bytes:
    a = np.zeros((H, W, 3), np.uint8)
    a[1:3, 2:5] = (0, 0, 2)
    return _png(a)


def _gray_255() -> bytes:
    a = np.zeros((H, W), np.uint8)
    a[1:3, 2:5] = 255
    return _png(a)


def _palette() -> bytes:
    img = Image.fromarray(np.where(np.arange(H * W).reshape(H, W) % 3 == 0, 1, 0).astype(np.uint8))
    img = img.convert("P")
    img.putpalette([0, 0, 0, 0, 0, 1] + [0] * 762)  # index 1 is RGB (0, 0, 1): gray 0
    return _save(img)


def _save(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


PNGS = {
    "16-bit 0/1": _sixteen_bit,
    "RGB (0,0,2)": _rgb_002,
    "palette": _palette,
    "gray 255": _gray_255,
}


def official(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) > 0


def via_file(tmp, data):
    (tmp / "00000.png").write_bytes(data)
    return read_mask_png(str(tmp / "00000.png"))


def via_gt_pngs(tmp, data):
    (tmp / "v" / "0").mkdir(parents=True)
    (tmp / "v" / "0" / "00000.png").write_bytes(data)
    return expression_gt_from_pngs(str(tmp), Expression("v", "0", ("00000",), ()))[0]


def via_upload_zip(tmp, data):
    path = tmp / "masks.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("0/00000.png", data)
    return read_masks_zip(str(path)).masks["0"][0]


def via_stage1_png_dir(tmp, data):
    (tmp / "0").mkdir()
    (tmp / "0" / "00000.png").write_bytes(data)
    return load_stage1_png_dir(str(tmp), ["00000"], (H, W)).expressions["0"].masks[0, 0] > 0


READERS = {
    "mask_io.read_mask_png": via_file,
    "evaluate --gt PNGs": via_gt_pngs,
    "uploaded mask zip": via_upload_zip,
    "stage-1 PNG folder": via_stage1_png_dir,
}


@pytest.mark.parametrize("png", PNGS)
@pytest.mark.parametrize("reader", READERS)
def test_every_reader_reads_a_png_as_the_official_evaluation(tmp_path, reader, png):
    data = PNGS[png]()
    expected = official(data)
    assert expected.any() == (png == "gray 255")  # the hostile kinds are background there
    np.testing.assert_array_equal(READERS[reader](tmp_path, data), expected)


def test_bytes_entry_point_bounds_pixels_before_decoding():
    with pytest.raises(InputError, match=r"m.png is 8x6; at most 40 pixels"):
        decode_mask_png(_gray_255(), "m.png", max_pixels=40)
    for bad in (b"", b"\x89PNG broken"):
        with pytest.raises(InputError, match="m.png: cannot read this file as an image"):
            decode_mask_png(bad, "m.png")
