import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from refine.batch import BatchConfig, run_batch
from refine.cli import main
from refine.models import ModelSpec
from refine.stage1 import load_stage1_npz, save_stage1_npz
from refine.testing import StaticPropagator
from tests.clips import run_args

EXAMPLES = os.path.abspath("examples/data")


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(EXAMPLES, root)
    return root


def run_cli(root, out, *extra):
    return main(run_args(root, out, *extra))


def edit_npz(path, fn):
    arrays = dict(np.load(path, allow_pickle=False))
    fn(arrays)
    np.savez(path, **arrays)


def _missing_frame(root):
    os.remove(root / "JPEGImages/ball/00005.jpg")
    return "JPEGImages/ball", "disagree with meta_expressions.json"


def _t_mismatch(root):
    def cut(a):
        a["frame_names"] = a["frame_names"][:-1]
        for k in [k for k in a if k.endswith(("/scores", "/boxes", "/masks"))]:
            a[k] = a[k][:-1]

    edit_npz(root / "stage1/ball.npz", cut)
    return "stage1/ball.npz", "T or frame names mismatch"


def _wrong_shape(root):
    edit_npz(root / "stage1/ball.npz", lambda a: a.__setitem__("0/boxes", a["0/boxes"][..., :3]))
    return "stage1/ball.npz", "boxes must be"


def _nan_scores(root):
    def nan(a):
        a["0/scores"] = a["0/scores"].copy()
        a["0/scores"][2, 1] = np.nan

    edit_npz(root / "stage1/ball.npz", nan)
    return "stage1/ball.npz", "NaN"


def _exp_id_with_separator(root):
    def sep(a):
        for part in ("scores", "boxes", "masks"):
            a[f"..\\evil/{part}"] = a.pop(f"1/{part}")

    edit_npz(root / "stage1/ball.npz", sep)
    return "stage1/ball.npz", "not a plain file name"


def _pickled_seed_file(root):
    np.savez(
        root / "stage1/ball.npz",
        video_path=np.array("/x/JPEGImages/ball"),
        size=np.array([96, 128]),
        **{"0": np.array({"scores": 1}, dtype=object)},
    )
    return "stage1/ball.npz", "convert-referdino --trust-pickle"


def _missing_stage1(root):
    os.remove(root / "stage1/ball.npz")
    return "stage1/ball.npz", "no stage-1 results"


def _size_mismatch(root):
    edit_npz(root / "stage1/ball.npz", lambda a: a.__setitem__("video_size", np.array([90, 128])))
    return "stage1/ball.npz", "video_size"


BAD = [
    _missing_frame,
    _t_mismatch,
    _wrong_shape,
    _nan_scores,
    _exp_id_with_separator,
    _pickled_seed_file,
    _missing_stage1,
    _size_mismatch,
]


