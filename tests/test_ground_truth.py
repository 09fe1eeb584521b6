"""Tests of refine.ground_truth and the ``evaluate`` command (refine.evaluate_cli)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as cocomask

from refine.cli import build_parser
from refine.errors import InputError
from refine.evaluate_cli import run_evaluate
from refine.ground_truth import (
    Expression,
    expression_gt_from_mask_dict,
    expression_gt_from_pngs,
    find_missing_pngs,
    load_expressions,
    read_predictions,
    rles_for_expression,
)
from refine.mask_io import read_mask_png
from refine.metrics import evaluate_expression

H, W = 24, 32
FRAMES = ["00000", "00001", "00002"]


def rle(mask: np.ndarray) -> dict:
    """COCO RLE of a bool [H, W] mask, as stored in mask_dict.json (counts as str)."""
    enc = cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in enc["size"]], "counts": enc["counts"].decode("ascii")}


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# Object 1 on every frame, object 2 on frames 0-1 (overlapping object 1), absent on 2.
OBJ1 = [box(2, 10, 2, 12), box(3, 11, 3, 13), box(4, 12, 4, 14)]
OBJ2 = [box(6, 20, 8, 25), box(6, 20, 9, 26), None]


def union(*objs: list) -> np.ndarray:
    out = np.zeros((len(FRAMES), H, W), dtype=bool)
    for obj in objs:
        for t, m in enumerate(obj):
            if m is not None:
                out[t] |= m
    return out


def write_png(path: Path, mask: np.ndarray, value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8) * value)


def make_data(root: Path, extra_meta: dict | None = None) -> Path:
    """A labelled split: video v1, expressions 0 (obj 1), 1 (obj 2), 2 (objs 1+2)."""
    root.mkdir(parents=True, exist_ok=True)
    meta = {
        "videos": {
            "v1": {
                "frames": FRAMES,
                "expressions": {
                    "0": {"exp": "the red box", "obj_id": [0], "anno_id": [1]},
                    "1": {"exp": "the big box", "obj_id": [1], "anno_id": [2]},
                    "2": {"exp": "both boxes", "obj_id": [0, 1], "anno_id": [1, 2]},
                },
            }
        }
    }
    if extra_meta:
        meta["videos"].update(extra_meta)
    mask_dict = {
        "1": [rle(m) for m in OBJ1],
        "2": [rle(m) if m is not None else None for m in OBJ2],
    }
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    (root / "mask_dict.json").write_text(json.dumps(mask_dict))
    return root


def write_preds(pred: Path, masks: dict[str, np.ndarray], video: str = "v1") -> Path:
    for exp_id, m in masks.items():
        for t, frame in enumerate(FRAMES):
            write_png(pred / video / exp_id / f"{frame}.png", m[t])
    return pred


def evaluate(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    parser = build_parser()
    out = tmp_path / "scores.json"
    args = parser.parse_args(["evaluate", *argv, "--json", str(out)])
    assert args.func is run_evaluate
    rc = args.func(args)
    return rc, json.loads(out.read_text())


# --------------------------------------------------------------------------- loading


def test_mask_dict_gt_is_the_union_of_the_expressions_objects(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    exprs = load_expressions(str(root / "meta_expressions.json"))
    assert [(e.video, e.exp_id, e.anno_ids) for e in exprs] == [
        ("v1", "0", ("1",)),
        ("v1", "1", ("2",)),
        ("v1", "2", ("1", "2")),
    ]
    assert exprs[2].frames == tuple(FRAMES) and exprs[2].key == "v1/2"
    mask_dict = json.loads((root / "mask_dict.json").read_text())
    both = expression_gt_from_mask_dict(rles_for_expression(mask_dict, exprs[2]), "v1/2")
    assert both.shape == (3, H, W) and both.dtype == bool
    np.testing.assert_array_equal(both, union(OBJ1, OBJ2))
    # object 2 is absent (None) on frame 2: the union is object 1 alone there
    np.testing.assert_array_equal(both[2], OBJ1[2])
    only2 = expression_gt_from_mask_dict(rles_for_expression(mask_dict, exprs[1]), "v1/1")
    assert not only2[2].any() and only2[0].sum() == 14 * 17


def test_all_absent_object_uses_the_given_shape() -> None:
    gt = expression_gt_from_mask_dict([[None, None]], "v/0", shape=(5, 6))
    assert gt.shape == (2, 5, 6) and not gt.any()


def test_uncompressed_rle_counts_are_decoded() -> None:
    m = box(1, 3, 2, 5)
    flat = m.astype(np.uint8).flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    gt = expression_gt_from_mask_dict([[{"size": [H, W], "counts": counts}]], "v/0")
    np.testing.assert_array_equal(gt[0], m)


def test_mask_dict_errors(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    exprs = load_expressions(str(root / "meta_expressions.json"))
    with pytest.raises(InputError, match="anno_id '2' of v1/1 is missing"):
        rles_for_expression({"1": [None] * 3}, exprs[1])
    with pytest.raises(InputError, match="2 entries but the video has 3 frames"):
        rles_for_expression({"2": [None, None]}, exprs[1])
    with pytest.raises(InputError, match="no 'anno_id'"):
        rles_for_expression({}, Expression("v", "0", ("0",), None))
    bad = [[{"size": [H, W], "counts": 5}]]
    with pytest.raises(InputError, match="v/0: object 0, frame 0: not a valid COCO RLE"):
        expression_gt_from_mask_dict(bad, "v/0")
    mixed = [[rle(OBJ1[0]), rle(np.zeros((H + 1, W), dtype=bool))]]
    with pytest.raises(
        InputError,
        match=r"object 0, frame 1: ground-truth RLE is 25x32 \(HxW\) but the masks are 24x32",
    ):
        expression_gt_from_mask_dict(mixed, "v/0")


@pytest.mark.parametrize(
    ("video", "exp_id", "frame", "what"),
    [
        ("../evil", "0", "00000", "video"),
        ("v", "a/b", "00000", "exp_id"),
        ("v", "0", "", "frame"),
        ("v", "0", "..", "frame"),
        ("v", "0", "a\x00b", "frame"),
    ],
)
def test_unsafe_names_in_meta_are_rejected(
    tmp_path: Path, video: str, exp_id: str, frame: str, what: str
) -> None:
    meta = {"videos": {video: {"frames": [frame], "expressions": {exp_id: {"anno_id": [1]}}}}}
    path = tmp_path / "meta_expressions.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=f"{what} name .* is not a plain file name"):
        load_expressions(str(path))


def test_malformed_meta_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "meta_expressions.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="valid JSON"):
        load_expressions(str(path))
    path.write_text(json.dumps({"videos": {"v": {"frames": [], "expressions": {}}}}))
    with pytest.raises(InputError, match="non-empty list"):
        load_expressions(str(path))
    with pytest.raises(InputError, match="not found"):
        load_expressions(str(tmp_path / "nope.json"))


def test_png_binarisation_matches_the_official_gray_read(tmp_path: Path) -> None:
    m = box(2, 5, 3, 9)
    for value in (1, 128, 255):
        write_png(tmp_path / f"g{value}.png", m, value)
        np.testing.assert_array_equal(read_mask_png(str(tmp_path / f"g{value}.png")), m)
    # colour PNG: OpenCV's gray conversion decides (pure blue 255 -> gray 29 > 0)
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[m] = (255, 0, 0)  # BGR blue
    assert cv2.imwrite(str(tmp_path / "c.png"), rgb)
    np.testing.assert_array_equal(read_mask_png(str(tmp_path / "c.png")), m)
    # 16-bit 0/1 mask: IMREAD_GRAYSCALE scales to 8 bits, so it reads as empty
    assert cv2.imwrite(str(tmp_path / "d.png"), m.astype(np.uint16))
    assert not read_mask_png(str(tmp_path / "d.png")).any()


def test_unreadable_png_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "00000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(InputError, match=r"00000\.png: cannot read"):
        read_mask_png(str(bad))


def test_read_predictions_missing_mismatch_and_allow_missing(tmp_path: Path) -> None:
    folder = tmp_path / "v" / "0"
    write_png(folder / "00000.png", box(0, 4, 0, 4))
    write_png(folder / "00002.png", box(1, 4, 0, 4))
    with pytest.raises(InputError, match=r"1 prediction .*00001\.png.*--allow-missing"):
        read_predictions(str(folder), FRAMES, (H, W))
    got = read_predictions(str(folder), FRAMES, (H, W), allow_missing=True)
    np.testing.assert_array_equal(
        got, np.stack([box(0, 4, 0, 4), np.zeros((H, W)), box(1, 4, 0, 4)])
    )
    write_png(folder / "00001.png", np.zeros((H, W + 2), dtype=bool))
    with pytest.raises(InputError, match=rf"00001\.png: prediction is {H}x{W + 2} .* is {H}x{W}"):
        read_predictions(str(folder), FRAMES, (H, W))


def test_missing_list_gives_first_few_and_a_count(tmp_path: Path) -> None:
    frames = tuple(f"{i:05d}" for i in range(8))
    write_png(tmp_path / "v" / "0" / "00003.png", box(0, 1, 0, 1))
    exprs = [Expression("v", "0", frames, ()), Expression("w", "1", frames, ())]
    missing = find_missing_pngs(str(tmp_path), exprs)
    assert len(missing) == 8  # 7 frames of v/0, and the whole folder w/1 once
    assert missing[-1].endswith(f"w{os.sep}1{os.sep} (all 8 frames)")
    assert not any("00003" in m for m in missing)


def test_png_ground_truth(tmp_path: Path) -> None:
    gt_dir = tmp_path / "gt"
    masks = union(OBJ1, OBJ2)
    for t, frame in enumerate(FRAMES):
        write_png(gt_dir / "v1" / "2" / f"{frame}.png", masks[t])
    expr = Expression("v1", "2", tuple(FRAMES), ())
    np.testing.assert_array_equal(expression_gt_from_pngs(str(gt_dir), expr), masks)
    os.remove(gt_dir / "v1" / "2" / "00001.png")
    with pytest.raises(InputError, match=r"1 ground truth file.*00001\.png"):
        expression_gt_from_pngs(str(gt_dir), expr)


# --------------------------------------------------------------------------- CLI


def perfect_preds() -> dict[str, np.ndarray]:
    return {"0": union(OBJ1), "1": union(OBJ2), "2": union(OBJ1, OBJ2)}


def test_cli_hand_made_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_data(tmp_path / "data")
    preds = perfect_preds()
    preds["1"] = np.zeros_like(preds["1"])  # GT non-empty, empty, empty... J=F=[0, 0, 1]
    pred = write_preds(tmp_path / "pred", preds)
    rc, res = evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    assert rc == 0
    third = 100 / 3
    assert res["per_expression"]["v1/0"] == {"J": 100.0, "F": 100.0}
    assert res["per_expression"]["v1/1"] == pytest.approx({"J": third, "F": third}, abs=1e-12)
    assert res["per_expression"]["v1/2"] == {"J": 100.0, "F": 100.0}
    assert list(res["per_expression"]) == ["v1/0", "v1/1", "v1/2"]
    for k in ("J", "F", "J&F"):
        assert res[k] == pytest.approx(700 / 9, abs=1e-12)
    out = capsys.readouterr().out
    assert "J&F: 77.78" in out and "J: 77.78" in out and "F: 77.78" in out
    assert "3 expressions in 1 videos" in out


def test_cli_matches_metrics_on_blobs_and_workers_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = make_data(tmp_path / "data")
    preds = {k: rng.random((3, H, W)) < 0.3 for k in ("0", "1", "2")}
    preds["2"] = union(OBJ1, OBJ2) ^ (rng.random((3, H, W)) < 0.05)
    pred = write_preds(tmp_path / "pred", preds)
    _, one = evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    _, two = evaluate(tmp_path, "--data", str(data), "--pred", str(pred), "--workers", "2")
    assert one == two
    gts = {"0": union(OBJ1), "1": union(OBJ2), "2": union(OBJ1, OBJ2)}
    for k, gt in gts.items():
        s = evaluate_expression(gt, preds[k])
        assert one["per_expression"][f"v1/{k}"] == {"J": 100 * s.J, "F": 100 * s.F}
    assert 0 < one["J"] < 100 and 0 < one["F"] < 100


def test_cli_missing_frames_error_and_allow_missing(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    pred = write_preds(tmp_path / "pred", perfect_preds())
    os.remove(pred / "v1" / "0" / "00002.png")
    with pytest.raises(InputError, match=r"1 prediction .*v1.0.00002\.png.*--allow-missing"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    _, res = evaluate(tmp_path, "--data", str(data), "--pred", str(pred), "--allow-missing")
    # frame 2 of v1/0 counts as empty against a non-empty GT: J = F = [1, 1, 0]
    assert res["per_expression"]["v1/0"] == pytest.approx({"J": 200 / 3, "F": 200 / 3})
    assert res["J"] == pytest.approx((200 / 3 + 200) / 3)


def test_cli_missing_expression_folder_is_listed(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    preds = perfect_preds()
    del preds["1"]
    pred = write_preds(tmp_path / "pred", preds)
    with pytest.raises(InputError, match=r"v1.1. \(all 3 frames\)"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    _, res = evaluate(tmp_path, "--data", str(data), "--pred", str(pred), "--allow-missing")
    assert res["per_expression"]["v1/1"] == pytest.approx({"J": 100 / 3, "F": 100 / 3})


def test_cli_size_mismatch_names_the_file(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    pred = write_preds(tmp_path / "pred", perfect_preds())
    write_png(pred / "v1" / "2" / "00001.png", np.zeros((H, W - 1), dtype=bool))
    with pytest.raises(InputError, match=rf"v1.2.00001\.png: prediction is {H}x{W - 1}"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred))


def test_cli_unreadable_png_names_the_file(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    pred = write_preds(tmp_path / "pred", perfect_preds())
    (pred / "v1" / "1" / "00000.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"v1.1.00000\.png: cannot read"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    # the error crosses the process pool intact
    with pytest.raises(InputError, match=r"v1.1.00000\.png: cannot read"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred), "--workers", "2")


def test_cli_png_ground_truth_matches_mask_dict(tmp_path: Path) -> None:
    # meta lists a second video that the PNG GT does not have: it is not evaluated
    extra = {"v2": {"frames": FRAMES, "expressions": {"0": {"anno_id": [9]}}}}
    data = make_data(tmp_path / "data", extra_meta=extra)
    rng = np.random.default_rng(4)
    preds = {k: m ^ (rng.random(m.shape) < 0.1) for k, m in perfect_preds().items()}
    pred = write_preds(tmp_path / "pred", preds)
    gt_dir = write_preds(tmp_path / "gt", perfect_preds())
    _, from_png = evaluate(tmp_path, "--data", str(data), "--pred", str(pred), "--gt", str(gt_dir))
    assert list(from_png["per_expression"]) == ["v1/0", "v1/1", "v1/2"]
    os.remove(data / "mask_dict.json")
    with pytest.raises(InputError, match="mask_dict.json not found.*--gt"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    data2 = make_data(tmp_path / "data2")
    _, from_dict = evaluate(tmp_path, "--data", str(data2), "--pred", str(pred))
    assert from_png == from_dict


def test_cli_gt_video_not_in_meta_is_an_error(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    pred = write_preds(tmp_path / "pred", perfect_preds())
    gt_dir = write_preds(tmp_path / "gt", perfect_preds(), video="other")
    with pytest.raises(InputError, match="'?other'? .*not in .*meta_expressions.json"):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred), "--gt", str(gt_dir))


def test_cli_rejects_bad_workers(tmp_path: Path) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--data", "d", "--pred", "p", "--workers", "0"])


# ------------------------------------------------ the anno_id rule (one rule, every path)

NO_ANNO = {"v2": {"frames": FRAMES, "expressions": {"0": {"exp": "unlabelled"}}}}
EMPTY_ANNO = {"v3": {"frames": FRAMES, "expressions": {"0": {"exp": "nothing", "anno_id": []}}}}


def test_evaluate_leaves_out_an_expression_without_anno_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The official script's worker dies on the KeyError: that expression is not in its means.
    data = make_data(tmp_path / "data", {**NO_ANNO, **EMPTY_ANNO})
    pred = write_preds(tmp_path / "pred", perfect_preds())
    write_preds(pred, {"0": np.zeros((3, H, W), bool)}, video="v2")
    write_preds(pred, {"0": np.zeros((3, H, W), bool)}, video="v3")
    rc, res = evaluate(tmp_path, "--data", str(data), "--pred", str(pred))
    assert rc == 0
    assert sorted(res["per_expression"]) == ["v1/0", "v1/1", "v1/2", "v3/0"]
    # an empty anno_id list is scored against empty ground truth (official: zeros)
    assert res["per_expression"]["v3/0"] == {"J": 100.0, "F": 100.0}
    assert "1 expression(s) without 'anno_id' are not scored" in capsys.readouterr().err


def test_video_ground_truth_follows_the_same_rule(tmp_path: Path) -> None:
    from refine.ground_truth import VideoGroundTruth

    data = make_data(tmp_path / "data", {**NO_ANNO, **EMPTY_ANNO})
    assert VideoGroundTruth(str(data), "v2", (H, W))("0") is None  # not scored
    empty = VideoGroundTruth(str(data), "v3", (H, W))("0")
    assert empty is not None and empty.shape == (3, H, W) and not empty.any()
    assert VideoGroundTruth(str(data), "v1", (H, W))("2").sum() == union(OBJ1, OBJ2).sum()


def test_run_eval_does_not_score_an_expression_without_ground_truth() -> None:
    from types import SimpleNamespace

    from refine.batch import evaluate_result

    m = np.ones((3, H, W), bool)
    result = SimpleNamespace(stage1=m, sam2=m, fused=m)
    assert evaluate_result(result, None) == {}  # VideoGroundTruth's None: not scored
    assert set(evaluate_result(result, np.zeros_like(m))) == {"stage1", "sam2", "fused"}


# ------------------------------------------------------ RLE sizes are untrusted


def _one_rle_data(tmp_path: Path, rle_entry: dict) -> tuple[Path, Path]:
    data = make_data(tmp_path / "data")
    masks = json.loads((data / "mask_dict.json").read_text())
    masks["1"][0] = rle_entry
    (data / "mask_dict.json").write_text(json.dumps(masks))
    return data, write_preds(tmp_path / "pred", perfect_preds())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # 150 bytes declaring 30000 x 30000: refused before anything is decoded
        (
            {"size": [30000, 30000], "counts": "PPP1"},
            r"30000x30000 \(HxW\) but the masks are 24x32",
        ),
        ({"size": [-1, 32], "counts": "0"}, "'size' must be two positive integers"),
        ({"size": [H, W], "counts": [-3, H * W + 3]}, "non-negative and add up to"),
        ({"size": [H, W], "counts": [2**40]}, "add up to H x W = 768"),
        ({"size": [H, W], "counts": "0"}, "add up to H x W = 768"),
        ({"size": [H, W], "counts": "\x7f"}, "has a character"),
        ({"size": [H, W], "counts": "o"}, "ends inside a number"),
    ],
)
def test_evaluate_checks_rle_sizes_and_counts(tmp_path: Path, entry: dict, message: str) -> None:
    data, pred = _one_rle_data(tmp_path, entry)
    with pytest.raises(InputError, match=message):
        evaluate(tmp_path, "--data", str(data), "--pred", str(pred))


def test_rle_without_a_prediction_is_bounded() -> None:
    from refine.rle import MAX_RLE_PIXELS

    side = int(MAX_RLE_PIXELS**0.5) + 1
    with pytest.raises(InputError, match="over the limit"):
        expression_gt_from_mask_dict([[{"size": [side, side], "counts": "0"}]], "v/0")
