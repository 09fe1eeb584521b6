"""``python -m refine bench`` on a tiny synthetic video: identical masks, encoder-call counts,
its JSON, and that its timing wrappers leave the cached predictor as they found it.

Speeds are the benchmark's business; nothing here is timed."""

import json

from refine import bench
from refine.models import ModelSpec, get_predictor

T, E, SIZE = 6, 3, 128


def test_bench_schedules_share_encoder_work_and_match_masks(tmp_path):
    out = tmp_path / "bench.json"
    args = ["-T", str(T), "-E", str(E), "--image-size", str(SIZE), "--repeat", "2"]
    assert bench.main([*args, "--height", "96", "--width", "128", "--json", str(out)]) == 0
    r = json.loads(out.read_text())

    assert r["masks_identical"] is True
    assert r["expressions_tracked"] == E
    assert r["ours"]["encoder_calls"] == T  # each frame encoded once for all expressions
    # the seed's schedule encodes each expression's frames again, both directions
    assert r["seed"]["encoder_calls"] >= E * T
    # both schedules run the same SAM2 per-object steps; only encoder work differs
    assert r["ours"]["object_steps"] == r["seed"]["object_steps"] > r["tracking_steps"] >= E * T
    assert r["limit_seconds"] > r["tracking_steps"] * r["track_seconds_per_step"] > 0
    # --repeat 2: two alternating runs each, the fastest reported
    assert len(r["runs"]["seed"]) == len(r["runs"]["ours"]) == 2
    assert r["ours"]["seconds"] == min(run["seconds"] for run in r["runs"]["ours"])


def test_component_timer_restores_the_patched_predictor():
    pred = get_predictor(ModelSpec("tiny", "cpu", random_weights=True, seed=0, image_size=SIZE))
    patched_forward = pred.forward_image
    timer = bench.ComponentTimer(pred)
    assert pred.forward_image is not patched_forward
    timer.restore()
    assert pred.forward_image == patched_forward  # refine's call counter still in place
    assert "_run_single_frame_inference" not in vars(pred)


def test_bench_rejects_a_repeat_below_one(capsys):
    from refine.cli import main

    assert main(["bench", "--repeat", "0"]) == 2
    assert "--repeat must be at least 1, got 0" in capsys.readouterr().err


def test_long_video_bench_runs_both_modes_in_subprocesses(tmp_path):
    out = tmp_path / "long.json"
    args = ["--long-video", "-T", "60", "--image-size", "128", "--track-frames", "3"]
    assert bench.main([*args, "--height", "64", "--width", "96", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for mode in ("ours", "plain"):
        assert "error" not in r[mode], r[mode]
        assert r[mode]["frames_tracked"] == 3
        assert r[mode]["peak_rss_mb"] > r[mode]["model_rss_mb"] > 0


def test_batch_memory_bench_measures_each_run_in_a_child(tmp_path, capsys):
    out = tmp_path / "batch.json"
    modes = ["lockstep", "sequential", "challenge"]
    args = ["--batch-memory", "-T", "4", "--height", "48", "--width", "64", "--image-size", "64"]
    args += ["--expression-counts", "2", "--schedules", ",".join(modes), "--low-res", "12x16"]
    assert bench.main([*args, "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    for mode in modes:
        assert "error" not in row[mode], row[mode]
        assert row[mode]["peak_rss_gb"] >= row[mode]["model_rss_gb"] > 0
    assert row["identical"] is True  # refine (both schedules) wrote the challenge's bytes
    assert "masks identical" in capsys.readouterr().out


def test_batch_memory_bench_rejects_an_unknown_schedule(capsys):
    from refine.cli import main

    assert main(["bench", "--batch-memory", "--schedules", "lockstep,fast"]) == 2
    assert "['fast'] unknown" in capsys.readouterr().err
