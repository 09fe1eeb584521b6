"""refine.inspect: cached SAM2 runs, live re-fusion, uploads, ranking, files (fake propagator)."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from demo.config import EXAMPLES_ROOT
from demo.gpu import make_tracker
from refine.errors import InputError
from refine.fusion import fuse
from refine.inspect import (
    DataSource,
    OutOfMemory,
    RunCancelled,
    RunSettings,
    Session,
    case_from_upload,
    is_out_of_memory,
    rank_expressions,
    rank_rows,
)
from refine.limits import UploadLimits
from refine.memory import MemoryConfig
from refine.models import ModelSpec
from refine.overlay import Mp4Writer
from refine.testing import StaticPropagator

EXAMPLES = DataSource("examples", EXAMPLES_ROOT, os.path.join(EXAMPLES_ROOT, "stage1"))
SETTINGS = RunSettings(ModelSpec("tiny", "cpu", random_weights=True), 0.275, "mask")


@pytest.fixture
def prop():
    return StaticPropagator()


@pytest.fixture
def session(tmp_path):
    s = Session(workdir=str(tmp_path / "work"))
    yield s
    s.close()


def _open(session: Session, video: str, exp_id: str) -> None:
    session.open_case(EXAMPLES.load_case(video), exp_id)


def test_refuse_uses_cached_masks_and_matches_fuse(session, prop):
    _open(session, "birds", "0")
    assert session.run is None and session.mask("fused", 0) is None
    run = session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    assert len(prop.calls) == 1 and session.sam2_runs == 1
    assert session.decision.multi  # birds/0: the union branch
    r = run.result
    np.testing.assert_array_equal(run.fused(session.decision), r.sam2.array() | r.stage1.array())
    union_overlay = session.overlay("fused", 6)
    assert (r.stage1[6] & ~r.sam2[6]).any()  # on frame 6 the union adds stage-1 pixels
    for rho, v in [(0, Fraction(1, 2)), (1, 0), (Fraction(1, 3), Fraction(9, 10)), (0.5, 0.25)]:
        session.set_fusion(rho, v)
        expected, decision = fuse(r.stage1.array(), r.sam2.array(), rho, v)
        d = session.decision
        assert (d.valid, d.shrunk, d.multi) == (decision.valid, decision.shrunk, decision.multi)
        np.testing.assert_array_equal(run.fused(session.decision), expected)
        for t in (0, 6, 11):
            np.testing.assert_array_equal(session.mask("fused", t), expected[t])
    session.set_fusion(0, Fraction(1, 2))
    assert not session.decision.multi  # ρ = 0: no frame can be "shrunk"
    np.testing.assert_array_equal(session.mask("fused", 6), r.sam2[6])
    assert not np.array_equal(session.overlay("fused", 6), union_overlay)
    assert len(prop.calls) == 1  # no SAM2 call for any of the re-fusions
    with pytest.raises(InputError, match="area ratio"):
        session.set_fusion(1.5, 0.5)


def test_runs_are_cached_per_settings(session, prop):
    track = make_tracker(lambda spec: prop)
    _open(session, "birds", "0")
    first = session.run_sam2(SETTINGS, track)
    assert session.run_sam2(SETTINGS, track) is first and len(prop.calls) == 1
    other = RunSettings(SETTINGS.spec, 0.5, "mask")
    session.run_sam2(other, track)
    assert len(prop.calls) == 2 and session.run.settings == other
    session.select_expression("1")
    assert session.run is None
    session.select_expression("0")  # the latest cached run of expression 0
    assert session.run.settings == other
    session.select_expression("0", SETTINGS)
    assert session.run is first


def test_no_kept_query_means_no_sam2(session, prop):
    _open(session, "ball", "1")
    run = session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    assert prop.calls == [] and session.sam2_runs == 0
    assert len(run.result.kept) == 0 and not np.asarray(run.fused(session.decision)).any()


def test_stop_interrupts_tracking(session):
    _open(session, "birds", "0")
    frames_seen = []

    def slow_track(frames, exp_id, exp, params, spec, progress, memory):
        for t in range(len(frames)):
            frames_seen.append(t)
            if t == 2:
                session.request_stop()
            progress(t + 1, len(frames))
        raise AssertionError("not reached")

    with pytest.raises(RunCancelled, match="stopped after 3 of 12 tracking steps"):
        session.run_sam2(SETTINGS, slow_track)
    assert frames_seen == [0, 1, 2] and session.run is None and session.sam2_runs == 0
    with pytest.raises(RunCancelled, match="before SAM2 started"):
        session.run_sam2(SETTINGS, slow_track)  # the stop request stands until begin()
    session.begin()
    assert not session.cancel.is_set()


def test_scores_and_masks_zip(session, prop, tmp_path):
    _open(session, "birds", "0")
    session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    scores = session.scores()
    assert set(scores) == {"stage1", "sam2", "fused"}
    assert scores["fused"] != scores["sam2"]  # union branch
    session.set_fusion(0, 0.5)
    assert session.scores()["fused"] == scores["sam2"]
    path = session.masks_zip()
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        assert names == [f"birds/0/{t:05d}.png" for t in range(12)]
        png = np.asarray(Image.open(io.BytesIO(zf.read("birds/0/00006.png"))))
    assert set(np.unique(png)) <= {0, 255}
    np.testing.assert_array_equal(png > 0, session.run.result.sam2[6])


def test_videos_rendered_once_per_branch(session, prop):
    _open(session, "birds", "0")
    session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    first = session.videos()
    assert first["fused"].endswith("fused-union.mp4") and os.path.isfile(first["stage1"])
    mtime = os.path.getmtime(first["stage1"])
    session.set_fusion(0, 0.5)
    second = session.videos()
    assert second["fused"].endswith("fused-sam2.mp4") and second["stage1"] == first["stage1"]
    assert os.path.getmtime(first["stage1"]) == mtime


def test_rank_sorts_worst_first_and_caches_runs(session, prop):
    track = make_tracker(lambda spec: prop)
    items = [
        ((EXAMPLES.case_key(v), lambda charge, v=v: EXAMPLES.load_case(v, charge)), e)
        for v, e, _ in EXAMPLES.expressions()
    ]
    rows = rank_expressions(session, items, SETTINGS, track, source="examples")
    assert len(rows) == 4 and len(prop.calls) == 3  # ball/1 keeps no query
    ranked = rank_rows(rows, session.area_ratio, session.vote, "fused")
    fused = [(r.scores["union" if d.multi else "sam2"].J) for r, d in ranked]
    assert ranked[0][0].video == "ball" and ranked[0][0].exp_id == "1"
    jf = [(s.J + s.F) / 2 for s in (r.fused_score(d) for r, d in ranked)]
    assert jf == sorted(jf) and len(fused) == 4
    delta = rank_rows(rows, session.area_ratio, session.vote, "delta")
    d = [
        (r.fused_score(x).J + r.fused_score(x).F) / 2
        - (r.scores["stage1"].J + r.scores["stage1"].F) / 2
        for r, x in delta
    ]
    assert d == sorted(d)
    session.open_case(session.known_case(EXAMPLES.case_key("birds")), "0")
    assert session.run is not None and len(prop.calls) == 3  # opened from the cache
    with pytest.raises(InputError, match="rank order"):
        rank_rows(rows, session.area_ratio, session.vote, "best")


def test_cache_eviction_keeps_the_shown_run(tmp_path, prop):
    s = Session(workdir=str(tmp_path / "w"), max_cache_bytes=1)
    track = make_tracker(lambda spec: prop)
    s.open_case(EXAMPLES.load_case("birds"), "0")
    s.run_sam2(SETTINGS, track)
    s.select_expression("1")
    s.run_sam2(SETTINGS, track)
    assert len(s.runs) == 1 and s.run is not None and s.run.exp_id == "1"
    s.run_sam2(RunSettings(SETTINGS.spec, 0.3, "mask"), track)  # shown and new run both stay
    assert len(s.runs) == 2 and s.run.settings.threshold == 0.3
    s.close()
    assert not os.path.exists(str(tmp_path / "w"))


def _birds_frames() -> np.ndarray:
    case = EXAMPLES.load_case("birds")
    return np.stack([case.frames.rgb(t) for t in range(case.num_frames)])


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_video_file_takes_stage1_frame_names(tmp_path):
    frames = _birds_frames()
    path = str(tmp_path / "my clip.mp4")
    with Mp4Writer(path, 96, 128, fps=12) as w:
        for f in frames:
            w.write(f)
    case = case_from_upload(path, os.path.join(EXAMPLES_ROOT, "stage1", "birds.npz"))
    assert case.video == "my_clip" and case.fps == pytest.approx(12)
    assert case.frame_names == [f"{t:05d}" for t in range(12)]
    assert case.sentence("0") == "the two birds flying apart" and case.gt is None
    short = str(tmp_path / "short.mp4")
    with Mp4Writer(short, 96, 128) as w:
        w.write(frames[0])
    with pytest.raises(InputError, match="cover 12 frames but short.mp4 has 1"):
        case_from_upload(short, os.path.join(EXAMPLES_ROOT, "stage1", "birds.npz"))


def test_upload_frames_zip_with_png_stage1_and_ground_truth(tmp_path, prop):
    frames = _birds_frames()
    names = [f"{t:05d}" for t in range(12)]
    frames_zip = tmp_path / "birds.zip"
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for n, f in zip(names, frames, strict=True):
            zf.writestr(f"birds/{n}.png", _png(f))
    gt_dir = os.path.join(EXAMPLES_ROOT, "gt", "birds")
    masks_zip = tmp_path / "gt.zip"
    with zipfile.ZipFile(masks_zip, "w") as zf:
        for exp in ("0", "1"):
            for n in names:
                zf.write(os.path.join(gt_dir, exp, f"{n}.png"), f"{exp}/{n}.png")
    # ground truth used as stage-1 masks too: a perfect stage 1
    case = case_from_upload(str(frames_zip), str(masks_zip), str(masks_zip))
    assert case.exp_ids == ["0", "1"] and case.sentence("0") == ""
    s = Session(workdir=str(tmp_path / "w"))
    s.open_case(case, "0")
    s.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    assert s.scores()["stage1"].J == 1.0
    s.close()
    with pytest.raises(InputError, match="stage-1 results must be a .npz"):
        case_from_upload(str(frames_zip), str(tmp_path / "x.json"))
    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("0/00000.png", _png(np.zeros((10, 10), np.uint8)))
    with pytest.raises(InputError, match="masks must have the video's size"):
        case_from_upload(str(frames_zip), str(wrong))


class OomOnce(StaticPropagator):
    """Runs out of memory on its first call (``error``), then works like StaticPropagator."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error: BaseException | None = error

    def track(self, frames, prompt_sets, progress=None):
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        yield from super().track(frames, prompt_sets, progress)


