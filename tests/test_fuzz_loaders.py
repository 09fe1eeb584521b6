"""Hypothesis fuzz of the loaders: nothing but refine's own InputError may come out."""

import io
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from refine.errors import InputError
from refine.stage1 import FORMAT, load_stage1_npz

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.uint8, np.bool_])
any_array = dtypes.flatmap(lambda d: arrays(d, array_shapes(min_dims=0, max_dims=4, max_side=4)))
names = st.sampled_from(
    [
        "format",
        "video_size",
        "frame_names",
        "expressions",
        "0/scores",
        "0/boxes",
        "0/masks",
        "1/scores",
        "../x/masks",
        "a/b",
        "junk",
    ]
)
strings = st.sampled_from(
    [
        np.array(FORMAT),
        np.array("x"),
        np.array(["00000", "00001"]),
        np.array('{"0": "a"}'),
        np.array("{"),
        np.array(["a/b"]),
    ]
)


def near_valid(t: int, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "format": np.array(FORMAT),
        "video_size": np.array([8, 9]),
        "frame_names": np.array([f"{i:05d}" for i in range(t)]),
        "0/scores": rng.uniform(0, 1, (t, n)).astype(np.float32),
        "0/boxes": rng.uniform(0, 1, (t, n, 4)).astype(np.float32),
        "0/masks": rng.normal(size=(t, n, 3, 3)).astype(np.float16),
    }


def load_bytes(tmp_path_factory, blob: bytes):
    path = tmp_path_factory.mktemp("fz") / "v.npz"
    path.write_bytes(blob)
    try:
        load_stage1_npz(str(path), max_bytes=2**24)
    except InputError:
        pass


@FUZZ
@given(
    t=st.integers(1, 3),
    n=st.integers(1, 3),
    seed=st.integers(0, 9),
    changes=st.dictionaries(names, st.one_of(any_array, strings, st.none()), max_size=4),
)
def test_npz_with_random_entries(tmp_path_factory, t, n, seed, changes):
    arrays_ = near_valid(t, n, seed)
    for k, v in changes.items():
        if v is None:
            arrays_.pop(k, None)
        else:
            arrays_[k] = v
    buf = io.BytesIO()
    np.savez(buf, **arrays_)
    load_bytes(tmp_path_factory, buf.getvalue())


@FUZZ
@given(
    seed=st.integers(0, 9),
    cut=st.integers(0, 4000),
    flips=st.lists(st.integers(0, 4000), max_size=8),
)
def test_npz_truncated_or_corrupted(tmp_path_factory, seed, cut, flips):
    buf = io.BytesIO()
    np.savez(buf, **near_valid(2, 2, seed))
    blob = bytearray(buf.getvalue())
    for i in flips:
        if i < len(blob):
            blob[i] ^= 0xFF
    load_bytes(tmp_path_factory, bytes(blob[: len(blob) - cut]))


@FUZZ
@given(
    members=st.dictionaries(
        st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
            lambda s: s.strip("/") != ""
        ),
        st.binary(max_size=64),
        max_size=5,
    )
)
def test_zip_that_is_not_an_npz(tmp_path_factory, members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    load_bytes(tmp_path_factory, buf.getvalue())
