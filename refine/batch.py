"""The batch run over a MeViS-layout data set: videos → ``<out>/<video>/<exp_id>/<frame>.png``.

Each video is handled by :func:`process_video`. With several devices (or workers) one
process per worker takes videos from a shared queue; a video that fails is reported at
the end and the others go on. Every expression's PNGs are written atomically, followed by
a completion marker ``<out>/.refine/<video>/<exp_id>.json`` (settings + fusion
diagnostics) that ``--resume`` uses to skip finished work.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing as mp
import os
import queue
from dataclasses import asdict, dataclass, field, replace

from refine.dataset import MevisDataset
from refine.errors import InputError
from refine.mask_io import write_expression_masks
from refine.memory import SAM2_MEMORY, MemoryConfig
from refine.models import ModelSpec
from refine.names import check_name
from refine.out_tree import write_text_in_tree
from refine.pipeline import RefineParams, check_video_matches, iter_refine_video
from refine.propagation import DEFAULT_CACHE_MB, resolve_precision
from refine.stage1 import load_video_stage1

log = logging.getLogger(__name__)
MARKER_DIR = ".refine"


@dataclass(frozen=True)
class BatchConfig:
    """Everything a worker needs to process videos (picklable for worker processes)."""

    data: str
    stage1: str
    out: str
    spec: ModelSpec
    params: RefineParams = field(default_factory=RefineParams)
    precision: str = "auto"
    resume: bool = False
    cache_mb: float | None = DEFAULT_CACHE_MB
    offload_cache: bool = False
    schedule: str = "lockstep"
    evaluate: bool = False
    resume_any: bool = False
    memory: MemoryConfig = SAM2_MEMORY

    def settings(self) -> dict:
        """What determines the masks; a resumed run must match it (JSON-ready)."""
        s = self.spec
        model = {
            "size": s.size,
            "checkpoint": None if s.random_weights else os.path.basename(s.checkpoint or "default"),
            "checkpoint_sha256": None if s.random_weights else checkpoint_sha256(s),
            "random_weights": s.random_weights,
            "seed": s.seed if s.random_weights else None,
            "image_size": s.image_size,
            "fill_holes": s.fill_holes,
        }
        return {
            "model": model,
            "precision": resolve_precision(self.precision, s.device),
            "device": s.device.split(":")[0],
            "memory": self.memory.as_dict(),
            **self.params.as_dict(),
        }


def checkpoint_sha256(spec: ModelSpec) -> str:
    """sha256 of the checkpoint file ``spec`` resolves to (read once per process)."""
    from refine.models import resolve_checkpoint

    path = os.path.realpath(resolve_checkpoint(spec.size, spec.checkpoint))
    st = os.stat(path)
    return _file_sha256(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class VideoReport:
    video: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None


def marker_path(out: str, video: str, exp_id: str) -> str:
    return os.path.join(out, MARKER_DIR, video, f"{exp_id}.json")


def is_complete(cfg: BatchConfig, video: str, exp_id: str, frame_names: list[str]) -> bool:
    """True when the expression's marker and every PNG exist with the same settings."""
    path = marker_path(cfg.out, video, exp_id)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            marker = json.load(f)
    except json.JSONDecodeError:
        return False
    settings = json.loads(json.dumps(cfg.settings()))
    made_with = marker.get("settings")
    if made_with != settings and not cfg.resume_any:
        differ = settings_difference(made_with, settings)
        raise InputError(
            f"{path}: this output was made with other settings ({differ}); use another "
            "--out, run without --resume to overwrite, or add --resume-any to keep it as it is"
        )
    exp_dir = os.path.join(cfg.out, video, exp_id)
    return all(os.path.isfile(os.path.join(exp_dir, f"{n}.png")) for n in frame_names)


def settings_difference(old, new: dict) -> str:
    """The settings that differ, as "key: old → new" (old may be anything read from JSON)."""
    if not isinstance(old, dict):
        return f"settings: {old!r} → {new!r}"
    keys = sorted(set(old) | set(new))
    return "; ".join(
        f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)
    )


def process_video(cfg: BatchConfig, video: str, propagator, on_expression=None) -> VideoReport:
    """Refine every expression of one video and write its PNGs and markers."""
    report = VideoReport(video)
    ds = MevisDataset(cfg.data)
    info = ds.video(video)
    frames = info.frame_source()
    source, stage1 = load_video_stage1(
        cfg.stage1,
        video,
        info.frame_names,
        (frames.height, frames.width),
        info.expressions,
        lazy=True,
    )
    check_video_matches(stage1, info.frame_names, frames, source)
    missing = sorted(set(info.expressions) - set(stage1.expressions))
    if missing:
        raise InputError(f"{source}: no stage-1 results for expressions {missing} of {video!r}")
    todo = []
    for exp_id in stage1.expressions:
        if cfg.resume and is_complete(cfg, video, exp_id, info.frame_names):
            report.skipped.append(exp_id)
        else:
            todo.append(exp_id)
    gt = ground_truth(cfg.data, video, (frames.height, frames.width)) if cfg.evaluate else None
    for result in iter_refine_video(frames, stage1, propagator, cfg.params, todo):
        exp_id = result.exp_id
        write_expression_masks(cfg.out, video, exp_id, info.frame_names, result.fused_frames())
        marker = {
            "settings": cfg.settings(),
            "sentence": info.expressions.get(exp_id),
            **result.diagnostics(),
        }
        if gt is not None:
            marker["scores"] = {
                stage: {"J": s.J, "F": s.F}
                for stage, s in evaluate_result(result, gt(exp_id)).items()
            }
        write_text_in_tree(cfg.out, marker_path(cfg.out, video, exp_id), json.dumps(marker))
        report.written.append(exp_id)
        if on_expression is not None:
            on_expression(video, exp_id)
    return report


