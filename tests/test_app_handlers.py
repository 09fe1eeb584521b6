"""The app's handlers with the fake StaticPropagator (no SAM2, no browser)."""

from __future__ import annotations

import html
import os
import re
import types
import warnings
import zipfile
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from demo.callbacks import Callbacks
from demo.config import EXAMPLES_ROOT, AppConfig, parse_args
from demo.controls import Controls
from demo.render import VIEW_OUTPUTS
from demo.ui import launch_kwargs
from refine.errors import InputError
from refine.limits import UploadLimits
from refine.memory import MemoryConfig
from refine.overlay import STAGE_COLORS, overlay_mask
from refine.testing import StaticPropagator
from tests.test_app_session import OomOnce as FailOnce

CONTROLS = Controls("tiny", "cpu", "random", "mask", 0.275)


def no_progress(*args, **kwargs) -> None:
    return None


@pytest.fixture
def prop():
    return StaticPropagator()


@pytest.fixture
def cb(prop):
    return Callbacks(AppConfig(propagator_factory=lambda spec: prop))


@pytest.fixture
def birds(cb):
    """Session with birds/0 open."""
    out = cb.cases.open_example(None, "birds/0", CONTROLS)
    yield out["session"]
    out["session"].close()


def _message(out: dict) -> str:
    """The status message of a handler's failure (the rest of the page unchanged)."""
    assert set(out) == {"status"}, f"expected only a status message, got {sorted(out)}"
    return html.unescape(out["status"]).removeprefix("⚠ **").removesuffix("**")


def _fails(out: dict, pattern: str) -> None:
    assert re.search(pattern, _message(out)), _message(out)


def _run(cb, session, exp_id="0", controls=CONTROLS, rho=2 / 3, vote=0.5, t=0):
    return cb.runs.run(session, exp_id, controls, rho, vote, t, progress=no_progress)


def test_open_example_shows_stage1_before_any_sam2_run(cb, prop):
    out = cb.cases.open_example(None, "birds/0", CONTROLS)
    assert set(out) == set(VIEW_OUTPUTS)
    assert out["img_stage1"].shape == (96, 128, 3)
    assert out["img_sam2"] is None and out["img_fused"] is None and out["vid_fused"] is None
    assert "has not run" in out["decision"] and "the two birds flying apart" in out["case_info"]
    assert out["expression"]["choices"][0] == ("0: the two birds flying apart", "0")
    assert out["frame"]["maximum"] == 11 and out["sam2_runs"] == "SAM2 runs this session: 0"
    assert out["banner"]["visible"] is True  # random weights chosen
    assert prop.calls == []
    out["session"].close()


def test_rho_refuses_from_cached_masks_without_a_new_sam2_call(cb, prop, birds):
    out = _run(cb, birds, t=6)
    assert len(prop.calls) == 1 and out["sam2_runs"] == "SAM2 runs this session: 1"
    assert "Fusion: union of SAM2 and stage 1" in out["decision"]
    assert "on 10 of 12 comparable frames > v = 1/2" in out["decision"]
    union = out["img_fused"]
    fast = cb.runs.refuse(birds, 0.0, 0.5, 6)
    assert set(fast) == {"img_fused", "decision"}
    assert "Fusion: SAM2 only" in fast["decision"] and "ρ = 0" in fast["decision"]
    assert not np.array_equal(fast["img_fused"], union)
    r = birds.run.result
    expected = overlay_mask(birds.case.frames.rgb(6), r.sam2[6], STAGE_COLORS["fused"])
    np.testing.assert_array_equal(fast["img_fused"], expected)
    np.testing.assert_array_equal(birds.mask("fused", 6), r.sam2[6])
    slow = cb.runs.refuse_slow(birds, progress=no_progress)
    assert slow["vid_fused"].endswith("fused-sam2.mp4")
    assert slow["metrics"][2][0] == "fused" and slow["metrics"][2][1:] == slow["metrics"][1][1:]
    back = cb.runs.refuse(birds, 2 / 3, 0.5, 6)
    np.testing.assert_array_equal(back["img_fused"], union)
    assert len(prop.calls) == 1  # still the one SAM2 run