def _torch_oom() -> BaseException:
    import torch

    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize(
    "make_error",
    [_torch_oom, lambda: RuntimeError("MPS backend out of memory"), MemoryError],
    ids=["torch.cuda.OutOfMemoryError", "RuntimeError", "MemoryError"],
)
def test_out_of_memory_says_what_to_try_and_the_next_run_works(session, make_error):
    _open(session, "birds", "0")
    prop = OomOnce(make_error())
    track = make_tracker(lambda spec: prop)
    with pytest.raises(OutOfMemory) as err:
        session.run_sam2(SETTINGS, track)
    message = str(err.value)
    assert message.startswith("SAM2 ran out of memory on birds/0 (12 frames of 128x96)")
    for hint in ("smaller SAM2 model", "smaller SAM2 input size", "fewer frames"):
        assert hint in message
    assert isinstance(err.value, InputError)  # shown to the user like any input error
    assert session.run is None and session.sam2_runs == 0 and session.cached_run("0") is None
    run = session.run_sam2(SETTINGS, track)  # same session, same settings: runs now
    assert session.run is run and session.sam2_runs == 1 and len(prop.calls) == 1
    assert session.decision.multi


def test_other_runtime_errors_are_not_called_out_of_memory(session):
    _open(session, "birds", "0")
    prop = OomOnce(RuntimeError("mat1 and mat2 must have the same dtype"))
    with pytest.raises(RuntimeError, match="same dtype") as err:
        session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    assert not isinstance(err.value, InputError)
    assert not is_out_of_memory(err.value) and is_out_of_memory(RuntimeError("Out of memory"))


