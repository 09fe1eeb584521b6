"""Bounds on one request's SAM2 work, refused before any tracking, and Stop while a run
waits for its turn at the gate (the handlers with the fake StaticPropagator)."""

from __future__ import annotations

import threading
import time

import pytest

from demo.callbacks import Callbacks
from demo.config import AppConfig, parse_args
from refine.errors import InputError
from refine.inspect.work_limits import WorkLimits
from refine.testing import StaticPropagator
from tests.test_app_handlers import CONTROLS, _fails, _run, no_progress

BIRDS0_WORK = 12 * 2  # birds/0: 12 frames, 2 queries kept at θ = 0.275


@pytest.fixture
def prop():
    return StaticPropagator()


def _app(prop, **work) -> Callbacks:
    return Callbacks(AppConfig(propagator_factory=lambda spec: prop, work=WorkLimits(**work)))


def _rank(cb, session, limit, order="fused"):
    return cb.ranks.rank(session, "examples", order, limit, CONTROLS, 2 / 3, 0.5, no_progress)


def test_a_ranking_over_the_expression_limit_is_refused_before_tracking(prop):
    cb = _app(prop, max_rank_expressions=3)
    _fails(
        _rank(cb, None, 600),
        r"ranking 600 expressions is over this app's limit of 3 per ranking; "
        r"lower “at most N expressions” to 3 or less",
    )
    assert prop.calls == []
    out = _rank(cb, None, 3)
    assert len(out["rank_table"]) == 3


def test_a_run_over_the_work_limit_is_refused_before_tracking(prop):
    cb = _app(prop, max_run_work=BIRDS0_WORK - 1)
    session = cb.cases.open_example(None, "birds/0", CONTROLS)["session"]
    _fails(
        _run(cb, session),
        r"expression 0: 12 frames × 2 tracked objects = 24, over this app's limit of 23 "
        r"frames × objects per SAM2 run; raise θ",
    )
    assert prop.calls == [] and session.run is None
    out = _run(cb, session, exp_id="1")  # one object: 12, within the limit
    assert "Fusion:" in out["decision"] and len(prop.calls) == 1
    session.close()


def test_a_ranking_leaves_out_expressions_over_the_work_limit_and_says_so(prop):
    cb = _app(prop, max_run_work=BIRDS0_WORK - 1)
    out = _rank(cb, None, 50)
    assert sorted(row[1:3] for row in out["rank_table"]) == [
        ["ball", "0"],
        ["ball", "1"],
        ["birds", "1"],
    ]
    assert "Left out, too much SAM2 work: birds: expression 0: 12 frames × 2" in out["rank_note"]
    assert len(prop.calls) == 2  # ball/0 and birds/1 (ball/1 keeps no query)
    out["session"].close()


def test_stop_while_waiting_for_the_gate_ends_the_run_without_tracking(prop):
    cb = _app(prop)
    session = cb.cases.open_example(None, "birds/0", CONTROLS)["session"]
    cb.ctx.gate.acquire("another session")  # SAM2 busy with someone else's run
    result = {}
    cb.runs.begin(session)
    thread = threading.Thread(target=lambda: result.update(_run(cb, session)))
    thread.start()
    end = time.monotonic() + 5
    while cb.ctx.gate.waiting == 0:
        assert time.monotonic() < end, "the run did not wait for the gate"
        time.sleep(0.01)
    assert cb.runs.stop(session)["status"].startswith("Stopping SAM2")
    thread.join(5)
    assert not thread.is_alive()
    assert "Stopped: stopped while waiting for SAM2" in result["status"]
    assert prop.calls == [] and session.run is None and cb.ctx.gate.waiting == 0
    cb.ctx.gate.release()
    cb.runs.begin(session)
    assert "Fusion:" in _run(cb, session)["decision"]  # the gate is free: it runs at once
    session.close()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max-rank-expressions", "0"], "--max-rank-expressions must be at least 1, got 0"),
        (["--max-run-work", "-5"], "--max-run-work must be at least 1, got -5"),
    ],
)
def test_work_limit_flags_must_be_positive(argv, message):
    with pytest.raises(InputError, match=message):
        parse_args(argv)


def test_work_limit_flags_reach_the_config():
    config = parse_args(["--max-rank-expressions", "7", "--max-run-work", "900"])
    assert config.work == WorkLimits(max_rank_expressions=7, max_run_work=900)
    assert parse_args([]).work == WorkLimits()


def test_the_rank_limit_box_is_bounded_by_the_flag():
    from demo.ui import build_app

    demo, cb = build_app(AppConfig(fake_sam2=True, work=WorkLimits(max_rank_expressions=20)))
    try:
        (box,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "rank-limit"]
        assert box.maximum == 20 and box.value == 20
    finally:
        cb.close()