@pytest.mark.parametrize("breaker", BAD, ids=[b.__name__.strip("_") for b in BAD])
def test_bad_input_fails_with_one_line_naming_the_file(data, tmp_path, capsys, breaker):
    where, message = breaker(data)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    out = tmp_path / "out"
    rc = main(
        [
            "run",
            "--data",
            str(data),
            "--stage1",
            str(data / "stage1"),
            "--out",
            str(out),
            "--videos",
            "ball",
            "--random-weights",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc != 0
    assert len(lines) == 1, err
    assert where in lines[0] and message in lines[0], lines[0]
    after = sorted(str(p) for p in tmp_path.rglob("*"))
    outside = [p for p in after if p not in before and not p.startswith(str(out))]
    assert outside == []
    assert not list(out.rglob("*.png"))


def test_not_a_dataset_and_unknown_video(tmp_path, data, capsys):
    assert (
        main(
            [
                "run",
                "--data",
                str(tmp_path),
                "--stage1",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--random-weights",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "no JPEGImages/ folder" in capsys.readouterr().err
    assert run_cli(data, tmp_path / "o", "--videos", "nope") == 2
    assert "['nope'] are not in the data set" in capsys.readouterr().err


def _cfg(data, out, **kw):
    spec = ModelSpec("tiny", "cpu", random_weights=True)
    return BatchConfig(str(data), str(data / "stage1"), str(out), spec, **kw)


def tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_batch_writes_layout_markers_and_resumes(data, tmp_path):
    out = tmp_path / "out"
    reports = run_batch(_cfg(data, out), None, ["cpu"], StaticPropagator())
    assert sorted((r.video, r.written) for r in reports) == [
        ("ball", ["0", "1"]),
        ("birds", ["0", "1"]),
    ]
    full = tree_bytes(out)
    assert len(full) == 4 * 12 and "birds/0/00011.png" in full
    marker = json.loads((out / ".refine/birds/0.json").read_text())
    assert marker["multi"] is True and marker["kept_queries"] == [0, 1]
    # simulate a crash: one expression lost, one half-written temp folder left behind
    shutil.rmtree(out / "birds/1")
    (out / ".refine/birds/1.json").unlink()
    (out / "birds/.1.tmp-999").mkdir()
    (out / "birds/.1.tmp-999/00000.png").write_bytes(b"partial")
    prop = StaticPropagator()
    reports = run_batch(_cfg(data, out, resume=True), None, ["cpu"], prop)
    assert sorted((r.video, r.written, r.skipped) for r in reports) == [
        ("ball", [], ["0", "1"]),
        ("birds", ["1"], ["0"]),
    ]
    assert len(prop.calls) == 1
    assert tree_bytes(out) == full
    # settings differ → resume refuses to mix outputs
    reports = run_batch(_cfg(data, out, resume=True, precision="bf16"), None, ["cpu"], prop)
    assert all("other settings" in r.error for r in reports)


def test_zip_has_videos_at_root(data, tmp_path, capsys):
    out = tmp_path / "out"
    run_batch(_cfg(data, out), None, ["cpu"], StaticPropagator())
    assert main(["zip", str(out), str(tmp_path / "sub.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        names = zf.namelist()
    assert len(names) == 48 and all(n.split("/")[0] in ("ball", "birds") for n in names)
    assert not any(".refine" in n for n in names)
    assert main(["zip", str(tmp_path / "empty"), str(tmp_path / "x.zip")]) == 2


class Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def seed_file(path, frames_dir, payload=None):
    s1 = load_stage1_npz(f"{EXAMPLES}/stage1/ball.npz")
    exps = {
        k: {"scores": e.scores, "boxes": e.boxes, "masks": e.masks.astype(np.float32)}
        for k, e in s1.expressions.items()
    }
    if payload:
        exps["0"]["extra"] = Payload(payload)
    np.savez(
        path,
        video_path=np.array(str(frames_dir)),
        size=np.array([96, 128]),
        **{k: np.array(v, dtype=object) for k, v in exps.items()},
    )
    return s1


def test_convert_referdino_refuses_without_trust_and_converts_with_it(tmp_path, capsys):
    src = tmp_path / "Annotations_intermediate"
    src.mkdir()
    marker = tmp_path / "pwned"
    s1 = seed_file(src / "ball.npz", "/elsewhere/JPEGImages/ball", payload=str(marker))
    assert main(["convert-referdino", str(src), str(tmp_path / "safe")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "safe").exists()
    rc = main(
        [
            "convert-referdino",
            "--trust-pickle",
            str(src),
            str(tmp_path / "safe"),
            "--frames-root",
            f"{EXAMPLES}/JPEGImages",
        ]
    )
    assert rc == 0
    assert marker.exists()  # trusted: the pickle did run, as the flag says it will
    got = load_stage1_npz(str(tmp_path / "safe/ball.npz"))
    assert got.frame_names == s1.frame_names and got.video_size == (96, 128)
    np.testing.assert_array_equal(got.expressions["1"].scores, s1.expressions["1"].scores)


def test_run_on_seed_files_never_unpickles(tmp_path, data, capsys):
    marker = tmp_path / "pwned"
    seed_file(data / "stage1/ball.npz", data / "JPEGImages/ball", payload=str(marker))
    assert run_cli(data, tmp_path / "out", "--videos", "ball") == 1
    assert "convert-referdino --trust-pickle" in capsys.readouterr().err
    assert not marker.exists()


def test_save_is_atomic_on_existing_output(tmp_path):
    s1 = load_stage1_npz(f"{EXAMPLES}/stage1/ball.npz")
    save_stage1_npz(str(tmp_path / "a.npz"), s1)
    assert os.listdir(tmp_path) == ["a.npz"]


def test_run_eval_scores_match_evaluate_on_the_written_pngs(data, tmp_path, capsys):
    from refine.batch import summarize_scores

    out = tmp_path / "out"
    run_batch(_cfg(data, out, evaluate=True), None, ["cpu"], StaticPropagator())
    summary = summarize_scores(str(out), ["ball", "birds"])
    assert set(summary) == {"stage1", "sam2", "fused"}
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(data),
                "--pred",
                str(out),
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    official = json.loads((tmp_path / "e.json").read_text())
    ours = summary["fused"]["per_expression"]
    assert sorted(ours) == sorted(official["per_expression"])
    for key, s in official["per_expression"].items():
        assert ours[key] == pytest.approx(s, abs=1e-9), key
    assert summary["fused"]["J&F"] == pytest.approx(official["J&F"])
    # the static fake loses the moving birds: fusion must beat SAM2 alone on birds/0
    per = summary["fused"]["per_expression"]["birds/0"]
    assert per["J"] > summary["sam2"]["per_expression"]["birds/0"]["J"]


class FailingOnce(StaticPropagator):
    """A fake that runs out of memory on its first video, then works."""

    failed = False

    def track(self, frames, prompt_sets, progress=None):
        if not self.failed:
            self.failed = True
            raise RuntimeError("CUDA out of memory (simulated)")
        yield from super().track(frames, prompt_sets, progress)


def test_batch_keeps_going_when_a_video_fails(data, tmp_path):
    def nan(a):
        a["0/scores"] = a["0/scores"].copy()
        a["0/scores"][0, 0] = np.nan

    edit_npz(data / "stage1/ball.npz", nan)
    out = tmp_path / "out"
    reports = {r.video: r for r in run_batch(_cfg(data, out), None, ["cpu"], StaticPropagator())}
    assert "NaN" in reports["ball"].error and reports["birds"].written == ["0", "1"]
    assert (out / "birds/1/00011.png").exists() and not (out / "ball").exists()
    shutil.copy(f"{EXAMPLES}/stage1/ball.npz", data / "stage1/ball.npz")
    reports = {
        r.video: r for r in run_batch(_cfg(data, tmp_path / "o2"), None, ["cpu"], FailingOnce())
    }
    assert "RuntimeError: CUDA out of memory" in reports["ball"].error
    assert reports["birds"].error is None and reports["birds"].written == ["0", "1"]


def test_two_workers_share_the_queue_and_go_on_past_a_failing_video(data, tmp_path):
    """The multi-worker queue: a broken video is reported at the end with a non-zero exit;
    every other video is written. Four videos for two workers, so both take several."""
    import subprocess
    import sys

    meta_path = data / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    for src in ("ball", "birds"):
        dst = f"{src}2"
        shutil.copytree(data / "JPEGImages" / src, data / "JPEGImages" / dst)
        shutil.copy(data / "stage1" / f"{src}.npz", data / "stage1" / f"{dst}.npz")
        meta["videos"][dst] = meta["videos"][src]
    meta_path.write_text(json.dumps(meta))
    _nan_scores(data)  # breaks ball
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "refine", *run_args(data, out, "--workers", "2")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "ball.npz" in errors[0] and "NaN" in errors[0], proc.stderr
    assert not (out / "ball").exists()
    for video in ("ball2", "birds", "birds2"):
        frames = meta["videos"][video]["frames"]
        for exp_id in meta["videos"][video]["expressions"]:
            assert (out / video / exp_id / f"{frames[-1]}.png").exists(), (video, exp_id)


# ------------------------------------------- the output tree: no links, only refine's files


def test_run_refuses_a_symlinked_video_folder_in_out(data, tmp_path):
    # a data set that ships out/ball -> elsewhere, run with --out DATA/out
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "0").mkdir(parents=True)
    (elsewhere / "0" / "keep.txt").write_text("not refine's")
    out = data / "out"
    out.mkdir()
    (out / "ball").symlink_to(elsewhere)
    reports = run_batch(_cfg(data, out), ["ball"], ["cpu"], StaticPropagator())
    assert "out/ball: is a symbolic link" in reports[0].error
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["0", "keep.txt"]


def test_run_refuses_a_symlinked_marker_folder(data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".refine").symlink_to(elsewhere)
    reports = run_batch(_cfg(data, out), ["ball"], ["cpu"], StaticPropagator())
    assert "out/.refine: is a symbolic link" in reports[0].error
    assert list(elsewhere.iterdir()) == []


def test_run_does_not_delete_what_it_did_not_write(data, tmp_path):
    out = tmp_path / "out"
    (out / "ball" / "0").mkdir(parents=True)
    (out / "ball" / "0" / "notes.txt").write_text("mine")
    reports = run_batch(_cfg(data, out), ["ball"], ["cpu"], StaticPropagator())
    assert "notes.txt: a file that refine did not write" in reports[0].error
    assert (out / "ball" / "0" / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(out / "ball")) == ["0"]  # no temporary folder left


@pytest.mark.parametrize(
    ("link", "to"),
    [("ball/0/00003.png", "secret"), ("ball/0", "out/ball/1"), ("ball", "elsewhere")],
)
def test_zip_takes_regular_files_only(data, tmp_path, capsys, link, to):
    out = tmp_path / "out"
    run_batch(_cfg(data, out), ["ball"], ["cpu"], StaticPropagator())
    (tmp_path / "secret").write_text("root:x:0:0")
    shutil.copytree(out / "ball", tmp_path / "elsewhere")
    target = out / link
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.symlink_to(tmp_path / to)
    assert main(["zip", str(out), str(tmp_path / "sub.zip")]) == 2
    assert f"{link}: is a symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "sub.zip").exists()


def test_zip_refuses_a_fifo_named_like_a_mask(data, tmp_path, capsys):
    out = tmp_path / "out"
    run_batch(_cfg(data, out), ["ball"], ["cpu"], StaticPropagator())
    os.remove(out / "ball/0/00003.png")
    os.mkfifo(out / "ball/0/00003.png")
    assert main(["zip", str(out), str(tmp_path / "sub.zip")]) == 2
    assert "00003.png: is a FIFO, not a regular file" in capsys.readouterr().err