class Payload:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_upload(tmp_path) -> tuple[str, str, str]:
    """(frames zip, stage-1 npz whose scores entry is a pickled Payload, payload path)."""
    frames_zip = tmp_path / "frames.zip"
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for t in range(3):
            zf.writestr(f"{t:05d}.png", _png(np.zeros((8, 10, 3), np.uint8)))
    target = tmp_path / "pwned"
    npz = tmp_path / "stage1.npz"
    rng = np.random.default_rng(0)
    np.savez(
        npz,
        format=np.array("refine-stage1/1"),
        video_size=np.array([8, 10]),
        frame_names=np.array(["00000", "00001", "00002"]),
        **{
            "0/scores": np.array([Payload(str(target))], dtype=object),
            "0/boxes": rng.uniform(0, 1, (3, 2, 4)).astype(np.float32),
            "0/masks": rng.normal(size=(3, 2, 4, 5)).astype(np.float16),
        },
    )
    return str(frames_zip), str(npz), str(target)


def test_pickled_npz_upload_is_refused_without_unpickling(tmp_path):
    frames_zip, npz, target = pickled_upload(tmp_path)
    with pytest.raises(InputError, match="convert-referdino --trust-pickle"):
        case_from_upload(frames_zip, npz)
    assert not os.path.exists(target)