def test_slider_values_become_small_fractions(cb, prop, birds):
    _run(cb, birds)
    out = cb.runs.refuse(birds, 0.6666666666666666, 0.5, 0)
    assert "ρ = 2/3" in out["decision"]
    out = cb.runs.refuse(birds, 0.67, 0.35, 0)
    assert "ρ = 67/100 ×" in out["decision"] and "v = 7/20" in out["decision"]


def test_theta_change_says_sam2_must_run_again(cb, prop, birds):
    _run(cb, birds)
    out = cb.runs.controls_changed(birds, Controls("tiny", "cpu", "random", "box", 0.5), 0)
    assert "SAM2 must run again" in out["status"]
    assert "θ is 0.5 but the masks shown used 0.275" in out["status"]
    assert "prompt is box" in out["status"]
    assert len(prop.calls) == 1
    out = _run(cb, birds, controls=Controls("tiny", "cpu", "random", "box", 0.5))
    assert len(prop.calls) == 2 and out["status"].startswith("Ran the FAKE SAM2")
    assert prop.calls[-1][0].kind == "box"
    out = _run(cb, birds, controls=Controls("tiny", "cpu", "random", "box", 0.5))
    assert len(prop.calls) == 2  # same settings: the cached run
    assert out["status"].startswith("Shown from this session's cache")


def test_branches_of_the_other_examples(cb, prop):
    out = cb.cases.open_example(None, "ball/0", CONTROLS)
    s = out["session"]
    out = _run(cb, s)
    assert "Fusion: SAM2 only" in out["decision"]
    out = cb.cases.select_expression(s, "1", CONTROLS)
    assert "has not run" in out["decision"]
    out = _run(cb, s, exp_id="1")
    assert "No query passed θ = 0.275" in out["decision"] and out["plot_ratio"] is None
    assert len(prop.calls) == 1
    s.close()


def test_show_frame_and_downloads(cb, prop, birds):
    out = cb.runs.show_frame(birds, 3)
    assert out["img_sam2"] is None and out["img_stage1"].shape == (96, 128, 3)
    _fails(cb.runs.downloads(birds), "run SAM2 first")
    _run(cb, birds)
    out = cb.runs.show_frame(birds, 99)  # clamped to the last frame
    assert out["img_fused"].shape == (96, 128, 3)
    files = cb.runs.downloads(birds)["downloads"]
    assert files[0].endswith(".zip") and all(f.endswith(".mp4") for f in files[1:])
    with zipfile.ZipFile(files[0]) as zf:
        assert len(zf.namelist()) == 12 and zf.namelist()[0] == "birds/0/00000.png"


def test_user_errors_become_gr_errors_with_escaped_text(cb, tmp_path):
    out = cb.cases.open_upload(None, str(tmp_path / "v.mp4"), None, CONTROLS)
    assert "&lt;exp_id&gt;/&lt;frame&gt;.png" in out["status"]  # shown as text, not HTML
    _fails(cb.cases.open_example(None, "/0", CONTROLS), "no video")
    _fails(
        cb.cases.open_example(None, "birds/7", CONTROLS), "no stage-1 results for expression '7'"
    )
    _fails(_run(cb, None), "open a case first")
    with pytest.raises(InputError, match="weights 'maybe' must be"):
        Controls("tiny", "cpu", "maybe", "mask", 0.3)


