"""The samurai memory on random-weight SAM2.1-tiny (CPU, fp32, 64-px input, 16-frame clips:
more than twice SAM2's 7-frame memory window)."""

import dataclasses
import json
import math
import os
import pickle

import numpy as np
import pytest

from refine import cli
from refine.batch import BatchConfig, is_complete, make_propagator, process_video
from refine.dataset import MevisDataset
from refine.errors import InputError
from refine.memory import MemoryConfig
from refine.models import ModelSpec
from refine.pipeline import RefineParams, prepare_expression
from refine.propagation import Sam2Propagator, _Run
from refine.samurai import FrameScore
from refine.samurai_sam2 import STATE_KEY, SamuraiState
from refine.testing import StaticPropagator
from tests.clips import random_expression, run_args, textured_frames, write_clip

SPEC = ModelSpec("tiny", "cpu", random_weights=True, seed=0, image_size=64)
T = 16
OFF = ("--samurai-kf-weight", "0", "--samurai-memory-iou=-inf", "--samurai-memory-obj-score=-inf",
       "--samurai-memory-kf-score=-inf", "--samurai-min-obj-score", "0")  # fmt: skip
# rules that bite on random weights (whose predicted IoUs all lie near 0.53)
ACTIVE = MemoryConfig("samurai", stable_frames=1, kf_weight=0.9, memory_iou=0.532)


def _clip(root, peaks: dict[str, list[tuple[int, float]]], seed: int) -> str:
    rng = np.random.default_rng(seed)
    exps = {k: random_expression(rng, T, 3, (12, 16), p) for k, p in peaks.items()}
    write_clip(str(root), "v", textured_frames(T, 48, 64, seed=seed), exps)
    return str(root)


def _pngs(out) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), out): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(out)
        for f in files
        if f.endswith(".png")
    }


def test_samurai_with_every_rule_off_writes_sam2s_masks(tmp_path):
    # all kept queries prompted on the first frame: forward pass only, where the memory
    # rule with every threshold at −inf is SAM2's window of the last frames
    data = _clip(tmp_path / "data", {"one": [(0, 0.9)], "two": [(0, 0.9), (0, 0.8)]}, 1)
    outs = {}
    for name, extra in (("sam2", ("--memory", "sam2")), ("off", ("--memory", "samurai", *OFF))):
        outs[name] = str(tmp_path / name)
        args = run_args(data, outs[name], "--image-size", "64", "--precision", "fp32", *extra)
        assert cli.main(args) == 0
    sam2, off = _pngs(outs["sam2"]), _pngs(outs["off"])
    assert len(sam2) == 2 * T and sam2 == off
    marker = open(os.path.join(outs["off"], ".refine", "v", "two.json")).read()
    assert '"mode": "samurai"' in marker and '"memory_iou": -Infinity' in marker


@pytest.fixture(scope="module")
def mid_clip(tmp_path_factory):
    """10 frames. Expression "a": two objects prompted on frame 4 (forward and reverse
    passes); "b": one object prompted on frame 7."""
    rng = np.random.default_rng(2)
    exps = {k: random_expression(rng, 10, 3, (12, 16), p)
            for k, p in {"a": [(4, 0.9), (4, 0.85)], "b": [(7, 0.9)]}.items()}  # fmt: skip
    root = str(tmp_path_factory.mktemp("mid"))
    write_clip(root, "v", textured_frames(10, 48, 64, seed=2), exps)
    info = MevisDataset(root).video("v")
    size = (48, 64)
    prompt_sets = [prepare_expression(k, e, size, RefineParams()).prompts for k, e in exps.items()]
    assert [len(ps) for ps in prompt_sets] == [2, 1]
    assert {p.frame for p in prompt_sets[0]} == {4}
    return info, prompt_sets


def _track(info, prompt_sets, memory, schedule="lockstep"):
    """Masks per prompt set, encoder calls, and the SAMURAI states made on the way."""
    from refine import samurai_sam2

    states = []
    enable = samurai_sam2.enable_samurai

    def spy(predictor, state, cfg):
        enable(predictor, state, cfg)
        states.append(state[STATE_KEY])

    prop = Sam2Propagator(SPEC, "fp32", cache_mb=None, schedule=schedule, memory=memory)
    before = prop.encoder_calls
    samurai_sam2.enable_samurai = spy
    try:
        masks = [m.to_array() for m in prop.track(info.frame_source(), prompt_sets)]
    finally:
        samurai_sam2.enable_samurai = enable
    return masks, prop.encoder_calls - before, states


@pytest.fixture(
    scope="module", params=[MemoryConfig("samurai"), ACTIVE], ids=["defaults", "active"]
)
def runs(request, mid_clip):
    """Lockstep, sequential and object-by-object runs of the clip with one memory."""
    info, prompt_sets = mid_clip
    alone = [[dataclasses.replace(p, obj_id=0)] for p in prompt_sets[0]]
    return {
        "memory": request.param,
        "lockstep": _track(info, prompt_sets, request.param),
        "sequential": _track(info, prompt_sets, request.param, "sequential"),
        "alone": _track(info, alone, request.param),
    }


def test_samurai_is_deterministic_and_schedule_free_with_one_encoder_call_per_frame(runs):
    (lock, calls, states), (seq, _, _) = runs["lockstep"], runs["sequential"]
    assert calls == 10  # one encoder call per frame, shared by both expressions and passes
    assert len(states) == 2  # one SAMURAI state per expression
    for a, b in zip(lock, seq):  # independent runs, same process
        np.testing.assert_array_equal(a, b)


