"""Sessions charge what they hold to one process-wide budget (#17, finding 2): compact
upload frames, cases and runs charged before they are made, least recently used cases of
idle sessions released for a newcomer, "server busy" when nothing can be released, idle
sessions giving their memory back, and the user told why a case is gone."""

from __future__ import annotations

import functools
import io
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from demo.config import EXAMPLES_ROOT
from demo.gpu import make_tracker
from refine.errors import InputError
from refine.inspect import (
    DataSource,
    MemoryBudget,
    RunSettings,
    ServerBusy,
    Session,
    case_from_upload,
)
from refine.models import ModelSpec
from refine.stage1 import ExpressionStage1, VideoStage1, save_stage1_npz
from refine.testing import StaticPropagator
from tests.test_memory_budget import Clock

EXAMPLES = DataSource("examples", EXAMPLES_ROOT, os.path.join(EXAMPLES_ROOT, "stage1"))
SETTINGS = RunSettings(ModelSpec("tiny", "cpu", random_weights=True, image_size=64), 0.275)
MB = 2**20


def black_upload(folder, t: int, size: tuple[int, int]) -> tuple[str, str]:
    """(zip of ``t`` black PNG frames of ``size`` (H, W), stage-1 npz with one confident
    query whose 1x1 mask covers every frame): the finding's 228 KiB upload at 172x1080p."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(buf, "PNG")
    frames = os.path.join(folder, "black.zip")
    with zipfile.ZipFile(frames, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(t):
            zf.writestr(f"{i:05d}.png", buf.getvalue())
    exp = ExpressionStage1(
        np.full((t, 1), 0.9, np.float32),
        np.full((t, 1, 4), 0.5, np.float32),
        np.ones((t, 1, 1, 1), np.float16),
    )
    npz = os.path.join(folder, "black.npz")
    save_stage1_npz(npz, VideoStage1(size, [f"{i:05d}" for i in range(t)], {"0": exp}))
    return frames, npz


def _upload_loader(frames: str, npz: str):
    return lambda charge: case_from_upload(frames, npz, charge=charge)


def _session(tmp_path, name: str, budget: MemoryBudget) -> Session:
    return Session(workdir=str(tmp_path / name), budget=budget, feature_cache_mb=0)


def test_a_172_frame_1080p_upload_holds_megabytes_not_gigabytes(tmp_path):
    """The finding: this upload left 4.0 GiB held (uint8 frames, a [T, H, W] preview)."""
    frames, npz = black_upload(str(tmp_path), 172, (1080, 1920))
    budget = MemoryBudget()
    session = _session(tmp_path, "s", budget)
    tracemalloc.start()
    try:
        session.open_case(session.case_for(_upload_loader(frames, npz)))
        assert session.mask("stage1", 171).all()  # the 1x1 logit covers the frame
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # frames as the zip's PNG bytes, the preview a bit a pixel: 172 * 1080 * 1920 / 8
    assert held < 120 * MB, f"{held / MB:.0f} MiB held"
    case = session.case
    assert case.frames.nbytes < 2 * MB
    assert budget.used() == case.nbytes >= 172 * 1080 * 1920 // 8
    session.close()
    assert budget.used() == 0


def test_an_idle_sessions_case_makes_room_and_its_user_is_told(tmp_path):
    clock = Clock()
    frames, npz = black_upload(str(tmp_path), 8, (240, 320))
    budget = MemoryBudget(120_000, clock=clock, protect_s=30)
    alice, bob = _session(tmp_path, "a", budget), _session(tmp_path, "b", budget)
    alice.open_case(alice.case_for(_upload_loader(frames, npz)))
    alice.mask("stage1", 0)  # the preview: 8 * 240 * 320 / 8 bytes
    assert budget.used() > 76_800
    clock.now += 31  # alice is away
    bob.open_case(bob.case_for(_upload_loader(frames, npz)))
    bob.mask("stage1", 0)
    assert alice.case is None and budget.held_by(alice.memory.owner) == 0
    with pytest.raises(InputError, match=r"^black was closed to make room for another case: "):
        alice.mask("stage1", 0)
    assert bob.case is not None


def test_a_new_case_that_cannot_fit_is_refused_and_the_others_keep_theirs(tmp_path):
    clock = Clock()
    frames, npz = black_upload(str(tmp_path), 8, (240, 320))
    budget = MemoryBudget(120_000, clock=clock, protect_s=30)
    alice, bob = _session(tmp_path, "a", budget), _session(tmp_path, "b", budget)
    alice.open_case(alice.case_for(_upload_loader(frames, npz)))
    alice.mask("stage1", 0)
    clock.now += 5  # alice is still looking
    bob.open_case(bob.case_for(_upload_loader(frames, npz)))
    with pytest.raises(ServerBusy, match=r"^The server is busy: the stage-1 preview of 0 needs"):
        bob.mask("stage1", 0)
    assert alice.case is not None and alice.mask("stage1", 3).shape == (240, 320)


def test_idle_sessions_give_their_cases_and_runs_back(tmp_path):
    clock = Clock()
    budget = MemoryBudget(10**9, idle_s=600, clock=clock)
    s = _session(tmp_path, "s", budget)
    load = functools.partial(EXAMPLES.load_case, "birds")
    s.open_case(s.case_for((EXAMPLES.case_key("birds"), load)), "0")
    run = s.run_sam2(SETTINGS, make_tracker(lambda spec: StaticPropagator()))
    assert budget.used() >= run.nbytes + s.case.nbytes > 0
    clock.now += 601
    assert budget.release_idle() > 0
    assert budget.used() == 0 and s.case is None and len(s.runs) == 0
    with pytest.raises(InputError, match="birds was closed after 10 minutes without use"):
        s.overlays(0)


def test_a_run_and_its_feature_cache_are_charged_before_sam2_starts(tmp_path):
    budget = MemoryBudget(10**9)
    s = Session(workdir=str(tmp_path / "s"), budget=budget, feature_cache_mb=1)
    load = functools.partial(EXAMPLES.load_case, "birds")
    s.open_case(s.case_for((EXAMPLES.case_key("birds"), load)), "0")
    case_bytes = budget.used()
    seen = []

    def track(frames, *args, **kwargs):
        seen.append(budget.used() - case_bytes)
        return make_tracker(lambda spec: StaticPropagator())(frames, *args, **kwargs)

    run = s.run_sam2(SETTINGS, track)
    t, (h, w) = s.case.num_frames, s.case.size
    assert seen == [2 * t * h * w + min(MB, t * 112 * 64 * 64)]  # masks + feature cache
    assert budget.used() == case_bytes + run.nbytes + min(MB, t * 112 * 64 * 64)
    s.close()
    assert budget.used() == 0


def test_a_failed_upload_returns_what_it_reserved(tmp_path):
    budget = MemoryBudget(10**9)
    s = _session(tmp_path, "s", budget)
    frames, _ = black_upload(str(tmp_path), 4, (24, 32))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(InputError, match="not a readable npz"):
        s.case_for(_upload_loader(frames, str(bad)))
    assert budget.used() == 0 and s.case is None


def test_the_app_sweeps_idle_sessions_on_its_own(tmp_path):
    import time

    from demo.sessions import SessionStore

    store = SessionStore(str(tmp_path), MemoryBudget(10**9, idle_s=0.4), feature_cache_mb=0)
    try:
        s = store.get(None, "tab")
        load = functools.partial(EXAMPLES.load_case, "birds")
        s.open_case(s.case_for((EXAMPLES.case_key("birds"), load)), "0")
        deadline = time.monotonic() + 10
        while s.case is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.case is None and store.budget.used() == 0
        assert "after 0.4 s without use" in (s.notice or "")
    finally:
        store.close()