def ground_truth(data: str, video: str, size: tuple[int, int]):
    """The video's ground truth for ``--eval`` (needs the split's mask_dict.json)."""
    from refine.ground_truth import VideoGroundTruth

    path = os.path.join(data, "mask_dict.json")
    if not os.path.isfile(path):
        raise InputError(f"{path}: --eval needs a labelled split (mask_dict.json)")
    return VideoGroundTruth(data, video, size)


def evaluate_result(result, gt):
    """J and F of the stage-1, SAM2 and fused masks of one ExpressionResult against ``gt``
    [T, H, W]; {} when ``gt`` is None (an expression that is not scored)."""
    from refine.metrics import evaluate_stages

    if gt is None:
        return {}
    return evaluate_stages(
        gt, {"stage1": result.stage1, "sam2": result.sam2, "fused": result.fused}
    )


def summarize_scores(out: str, videos: list[str]) -> dict:
    """Per-stage J, F, J&F (percent) over the markers of ``videos`` that hold scores."""
    from refine.metrics import ExpressionScore, summarize

    per_stage: dict[str, dict[str, ExpressionScore]] = {}
    for video in videos:
        folder = os.path.join(out, MARKER_DIR, video)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                marker = json.load(f)
            for stage, s in marker.get("scores", {}).items():
                key = f"{video}/{name[: -len('.json')]}"
                per_stage.setdefault(stage, {})[key] = ExpressionScore(s["J"], s["F"])
    return {stage: summarize(scores) for stage, scores in per_stage.items()}


def make_propagator(cfg: BatchConfig):
    from refine.propagation import Sam2Propagator

    return Sam2Propagator(
        cfg.spec, cfg.precision, cfg.cache_mb, cfg.offload_cache, cfg.schedule, cfg.memory
    )


def _run_videos(cfg: BatchConfig, propagator, position: int, next_video) -> list[VideoReport]:
    from tqdm import tqdm

    reports = []
    bar = tqdm(
        desc=f"{cfg.spec.device} [{position}]",
        unit="exp",
        position=position,
        dynamic_ncols=True,
        leave=True,
    )
    with bar:
        while (video := next_video()) is not None:
            bar.set_postfix_str(video)
            try:
                reports.append(process_video(cfg, video, propagator, lambda v, e: bar.update(1)))
            except InputError as err:
                reports.append(VideoReport(video, error=str(err)))
            except (RuntimeError, MemoryError, OSError) as err:
                # e.g. CUDA out of memory on one long video: report it, go on with the rest
                log.exception("video %s failed", video)
                reports.append(VideoReport(video, error=f"{video}: {type(err).__name__}: {err}"))
    return reports


def _worker(cfg: BatchConfig, position: int, todo, results) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def next_video():
        # blocking: the queue ends with one None per worker. (get_nowait() raises Empty
        # while another worker holds the queue's read lock, which would end this worker
        # early and leave its share of the work to the others.)
        return todo.get()

    try:
        reports = _run_videos(cfg, make_propagator(cfg), position, next_video)
    except InputError as err:  # e.g. a missing checkpoint: every video would fail the same way
        reports = [VideoReport("*", error=str(err))]
    results.put([asdict(r) for r in reports])


def run_batch(
    cfg: BatchConfig, videos: list[str] | None, devices: list[str], propagator=None
) -> list[VideoReport]:
    """Process ``videos`` (default: all in meta_expressions.json) on ``devices``.

    One device: in this process (``propagator`` may be given, e.g. a fake). Several:
    one spawned worker per entry of ``devices``, videos handed out from a shared queue.
    """
    ds = MevisDataset(cfg.data)
    names = ds.videos() if not videos else [check_name(v, "video", "--videos") for v in videos]
    unknown = [v for v in names if v not in ds.videos_meta]
    if unknown:
        raise InputError(f"{ds.meta_path}: videos {unknown} are not in the data set")
    os.makedirs(cfg.out, exist_ok=True)
    if len(devices) <= 1:
        pending = list(names)
        prop = propagator if propagator is not None else make_propagator(cfg)
        return _run_videos(cfg, prop, 0, lambda: pending.pop(0) if pending else None)
    ctx = mp.get_context("spawn")
    todo, results = ctx.Queue(), ctx.Queue()
    for v in [*names, *[None] * len(devices)]:
        todo.put(v)
    procs = []
    for i, dev in enumerate(devices):
        wcfg = replace(cfg, spec=replace(cfg.spec, device=dev))
        p = ctx.Process(target=_worker, args=(wcfg, i, todo, results))
        p.start()
        procs.append(p)
    reports: list[VideoReport] = []
    received = 0
    while received < len(procs):
        try:
            reports += [VideoReport(**r) for r in results.get(timeout=1.0)]
            received += 1
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and results.empty():
                break
    for p in procs:
        p.join()
    crashed = [p.exitcode for p in procs if p.exitcode]
    if crashed:
        done = {r.video for r in reports}
        lost = [v for v in names if v not in done]
        reports.append(
            VideoReport(
                "*",
                error=f"{len(crashed)} worker(s) died (exit codes "
                f"{crashed}); unfinished videos: {lost}",
            )
        )
    return reports