def test_missing_checkpoint_names_the_download_command(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    import refine.models

    def offline(**kwargs):
        raise LocalEntryNotFoundError("offline")

    monkeypatch.setattr(refine.models, "CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    cb = Callbacks(AppConfig())  # real SAM2: the checkpoint is checked before anything loads
    session = cb.cases.open_example(None, "birds/0", CONTROLS)["session"]
    message = _message(
        _run(cb, session, controls=Controls("tiny", "cpu", "checkpoint", "mask", 0.275))
    )
    session.close()
    assert "python checkpoints/download.py tiny" in message
    assert "Random weights (masks meaningless)" in message


def test_stop_with_nothing_running_says_so_and_changes_nothing(cb, prop, birds):
    assert cb.runs.stop(birds) == {"status": "Nothing is running."}
    assert cb.runs.stop(None) == {"status": "Nothing is running."}
    _run(cb, birds)  # the Stop above did not cancel this run
    assert len(prop.calls) == 1 and birds.run is not None


def test_stop_during_a_run_leaves_masks_unchanged(cb, prop, birds):
    with cb.runs.track(birds):  # as while a run of this session is in progress
        assert cb.runs.stop(birds) == {"status": "Stopping SAM2 after the current frame…"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _run(cb, birds)
    assert "Stopped" in out["status"] and prop.calls == [] and birds.run is None
    assert any("stopped" in str(w.message) for w in caught)
    cb.runs.begin(birds)
    _run(cb, birds)
    assert len(prop.calls) == 1


def test_rank_examples_then_open_a_row(cb, prop):
    out = cb.cases.open_example(None, "birds/0", CONTROLS)
    s = out["session"]
    out = cb.ranks.rank(s, "examples", "fused", 50, CONTROLS, 2 / 3, 0.5, progress=no_progress)
    table = out["rank_table"]
    assert table[0][1:3] == ["ball", "1"] and len(table) == 4
    assert [row[6] for row in table] == sorted(row[6] for row in table)
    calls = len(prop.calls)
    birds_row = next(i for i, row in enumerate(table) if row[1:3] == ["birds", "0"])
    # the table sorted in the browser: the clicked row is the first one shown (index 0) but
    # holds birds/0; the row's values decide (bug: the index opened ball/1)
    evt = types.SimpleNamespace(index=[0, 2], row_value=table[birds_row])
    view = cb.ranks.open_ranked(s, CONTROLS, evt)
    assert "Expression **0**" in view["case_info"] and "birds" in view["case_info"]
    assert "Fusion: union" in view["decision"]
    assert len(prop.calls) == calls  # opened from the cached run
    delta = cb.ranks.reorder(s, "delta")["rank_table"]
    assert [r[7] for r in delta] == sorted(r[7] for r in delta)
    _fails(
        cb.ranks.rank(s, "examples", "fused", 0, CONTROLS, 2 / 3, 0.5, progress=no_progress),
        "at least 1",
    )
    s.close()


def test_browse_a_data_set(prop, tmp_path):
    cb = Callbacks(AppConfig(mevis_root=EXAMPLES_ROOT, propagator_factory=lambda spec: prop))
    assert cb.ctx.sources["dataset"].videos() == ["ball", "birds"]
    assert ("data set (--mevis-root)", "dataset") in cb.ranks.rank_sets()
    out = cb.cases.open_dataset_video(None, "ball", CONTROLS)
    assert out["expression"]["choices"] == [
        ("0: the blue ball", "0"),
        ("1: the ball that jumps over the fence", "1"),
    ]
    assert "Expression **0**: “the blue ball”" in out["case_info"]
    out = cb.cases.select_expression(out["session"], "1", CONTROLS)
    assert "the ball that jumps over the fence" in out["case_info"]
    out["session"].close()
    empty = Callbacks(AppConfig(mevis_root=EXAMPLES_ROOT, stage1_dir=str(tmp_path)))
    _fails(
        empty.cases.open_dataset_video(None, "ball", CONTROLS),
        "no stage-1 results for video 'ball'.*--stage1-dir",
    )


def test_fake_sam2_mode_and_cli_config(monkeypatch):
    cb = Callbacks(AppConfig(fake_sam2=True))
    out = cb.cases.open_example(
        None, "birds/0", Controls("tiny", "cpu", "checkpoint", "mask", 0.275)
    )
    assert out["banner"]["visible"] is True
    out["session"].close()
    monkeypatch.setenv("REFINE_APP_IMAGE_SIZE", "128")
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    cfg = parse_args(["--port", "9", "--model-size", "tiny", "--random-weights"])
    assert (cfg.port, cfg.model_size, cfg.random_weights, cfg.image_size) == (9, "tiny", True, 128)
    assert cfg.host == "127.0.0.1"
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # as on Hugging Face Spaces
    assert parse_args([]).host == "0.0.0.0"
    monkeypatch.setenv("REFINE_APP_IMAGE_SIZE", "100")
    with pytest.raises(InputError, match="multiple of 32"):
        parse_args([])
    with pytest.raises(InputError, match="--stage1-dir needs --mevis-root"):
        AppConfig(stage1_dir="x")


def test_sam2_out_of_memory_is_a_message_and_the_next_run_works():
    import torch

    prop = FailOnce(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB"))
    cb = Callbacks(AppConfig(propagator_factory=lambda spec: prop))
    session = cb.cases.open_example(None, "birds/0", CONTROLS)["session"]
    message = _message(_run(cb, session))
    message = message
    assert "SAM2 ran out of memory on birds/0" in message and "CUDA out of memory" in message
    assert "smaller SAM2 model (tiny or small)" in message and "fewer frames" in message
    assert "you can run again" in message
    out = _run(cb, session)  # the same session runs now
    assert "Fusion: union of SAM2 and stage 1" in out["decision"]
    assert out["sam2_runs"] == "SAM2 runs this session: 1" and len(prop.calls) == 1
    session.close()


def test_unexpected_errors_become_messages_and_the_session_stays_usable(caplog):
    prop = FailOnce(ZeroDivisionError("division by zero"))
    cb = Callbacks(AppConfig(propagator_factory=lambda spec: prop))
    session = cb.cases.open_example(None, "birds/0", CONTROLS)["session"]
    message = _message(_run(cb, session))
    assert message.startswith("Internal error in run: ZeroDivisionError: division by")
    assert "The app keeps running" in message
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert "Fusion: union" in _run(cb, session)["decision"]
    session.close()


def test_upload_limits_from_the_config_refuse_uploads(tmp_path):
    import io

    from PIL import Image

    frames_zip = tmp_path / "frames.zip"
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for t in range(12):
            buf = io.BytesIO()
            Image.fromarray(np.zeros((96, 128, 3), np.uint8)).save(buf, format="PNG")
            zf.writestr(f"{t:05d}.png", buf.getvalue())
    stage1 = f"{EXAMPLES_ROOT}/stage1/birds.npz"
    cb = Callbacks(AppConfig(fake_sam2=True, limits=UploadLimits(max_frames=10)))
    _fails(
        cb.cases.open_upload(None, str(frames_zip), stage1, CONTROLS),
        "frames.zip: 12 frames, over the limit of 10",
    )
    cb = Callbacks(AppConfig(fake_sam2=True, limits=UploadLimits(max_frame_pixels=96 * 127)))
    _fails(
        cb.cases.open_upload(None, str(frames_zip), stage1, CONTROLS),
        r"'00000.png' is 128x96; at most 12192 pixels",
    )
    cb = Callbacks(AppConfig(fake_sam2=True))
    out = cb.cases.open_upload(None, str(frames_zip), stage1, CONTROLS)
    assert out["frame"]["maximum"] == 11
    out["session"].close()


def test_pickled_npz_upload_is_refused_by_the_callback(cb, tmp_path):
    from tests.test_app_session import pickled_upload

    frames_zip, npz, target = pickled_upload(tmp_path)
    _fails(
        cb.cases.open_upload(None, frames_zip, npz, CONTROLS),
        "convert-referdino --trust-pickle",
    )
    assert not os.path.exists(target)


def test_limit_flags(monkeypatch):
    monkeypatch.delenv("REFINE_APP_IMAGE_SIZE", raising=False)
    default = parse_args([]).limits
    assert default == UploadLimits()
    cfg = parse_args(
        [
            "--max-upload-mb",
            "1.5",
            "--max-frames",
            "50",
            "--max-pixels",
            "640",
            "--max-duration",
            "9",
        ]
    )
    assert cfg.limits == UploadLimits(
        max_upload_bytes=3 * 2**19, max_frames=50, max_frame_pixels=640, max_duration_s=9.0
    )
    for flag in ("--max-upload-mb", "--max-frames", "--max-pixels", "--max-duration"):
        with pytest.raises(InputError, match=f"{flag} 0 must be positive"):
            parse_args([flag, "0"])
    assert launch_kwargs(cfg)["max_file_size"] == 3 * 2**19


def test_cache_flag_reaches_the_sam2_tracker():
    from demo.config import parse_args
    from demo.gpu import make_tracker, track_expression

    config = parse_args(["--cache-mb", "64"])
    assert config.cache_mb == 64
    tracker = make_tracker(None, config.cache_mb)
    assert tracker.func is track_expression and tracker.keywords == {"cache_mb": 64}
    with pytest.raises(InputError, match="--cache-mb must be ≥ 0"):
        parse_args(["--cache-mb", "-1"])


def test_sam2_tracker_builds_its_propagator_with_the_cache_bound(monkeypatch):
    import demo.gpu as gpu
    import refine.propagation as propagation

    made = []

    class Spy:
        def __init__(self, spec, cache_mb, memory):
            made.append((cache_mb, memory.mode))

    monkeypatch.setattr(propagation, "Sam2Propagator", Spy)
    monkeypatch.setattr(gpu, "refine_expression", lambda *a: "result")
    samurai = MemoryConfig("samurai")
    assert gpu.make_tracker(None, 64)(None, "0", None, None, None, None) == "result"
    assert gpu.make_tracker(None, None)(None, "0", None, None, None, None, samurai) == "result"
    assert made == [(64, "sam2"), (4096.0, "samurai")]


def test_the_memory_control_keys_the_run_cache_and_needs_a_new_run(cb, birds, prop):
    """Switching SAM2 ↔ SAMURAI is a new run (cached apart); the page says so until Run."""
    samurai = replace(CONTROLS, memory="samurai")
    assert cb.ctx.settings(samurai).memory == MemoryConfig("samurai")
    assert cb.ctx.settings(samurai) != cb.ctx.settings(CONTROLS)
    _run(cb, birds)
    note = html.unescape(cb.runs.controls_changed(birds, samurai, 0)["status"])
    assert "tracking memory is samurai but the masks shown used sam2" in note
    _run(cb, birds, controls=samurai)
    _run(cb, birds)  # both cached: the third Run tracks nothing
    assert len(prop.calls) == 2
    with pytest.raises(InputError, match="memory 'kalman' is not one of"):
        replace(CONTROLS, memory="kalman")


def test_every_handler_answers_before_any_case(cb):
    """Bug: on a fresh page the frame slider, ρ/v and others raised or returned nothing
    (Gradio: "didn't return enough output values")."""
    assert cb.runs.show_frame(None, 3) == {"img_stage1": None, "img_sam2": None, "img_fused": None}
    assert cb.runs.refuse(None, 0.5, 0.5, 3) == {"status": ""}
    assert cb.runs.refuse(None, float("nan"), 0.5, 3)["status"].startswith("⚠")
    assert set(cb.runs.refuse_slow(None, progress=no_progress)) == {"status"}
    assert cb.runs.videos(None) == {"vid_stage1": None, "vid_sam2": None, "vid_fused": None}
    assert set(cb.runs.controls_changed(None, CONTROLS, 0)) == {"banner"}
    assert cb.cases.select_expression(None, "0", CONTROLS)["expression"]["value"] is None
    assert cb.ranks.reorder(None, "fused") == {"rank_table": []}
    _fails(cb.runs.downloads(None), "run SAM2 first")
    _fails(cb.ranks.open_ranked(None, CONTROLS, types.SimpleNamespace(row_value=[])), "rank")


def test_rho_and_v_before_a_run_are_kept_without_errors(cb, birds, caplog):
    out = cb.runs.refuse(birds, 0.25, 0.75, 0)  # a case open, SAM2 not run yet
    assert out == {"status": ""} and not caplog.records
    assert (birds.area_ratio, birds.vote) == (Fraction(1, 4), Fraction(3, 4))
    out = cb.runs.show_frame(birds, float("nan"))
    assert out["img_stage1"].shape == (96, 128, 3)


def test_expression_list_closed_without_a_change_keeps_the_view(cb, birds):
    assert cb.cases.select_expression(birds, "0", CONTROLS, 7) == {
        "expression": {"__type__": "update", "value": "0"}
    }
    out = cb.cases.select_expression(birds, "the yel", CONTROLS, 7)  # typed, not chosen
    assert out["expression"]["value"] == "0" and "pick one from the list" in out["status"]
    out = cb.cases.select_expression(birds, "1", CONTROLS, 7)
    assert out["frame"]["value"] == 7 and "the yellow bird" in out["case_info"]


def test_small_wording(cb, birds):
    from demo.views import plural

    assert plural(1, "expression") == "1 expression" and plural(2, "frame") == "2 frames"
    _run(cb, birds)
    out = cb.runs.refuse(birds, 1.0, 0.5, 0)
    assert "under ρ = 1 ×" in out["decision"] and "smaller than 1 of" not in out["decision"]


def test_closing_the_tab_while_videos_are_written_is_not_an_error(cb, birds, caplog):
    """Bug: the tab closed during video encoding (its files deleted) → BrokenPipe traceback."""
    _run(cb, birds)

    def close_tab(done: int, total: int) -> None:
        birds.remove_files()  # what the unload event does
        raise BrokenPipeError(32, "Broken pipe")  # ffmpeg's pipe, its output folder gone

    out = cb.runs.videos(birds, progress=lambda *a, **k: close_tab(0, 0))
    assert set(out) == {"status"} and "the tab closed" in out["status"]
    assert not [r for r in caplog.records if r.exc_info]


def test_progress_is_a_fraction_never_over_one(cb, birds):
    seen = []

    def progress(value, desc=None, **kwargs):
        seen.append(value)

    cb.runs.run(birds, "0", CONTROLS, 2 / 3, 0.5, 0, progress=progress)
    assert seen and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in seen)


def test_start_size_is_tiny_without_a_checkpoint(monkeypatch, tmp_path):
    import refine.models

    monkeypatch.setattr(refine.models, "CHECKPOINT_DIR", str(tmp_path))
    assert AppConfig(random_weights=True).start_size() == "tiny"
    assert AppConfig().start_size() == "tiny"  # no checkpoint on disk; the hub is not asked
    (tmp_path / "sam2.1_hiera_small.pt").write_bytes(b"x")
    assert AppConfig().start_size() == "small"
    assert AppConfig(model_size="large", random_weights=True).start_size() == "large"


def test_rank_by_the_change_between_memories_runs_both(cb, prop):
    s = cb.cases.open_example(None, "birds/0", CONTROLS)["session"]
    out = cb.ranks.rank(s, "examples", "fused", 50, CONTROLS, 2 / 3, 0.5, progress=no_progress)
    assert [row[9] for row in out["rank_table"]] == [None] * 4  # one memory: no change column
    _fails(cb.ranks.reorder(s, "memory"), "one tracking memory only")
    out = cb.ranks.rank(s, "examples", "memory", 50, CONTROLS, 2 / 3, 0.5, progress=no_progress)
    # the fake propagator tracks alike with either memory: every change is 0
    assert [row[9] for row in out["rank_table"]] == [0.0] * 4
    assert len(prop.calls) == 6  # 3 tracked expressions × 2 memories
    s.close()


def test_a_non_default_theta_reaches_the_pipeline(cb, prop, birds):
    """θ from the page decides which queries are kept (here: none at 0.95)."""
    out = _run(cb, birds, controls=replace(CONTROLS, threshold=0.95))
    assert "No query passed θ = 0.95" in out["decision"]
    assert prop.calls == []  # nothing kept: SAM2 is not run
    _run(cb, birds)
    assert len(prop.calls) == 1 and len(prop.calls[0]) == 2  # both birds kept at 0.275


def test_a_case_released_by_the_memory_budget_is_explained_on_the_next_move(cb, birds):
    birds.release_case(birds.case, "after 20 minutes without use")
    out = cb.runs.show_frame(birds, 3)
    assert out["img_stage1"] is None
    assert "birds was closed after 20 minutes without use: open it again" in out["status"]
    _fails(_run(cb, birds), r"^birds was closed after 20 minutes without use")
    again = cb.cases.open_example(birds, "birds/0", CONTROLS)
    assert again["img_stage1"] is not None and birds.notice is None