def test_upload_sizes_are_checked_before_anything_is_read(tmp_path, monkeypatch):
    import refine.video_io

    frames_zip = tmp_path / "birds.zip"
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for t, f in enumerate(_birds_frames()):
            zf.writestr(f"{t:05d}.png", _png(f))
    stage1 = os.path.join(EXAMPLES_ROOT, "stage1", "birds.npz")
    limits = UploadLimits(max_upload_bytes=os.path.getsize(frames_zip))
    gt = tmp_path / "gt.zip"
    gt.write_bytes(b"\0" * (limits.max_upload_bytes + 1))

    def not_read(*args, **kwargs):
        raise AssertionError("the video was read before the sizes were checked")

    with monkeypatch.context() as m:
        m.setattr(refine.video_io, "read_video", not_read)
        with pytest.raises(InputError, match=r"gt.zip: the ground truth is .* KiB, over the"):
            case_from_upload(str(frames_zip), stage1, str(gt), limits)
    case = case_from_upload(str(frames_zip), stage1, None, limits)  # the limit itself is fine
    assert case.num_frames == 12
    with pytest.raises(InputError, match="birds.zip: 12 frames, over the limit of 11"):
        case_from_upload(str(frames_zip), stage1, None, UploadLimits(max_frames=11))
    mp4 = str(tmp_path / "birds.mp4")
    with Mp4Writer(mp4, 96, 128) as w:
        for f in _birds_frames():
            w.write(f)
    with pytest.raises(InputError, match=r"birds.npz: unpacks to [0-9.]+ KiB, over the limit"):
        case_from_upload(mp4, stage1, None, UploadLimits(max_unpacked_bytes=100_000))


def test_session_files_live_in_one_folder_removed_when_the_session_ends(tmp_path, prop):
    workdir = tmp_path / "session"
    s = Session(workdir=str(workdir))
    _open(s, "birds", "0")
    s.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    videos, masks = s.videos(), s.masks_zip()
    assert all(p.startswith(str(workdir) + os.sep) for p in [*videos.values(), masks])
    s.remove_files()  # e.g. the tab closed: files go, the session stays for a reconnect
    assert not workdir.exists() and s.run is not None
    again = s.videos()  # made again on demand
    assert again == videos and all(os.path.isfile(p) for p in again.values())
    s.close()
    assert not workdir.exists() and s.case is None and s.run is None
    assert s.known_case(EXAMPLES.case_key("birds")) is None  # memory dropped too


def test_session_folder_goes_when_the_session_is_garbage_collected(tmp_path):
    import gc

    workdir = tmp_path / "gc"
    s = Session(workdir=str(workdir))
    with open(workdir / "x.mp4", "wb") as f:
        f.write(b"x")
    del s
    gc.collect()
    assert not workdir.exists()


