"""Cases of an inspection session: one video with its stage-1 results, sentences and
optional ground truth, from a MeViS-layout data set (:class:`DataSource`) or from uploads
(:mod:`refine.inspect.uploads`)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from refine.bitmasks import BitMasks
from refine.dataset import MevisDataset
from refine.errors import InputError
from refine.frames import FrameSource
from refine.ground_truth import VideoGroundTruth
from refine.inspect.budget import Charge
from refine.overlay import DEFAULT_FPS
from refine.pipeline import check_video_matches
from refine.selection import select_queries
from refine.stage1 import ExpressionStage1, VideoStage1, load_video_stage1
from refine.upsample import upsample_masks

GtLoader = Callable[[str], "np.ndarray | None"]


@dataclass
class Case:
    """One video: frames, stage-1 results, sentences and optional ground truth.

    ``key`` identifies the case within a process (cached runs are keyed by it);
    ``video`` is the plain file name used for downloads; ``gt(exp_id)`` gives bool
    [T, H, W] or None when that expression has no ground truth. ``charge`` (set by the
    session that holds the case) is told the bytes of ground truth and previews before
    they are made; :attr:`nbytes` is what the case holds.
    """

    key: str
    video: str
    frames: FrameSource
    frame_names: list[str]
    stage1: VideoStage1
    sentences: dict[str, str] = field(default_factory=dict)
    fps: float = DEFAULT_FPS
    gt: GtLoader | None = None
    source: str = ""
    charge: Charge | None = field(default=None, repr=False)
    _gt_cache: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)
    _preview: dict[tuple[str, float], BitMasks] = field(default_factory=dict, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes held: frames, stage-1 arrays, ground truth and preview (not the SAM2
        feature caches, which are charged apart)."""
        stage1 = sum(
            getattr(a, "nbytes", 0)
            for e in self.stage1.expressions.values()
            for a in (e.scores, e.boxes, e.masks)
        )
        gt = sum(g.nbytes for g in self._gt_cache.values() if g is not None)
        return self.frames.nbytes + stage1 + gt + sum(p.nbytes for p in self._preview.values())

    def _grow(self, nbytes: int, what: str) -> None:
        if self.charge is not None:
            self.charge.grow(nbytes, what)

    def settle_charge(self) -> None:
        """Set the charge (if any) to what the case holds now."""
        if self.charge is not None:
            self.charge.settle(self.nbytes)

    @property
    def exp_ids(self) -> list[str]:
        return list(self.stage1.expressions)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return (self.frames.height, self.frames.width)

    def sentence(self, exp_id: str) -> str:
        exp = self.stage1.expressions.get(exp_id)
        return self.sentences.get(exp_id) or (exp.sentence if exp else None) or ""

    def expression(self, exp_id: str) -> ExpressionStage1:
        if exp_id not in self.stage1.expressions:
            raise InputError(
                f"{self.video}: no expression {exp_id!r} in its stage-1 results "
                f"(it has {self.exp_ids})"
            )
        return self.stage1.expressions[exp_id]

    def preview(self, exp_id: str, threshold: float, t: int) -> np.ndarray:
        """Frame ``t`` of the stage-1 union of ``exp_id``'s queries kept at θ =
        ``threshold``, before SAM2: [H, W] bool. The union of every frame is kept packed
        (a bit a pixel), for the last (exp_id, θ) asked for."""
        key = (exp_id, float(threshold))
        if key not in self._preview:
            self._preview.clear()
            self.settle_charge()
            h, w = self.size
            self._grow(self.num_frames * -(-h * w // 8), f"the stage-1 preview of {exp_id}")
            try:
                self._preview[key] = stage1_preview(self.expression(exp_id), threshold, self.size)
            finally:
                self.settle_charge()
        return self._preview[key][t]

    def ground_truth(self, exp_id: str) -> np.ndarray | None:
        """Ground truth of ``exp_id``: bool [T, H, W], or None without one (cached)."""
        if self.gt is None:
            return None
        if exp_id not in self._gt_cache:
            self._grow(self.num_frames * self.size[0] * self.size[1], f"ground truth of {exp_id}")
            try:
                gt = self.gt(exp_id)
                if gt is not None and gt.shape != (self.num_frames, *self.size):
                    raise InputError(
                        f"{self.video}/{exp_id}: ground truth is {list(gt.shape)} (T, H, W) but "
                        f"the video is {[self.num_frames, *self.size]}"
                    )
            except BaseException:
                self.settle_charge()
                raise
            self._gt_cache[exp_id] = gt
            self.settle_charge()
        return self._gt_cache[exp_id]


_PREVIEW_CHUNK = 4 * 2**20  # float32 elements upsampled at once (16 MB)


def stage1_preview(exp: ExpressionStage1, threshold: float, size: tuple[int, int]) -> BitMasks:
    """Stage-1 union of the queries kept at θ, without SAM2: [T, H, W] a bit a pixel.
    Built a few frames and queries at a time (at most ``_PREVIEW_CHUNK`` upsampled values,
    or one frame of one query), so that the work in memory does not grow with frames ×
    queries, and nothing of [T, H, W] is held unpacked."""
    kept = select_queries(exp.scores, threshold)
    pixels = size[0] * size[1]
    out = BitMasks.zeros(exp.num_frames, size)
    queries = max(1, min(len(kept), _PREVIEW_CHUNK // pixels))
    frames = max(1, _PREVIEW_CHUNK // (queries * pixels))
    for t in range(0, exp.num_frames if len(kept) else 0, frames):
        union = np.zeros((min(frames, exp.num_frames - t), *size), dtype=bool)
        for k in range(0, len(kept), queries):
            block = exp.masks[t : t + frames, kept[k : k + queries]]
            union |= upsample_masks(block, size).any(axis=1)
        out.bits[t : t + frames] = BitMasks.pack(union).bits
    return out


@dataclass(frozen=True)
class DataSource:
    """A MeViS-layout root whose stage-1 results are ``<stage1_dir>/<video>.npz`` or
    ``<stage1_dir>/<video>/<exp_id>/<frame>.png``; with ``mask_dict.json`` it has GT."""

    name: str
    root: str
    stage1_dir: str

    @property
    def dataset(self) -> MevisDataset:
        return _dataset(self.root)

    @property
    def has_gt(self) -> bool:
        return os.path.isfile(os.path.join(self.root, "mask_dict.json"))

    def videos(self) -> list[str]:
        return self.dataset.videos()

    def expressions(self) -> list[tuple[str, str, str]]:
        """(video, exp_id, sentence) of every expression in meta_expressions.json."""
        return self.dataset.expressions()

    def case_key(self, video: str) -> str:
        return f"{self.name}:{os.path.abspath(self.root)}:{video}"

    def load_case(self, video: str, charge: Charge | None = None) -> Case:
        """The case of ``video``: frames from JPEGImages, its stage-1 results and GT
        (``charge`` is told the stage-1 results' size before they are read)."""
        info = self.dataset.video(video)
        frames = info.frame_source()
        size = (frames.height, frames.width)
        reserve = charge.grow if charge is not None else None
        source, stage1 = load_video_stage1(
            self.stage1_dir, video, info.frame_names, size, info.expressions, reserve=reserve
        )
        check_video_matches(stage1, info.frame_names, frames, source)
        gt = VideoGroundTruth(self.root, video, size) if self.has_gt else None
        return Case(
            key=self.case_key(video),
            video=video,
            frames=frames,
            frame_names=info.frame_names,
            stage1=stage1,
            sentences=dict(info.expressions),
            gt=gt,
            source=self.name,
            charge=charge,
        )


@functools.lru_cache(maxsize=8)
def _dataset(root: str) -> MevisDataset:
    return MevisDataset(root)
