"""refine.files (regular-file reads, atomic writes, tree removal) and the one parser of
meta_expressions.json (refine.dataset) that the batch run, evaluation and app share."""

from __future__ import annotations

import json
import os

import pytest

from refine.dataset import MevisDataset, load_meta_expressions
from refine.errors import InputError
from refine.files import atomic_write, read_regular_file, remove_tree, write_text_atomic
from refine.ground_truth import load_expressions

EXAMPLES = os.path.abspath("examples/data")


def test_atomic_write_leaves_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(str(path), "old")
    with pytest.raises(RuntimeError), atomic_write(str(path)) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
    write_text_atomic(str(path), "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["a.txt"]


def test_remove_tree_removes_a_link_not_its_target(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    (tmp_path / "link").symlink_to(target)
    remove_tree(str(tmp_path / "link"))
    remove_tree(str(tmp_path / "gone"))  # already gone: fine
    assert (target / "keep").exists() and not (tmp_path / "link").exists()
    remove_tree(str(target))
    assert not target.exists()


def test_read_regular_file_refuses_special_files(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="fifo: the data is a FIFO, not a regular file"):
        read_regular_file(str(tmp_path / "fifo"), "data")
    with pytest.raises(InputError, match="the data is a folder"):
        read_regular_file(str(tmp_path), "data")
    (tmp_path / "big").write_bytes(b"x" * 10)
    with pytest.raises(InputError, match="10 bytes, over the limit of 9"):
        read_regular_file(str(tmp_path / "big"), "data", max_bytes=9)


def test_one_meta_parser_for_the_data_set_and_the_evaluation():
    meta = load_meta_expressions(os.path.join(EXAMPLES, "meta_expressions.json"))
    ds = MevisDataset(EXAMPLES)
    assert ds.videos_meta == meta
    assert [(v, e, s) for v, e, s in ds.expressions()] == [
        (v, e, meta[v].expressions[e].sentence) for v in sorted(meta) for e in meta[v].expressions
    ]
    exprs = load_expressions(os.path.join(EXAMPLES, "meta_expressions.json"))
    assert {(x.video, x.exp_id): x.anno_ids for x in exprs} == {
        (v, e): m.anno_ids for v in meta for e, m in meta[v].expressions.items()
    }


@pytest.mark.parametrize(
    ("videos", "message"),
    [
        ({"v": {"expressions": {"0": "a sentence"}}}, "expression '0': expected an object"),
        ({"v": {"expressions": {"0": {"anno_id": 3}}}}, "'anno_id' must be a list"),
        ({"v": {"expressions": {"0": {"anno_id": [True]}}}}, "anno_id True is not an integer"),
        ({"v": {"frames": ["0", "0"]}}, "lists the same frame twice"),
        ({"v": {"expressions": []}}, "'expressions' must be an object"),
    ],
)
def test_meta_errors_are_the_same_for_every_reader(tmp_path, videos, message):
    root = tmp_path / "data"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    for read in (
        lambda: MevisDataset(str(root)),
        lambda: load_expressions(str(root / "meta_expressions.json")),
    ):
        with pytest.raises(InputError, match=message):
            read()