def _birds_upload(tmp_path) -> tuple[str, str]:
    """(frames zip, stage-1 PNG-mask zip) of birds: the masks are its ground truth."""
    frames_zip = tmp_path / "birds.zip"
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for t, f in enumerate(_birds_frames()):
            zf.writestr(f"{t:05d}.png", _png(f))
    masks_zip = tmp_path / "masks.zip"
    gt_dir = os.path.join(EXAMPLES_ROOT, "gt", "birds")
    with zipfile.ZipFile(masks_zip, "w") as zf:
        for exp in ("0", "1"):
            for t in range(12):
                zf.write(os.path.join(gt_dir, exp, f"{t:05d}.png"), f"{exp}/{t:05d}.png")
    return str(frames_zip), str(masks_zip)


META = {"videos": {"birds": {"expressions": {"0": {"exp": "two birds"}, "1": {"exp": "a bird"}}}}}


def test_png_stage1_takes_sentences_from_a_meta_expressions_json(tmp_path):
    import json

    frames_zip, masks_zip = _birds_upload(tmp_path)
    meta = tmp_path / "meta_expressions.json"
    meta.write_text(json.dumps(META))
    case = case_from_upload(frames_zip, masks_zip, meta_path=str(meta))
    assert case.sentence("0") == "two birds" and case.sentence("1") == "a bird"
    with zipfile.ZipFile(masks_zip, "a") as zf:  # the same file inside the stage-1 zip
        zf.writestr("meta_expressions.json", json.dumps(META).replace("a bird", "one bird"))
    case = case_from_upload(frames_zip, masks_zip)
    assert case.sentence("1") == "one bird"
    two = {"videos": {"cats": META["videos"]["birds"], "dogs": META["videos"]["birds"]}}
    meta.write_text(json.dumps(two))
    with pytest.raises(InputError, match=r"describes videos \['cats', 'dogs'\], none of them"):
        case_from_upload(frames_zip, masks_zip, meta_path=str(meta))
    meta.write_text("[" * 100_000)
    with pytest.raises(InputError, match="meta_expressions.json: .* nested too deeply"):
        case_from_upload(frames_zip, masks_zip, meta_path=str(meta))
    meta.write_text('{"videos": []}')
    with pytest.raises(InputError, match="expected"):
        case_from_upload(frames_zip, masks_zip, meta_path=str(meta))


def test_a_run_evicted_between_lookup_and_use_is_still_shown(session, prop):
    """Bug: run_sam2 looked a run up, then marked it used under a separate lock; a rank in
    the same session (--concurrency > 1) could evict it in between → KeyError."""
    _open(session, "birds", "0")
    track = make_tracker(lambda spec: prop)
    run = session.run_sam2(SETTINGS, track)
    lookup = session.cached_run

    def racing(exp_id, settings=None):
        found = lookup(exp_id, settings)
        session.runs.clear()  # what a concurrent rank's eviction does to this key
        return found

    session.cached_run = racing
    assert session.run_sam2(SETTINGS, track) is run and session.run is run


def test_run_cache_survives_concurrent_runs_and_ranks(tmp_path, prop):
    import threading

    s = Session(workdir=str(tmp_path / "w"), max_cache_bytes=1)  # every add evicts
    track = make_tracker(lambda spec: prop)
    s.open_case(EXAMPLES.load_case("birds"), "0")
    items = [
        ((EXAMPLES.case_key("birds"), lambda charge: EXAMPLES.load_case("birds", charge)), "1")
    ]
    errors: list[BaseException] = []

    def ranks() -> None:
        try:
            for i in range(30):
                rank_expressions(s, items, RunSettings(SETTINGS.spec, 0.2 + i / 100), track)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    thread = threading.Thread(target=ranks)
    thread.start()
    for i in range(60):  # A, B, A, …: a cached A is not the shown run, so it can be evicted
        s.run_sam2(RunSettings(SETTINGS.spec, (0.275, 0.3)[i % 2]), track)
    thread.join(60)
    assert not thread.is_alive() and errors == [] and s.run.exp_id == "0"
    s.close()