def test_samurai_tracks_each_object_as_if_alone(runs):
    lock, alone = runs["lockstep"][0], runs["alone"][0]
    for k, masks in enumerate(alone):
        np.testing.assert_array_equal(masks[:, 0], lock[0][:, k])


def test_the_rules_take_part_as_their_settings_say(runs, mid_clip):
    samurai, _, states = runs["lockstep"]
    scores = [s for st in states for obj in st.scores.values() for s in obj.values()]
    if runs["memory"] != ACTIVE:
        # the defaults wait for 15 stable frames before the filter takes part; the clip has 10
        assert scores and all(s.kf_score is None for s in scores)
        return
    assert any(s.kf_score is not None for s in scores)  # the Kalman filter took part
    assert any(not s.enters_memory(ACTIVE) for s in scores)  # some frames left out of memory
    sam2, _, _ = _track(*mid_clip, MemoryConfig())
    assert any(not np.array_equal(a, b) for a, b in zip(samurai, sam2))


class _FakePredictor:
    num_maskmem = 7
    max_obj_ptrs_in_encoder = 16


def test_pruning_keeps_the_frames_samurai_can_still_select():
    # frames 18..22 lie outside the window (17) of frame 39 and are not reserved for the
    # reverse pass (0..17); of them only 18 and 20 entered the memory, and frames 21..39
    # did not: the next frame's selection reads 39, 20, 18, … so 18 and 20 must stay
    cfg = MemoryConfig("samurai")
    low, high = FrameScore(0.1, 1.0), FrameScore(0.9, 1.0)
    scores = {f: (high if f in (18, 20) or f < 18 else low) for f in range(1, 40)}
    for samurai, kept in ((True, {18, 20}), (False, set())):
        outputs = {f: {} for f in range(1, 40)}
        state = {"output_dict_per_obj": {0: {"non_cond_frame_outputs": outputs}}, "num_frames": 60}
        if samurai:
            state[STATE_KEY] = SamuraiState(cfg, scores={0: scores})
        run = _Run(
            _FakePredictor(), state, [dataclasses.make_dataclass("P", ["frame"])(0)], (1, 1, 1, 1)
        )
        run.prune(39, False, 17)
        assert set(outputs) == set(range(1, 18)) | kept | set(range(23, 40))


def test_pruning_of_plain_sam2_states_is_unchanged():
    # the rule before SAMURAI: drop frame t ∓ window unless the reverse pass reads it
    def old_prune(outputs, t, reverse, window, start):
        old = t + window if reverse else t - window
        if reverse or not start <= old <= start + window:
            outputs.pop(old, None)

    n, start, window = 50, 5, 17
    old, new = {}, {}
    state = {"output_dict_per_obj": {0: {"non_cond_frame_outputs": new}}, "num_frames": n}
    run = _Run(
        _FakePredictor(), state, [dataclasses.make_dataclass("P", ["frame"])(start)], (1, 1, 1, 1)
    )
    for reverse, order in ((False, range(start + 1, n)), (True, range(start, -1, -1))):
        for t in order:
            old[t] = new[t] = {}
            old_prune(old, t, reverse, window, start)
            run.prune(t, reverse, window)
            if not reverse:
                assert old.keys() == new.keys()
            else:  # also drops the forward pass's last frames, which the reverse never reads
                assert {f for f in old if t < f < t + window} <= new.keys() <= old.keys()


def test_resume_refuses_another_memory_and_workers_get_it(tmp_path):
    data = _clip(tmp_path / "data", {"one": [(0, 0.9)]}, 3)
    cfg = BatchConfig(data, os.path.join(data, "stage1"), str(tmp_path / "out"), SPEC,
                      memory=MemoryConfig("samurai"))  # fmt: skip
    process_video(cfg, "v", StaticPropagator())
    names = MevisDataset(data).video("v").frame_names
    assert is_complete(dataclasses.replace(cfg, resume=True), "v", "one", names)
    with pytest.raises(InputError, match="other settings.*'mode': 'samurai'"):
        is_complete(dataclasses.replace(cfg, memory=MemoryConfig()), "v", "one", names)
    with pytest.raises(InputError, match="other settings"):
        is_complete(dataclasses.replace(cfg, memory=ACTIVE), "v", "one", names)
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # workers are spawned with it
    assert make_propagator(cfg).memory == cfg.memory


def test_memory_flags(tmp_path, capsys):
    args = cli.build_parser().parse_args(run_args(tmp_path, tmp_path, "--memory", "samurai", *OFF))
    memory = cli.memory_config(args)
    assert memory.kf_weight == 0 and memory.memory_iou == -math.inf and memory.stable_frames == 15
    assert cli.main(run_args(tmp_path, tmp_path, "--samurai-kf-weight", "0.5")) == 2
    assert "only apply to the samurai memory; add --memory samurai" in capsys.readouterr().err
    bad = run_args(tmp_path, tmp_path, "--memory", "samurai", "--samurai-kf-weight", "2")
    assert cli.main(bad) == 2
    assert "--samurai-kf-weight must lie in [0, 1], got 2.0" in capsys.readouterr().err


def test_bench_with_the_samurai_memory(tmp_path, capsys):
    from refine import bench

    out = tmp_path / "bench.json"
    args = ["-T", "4", "-E", "2", "--image-size", "64", "--height", "48", "--width", "64"]
    assert bench.main([*args, "--memory", "samurai", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["masks_identical"] is True  # per-expression init_state and lockstep agree
    assert r["ours"]["encoder_calls"] == 4
    assert "samurai memory" in capsys.readouterr().out
    assert cli.main(["bench", "--long-video", "--memory", "samurai"]) == 2
    assert "--long-video measures SAM2's memory only" in capsys.readouterr().err
