"""One session's long ranking does not hold SAM2 from the others: served in-process with a
propagator that sleeps per frame for the SAM2 size the ranking uses (small), and not for
the size the other session runs (tiny), a Run of another session is answered while the
ranking goes on, and the ranking still ends with every row."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client

from demo.config import AppConfig
from refine.testing import StaticPropagator
from tests.launch import serve

SLOW = ("small", "cpu", "random", "mask", 0.275, "sam2")  # the ranking session's settings
FAST = ("tiny", "cpu", "random", "mask", 0.275, "sam2")  # the other session's
FRAME_S = 0.04  # per frame of a slow track: 12 frames → 0.48 s per expression
TRACKS = 6  # the bundled examples: 3 expressions with kept queries, each with both memories


class Sleepy(StaticPropagator):
    """StaticPropagator that takes ``frame_s`` per frame (reporting each frame), and sets
    ``started`` when its first track begins."""

    def __init__(self, frame_s: float, started: threading.Event) -> None:
        super().__init__()
        self.frame_s, self.started = frame_s, started

    def track(self, frames, prompt_sets, progress=None):
        self.started.set()
        for t in range(len(frames)):
            time.sleep(self.frame_s)
            if progress is not None:
                progress(t, len(frames))
        yield from super().track(frames, prompt_sets, progress)


@pytest.fixture
def served():
    started = threading.Event()

    def factory(spec):
        return Sleepy(FRAME_S if spec.size == "small" else 0.0, started)

    with serve(AppConfig(propagator_factory=factory)) as (url, _):
        yield url, started


def test_another_sessions_run_is_answered_while_one_session_ranks(served):
    url, started = served
    ranker, runner = Client(url, verbose=False), Client(url, verbose=False)
    runner.predict("birds/0", *FAST, api_name="/open_example")
    begin = time.monotonic()
    job = ranker.submit("examples", "memory", 50, *SLOW, 2 / 3, 0.5, api_name="/rank")
    assert started.wait(10), "the ranking did not start tracking"
    t0 = time.monotonic()
    view = runner.predict("0", *FAST, 2 / 3, 0.5, 0, api_name="/run")
    waited = time.monotonic() - t0
    assert "Fusion:" in view[6], view[7]  # the run's decision: it did run
    assert waited < 2.0, f"the Run waited {waited:.1f} s behind the ranking"
    assert not job.done(), "the ranking ended before the run: the test proves nothing"
    table, note, _, _ = job.result(timeout=60)
    assert len(table["data"]) == 4 and "4 expressions ranked" in note
    assert time.monotonic() - begin >= TRACKS * 12 * FRAME_S  # every slow track ran