def test_cached_run_keeps_only_union_masks_and_counts_their_bytes(session, prop):
    _open(session, "birds", "0")
    run = session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    r = run.result
    assert not hasattr(r, "fused") and not hasattr(r, "sam2_objects")
    arrays = (r.kept, r.prompt_frames, r.stage1, r.sam2, r.area_stage1, r.area_sam2)
    assert run.nbytes == sum(a.nbytes for a in arrays) == session.runs.nbytes


def test_masks_zip_is_one_file_with_the_same_bytes_for_the_same_masks(session, prop):
    _open(session, "birds", "0")
    session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    first = session.masks_zip()
    with open(first, "rb") as f:
        data = f.read()
    session.set_fusion(0, 0.5)
    other = session.masks_zip()
    session.set_fusion(Fraction(2, 3), 0.5)
    again = session.masks_zip()
    assert first == other == again  # one file per session, rewritten
    with open(again, "rb") as f:
        assert f.read() == data  # fixed timestamps: same masks, same bytes
    assert [n for n in os.listdir(session.workdir) if n.endswith(".zip")] == [
        os.path.basename(first)
    ]


def test_session_keeps_videos_of_a_few_runs_only(session, prop):
    from refine.inspect.exports import MAX_RUNS_WITH_VIDEOS

    _open(session, "birds", "0")
    track = make_tracker(lambda spec: prop)
    for i in range(MAX_RUNS_WITH_VIDEOS + 2):
        session.run_sam2(RunSettings(SETTINGS.spec, 0.1 + i / 100), track)
        session.videos()
    videos = os.listdir(os.path.join(session.workdir, "videos"))
    assert len(videos) == 3 * MAX_RUNS_WITH_VIDEOS


def test_two_requests_for_the_videos_at_once_get_the_same_files(session, prop):
    """Bug: the run's videos and a ρ move's fused video were written at once into the same
    files (FileNotFoundError at the rename)."""
    from concurrent.futures import ThreadPoolExecutor

    _open(session, "birds", "0")
    session.run_sam2(SETTINGS, make_tracker(lambda spec: prop))
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: session.videos(), range(2))
    assert first == second and all(os.path.isfile(p) for p in first.values())


def test_the_cpu_allocators_failure_is_out_of_memory():
    # torch's message on the CPU; the app used to show it as an internal error
    err = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)"
    )
    assert is_out_of_memory(err)


class LosesTheObject(StaticPropagator):
    """Each object's prompt region on its first frame only: a tracker that loses it."""

    def track(self, frames, prompt_sets, progress=None):
        for out in super().track(frames, prompt_sets, progress):
            out[1:] = False
            yield out


def test_rank_by_the_change_between_memories(session, prop):
    lost = LosesTheObject()
    by_memory = {"sam2": make_tracker(lambda spec: prop), "samurai": make_tracker(lambda s: lost)}

    def track(frames, exp_id, exp, params, spec, progress, memory):
        return by_memory[memory.mode](frames, exp_id, exp, params, spec, progress, memory)

    items = [
        ((EXAMPLES.case_key(v), lambda charge, v=v: EXAMPLES.load_case(v, charge)), e)
        for v, e, _ in EXAMPLES.expressions()
    ]
    samurai = replace(SETTINGS, memory=MemoryConfig("samurai"))
    one = rank_expressions(session, items, SETTINGS, track, source="examples")
    with pytest.raises(InputError, match="one tracking memory only"):
        rank_rows(one, session.area_ratio, session.vote, "memory")
    rows = rank_expressions(session, items, SETTINGS, track, source="examples", compare=samurai)
    assert len(prop.calls) == len(lost.calls) == 3  # each memory ran once per tracked expression
    ranked = rank_rows(rows, session.area_ratio, session.vote, "memory")
    changes = [r.memory_change(session.area_ratio, session.vote) for r, _ in ranked]
    assert changes == sorted(changes) and max(changes) > 0  # losing the object costs J&F
    row = ranked[-1][0]
    mine = row.fused_score(row.decision(session.area_ratio, session.vote))
    theirs = row.other.fused_score(row.other.decision(session.area_ratio, session.vote))
    assert changes[-1] == pytest.approx((mine.J + mine.F - theirs.J - theirs.F) / 2)
