import json
import os

import numpy as np
import pytest
from PIL import Image

from refine.errors import InputError
from refine.stage1 import (
    FORMAT,
    ExpressionStage1,
    VideoStage1,
    load_stage1_npz,
    load_stage1_png_dir,
    save_stage1_npz,
)


def good_arrays(t=3, n=2):
    rng = np.random.default_rng(0)
    return {
        "format": np.array(FORMAT),
        "video_size": np.array([20, 30]),
        "frame_names": np.array([f"{i:05d}" for i in range(t)]),
        "0/scores": rng.uniform(0, 1, (t, n)).astype(np.float32),
        "0/boxes": rng.uniform(0, 1, (t, n, 4)).astype(np.float32),
        "0/masks": rng.normal(size=(t, n, 5, 6)).astype(np.float16),
        "expressions": np.array(json.dumps({"0": "a cat"})),
    }


def write(path, arrays):
    np.savez(path, **arrays)
    return str(path)


def test_round_trip(tmp_path):
    exp = ExpressionStage1(
        np.full((2, 1), 0.5, np.float32),
        np.zeros((2, 1, 4), np.float32),
        np.ones((2, 1, 3, 3), np.float16),
        "the dog",
    )
    path = str(tmp_path / "v.npz")
    save_stage1_npz(path, VideoStage1((4, 5), ["00000", "00001"], {"7": exp}))
    got = load_stage1_npz(path)
    assert got.video_size == (4, 5) and got.frame_names == ["00000", "00001"]
    assert got.expressions["7"].sentence == "the dog"
    np.testing.assert_array_equal(got.expressions["7"].masks, exp.masks)
    assert got.expressions["7"].masks.dtype == np.float16


def test_good_file_loads(tmp_path):
    s1 = load_stage1_npz(write(tmp_path / "v.npz", good_arrays()))
    assert list(s1.expressions) == ["0"] and s1.expressions["0"].scores.shape == (3, 2)


def _bad(**changes):
    arrays = good_arrays()
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return arrays


BAD_CASES = [
    ("no format", _bad(format=None), "no 'format'"),
    ("wrong format", _bad(format=np.array("other/2")), "expected 'refine-stage1/1'"),
    ("bad size", _bad(video_size=np.array([20])), "video_size"),
    ("negative size", _bad(video_size=np.array([20, -3])), "video_size"),
    ("T mismatch", _bad(**{"0/scores": np.full((4, 2), 0.5, np.float32)}), "T mismatch"),
    (
        "scores 1-D",
        _bad(**{"0/scores": np.full((3,), 0.5, np.float32)}),
        r"scores must be \[T, N\]",
    ),
    ("N mismatch boxes", _bad(**{"0/boxes": np.zeros((3, 3, 4), np.float32)}), "boxes must be"),
    ("masks 3-D", _bad(**{"0/masks": np.zeros((3, 2, 5), np.float32)}), "masks must be"),
    ("NaN scores", _bad(**{"0/scores": np.full((3, 2), np.nan, np.float32)}), "NaN"),
    ("inf logits", _bad(**{"0/masks": np.full((3, 2, 5, 6), np.inf, np.float16)}), "NaN or inf"),
    ("scores > 1", _bad(**{"0/scores": np.full((3, 2), 1.5, np.float32)}), r"in \[0, 1\]"),
    ("int scores", _bad(**{"0/scores": np.ones((3, 2), np.int64)}), "float array"),
    ("missing masks", _bad(**{"0/masks": None}), "lacks"),
    ("unordered frames", _bad(frame_names=np.array(["00002", "00001", "00000"])), "increasing"),
    ("non-integer frame", _bad(frame_names=np.array(["a", "b", "c"])), "not an integer"),
    ("frame with slash", _bad(frame_names=np.array(["0/1", "2", "3"])), "plain file name"),
    ("exp_id escapes", _bad(**{"../x/scores": np.zeros((3, 2), np.float32)}), "plain file name"),
    ("stray entry", _bad(junk=np.zeros(3)), "unexpected entry"),
    ("bad sentences", _bad(expressions=np.array("{not json")), "not valid JSON"),
]


@pytest.mark.parametrize("name,arrays,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_files_are_rejected_with_a_message(tmp_path, name, arrays, message):
    path = write(tmp_path / "v.npz", arrays)
    with pytest.raises(InputError, match=message) as err:
        load_stage1_npz(path)
    assert path in str(err.value)


def test_not_an_npz(tmp_path):
    p = tmp_path / "v.npz"
    p.write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable npz"):
        load_stage1_npz(str(p))
    with pytest.raises(InputError, match="does not exist"):
        load_stage1_npz(str(tmp_path / "missing.npz"))


class Payload:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_entries_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    arrays = good_arrays()
    arrays["0/scores"] = np.array([Payload(str(marker))], dtype=object)
    path = write(tmp_path / "v.npz", arrays)
    with pytest.raises(InputError, match="convert-referdino --trust-pickle"):
        load_stage1_npz(path)
    assert not marker.exists()


def test_challenge_code_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write(
        tmp_path / "v.npz",
        {
            "video_path": np.array("/data/JPEGImages/v"),
            "size": np.array([20, 30]),
            "0": np.array({"scores": Payload(str(marker))}, dtype=object),
        },
    )
    with pytest.raises(InputError, match="convert-referdino --trust-pickle"):
        load_stage1_npz(path)
    assert not marker.exists()


def test_png_stage1(tmp_path):
    names = ["00000", "00001"]
    for exp_id in ("0", "3"):
        os.makedirs(tmp_path / exp_id)
        for i, n in enumerate(names):
            m = np.zeros((6, 8), np.uint8)
            if exp_id == "0" and i == 1:
                m[1:3, 2:6] = 255
            Image.fromarray(m).save(tmp_path / exp_id / f"{n}.png")
    s1 = load_stage1_png_dir(str(tmp_path), names, (6, 8))
    e = s1.expressions["0"]
    assert e.scores[:, 0].tolist() == [0.0, 1.0]
    np.testing.assert_allclose(e.boxes[1, 0], [4 / 8, 2 / 6, 4 / 8, 2 / 6])
    assert ((e.masks[1, 0] > 0) == (np.asarray(Image.open(tmp_path / "0/00001.png")) > 0)).all()
    assert s1.expressions["3"].scores.max() == 0
    os.remove(tmp_path / "3" / "00001.png")
    with pytest.raises(InputError, match="00001.png: mask file not found"):
        load_stage1_png_dir(str(tmp_path), names, (6, 8))


def test_size_limit_is_checked_before_reading(tmp_path):
    arrays = good_arrays()
    arrays["0/masks"] = np.zeros((3, 2, 400, 600), np.float32)  # 5.5 MiB, compresses to little
    path = str(tmp_path / "v.npz")
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    assert os.path.getsize(path) < 100_000
    with pytest.raises(InputError, match="over the limit of 1.0 MiB"):
        load_stage1_npz(path, max_bytes=2**20)
    assert load_stage1_npz(path, max_bytes=8 * 2**20).expressions["0"].masks.shape[2:] == (400, 600)


def test_expression_ids_sort_numbers_by_value_then_names(tmp_path):
    # one sort key for expression ids; "²".isdigit() is true but int("²") fails
    arrays = good_arrays()
    for exp_id in ("10", "2", "²", "b"):
        for part in ("scores", "boxes", "masks"):
            arrays[f"{exp_id}/{part}"] = arrays[f"0/{part}"]
    s1 = load_stage1_npz(write(tmp_path / "v.npz", arrays))
    assert list(s1.expressions) == ["0", "2", "10", "b", "²"]
