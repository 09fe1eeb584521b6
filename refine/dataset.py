"""A data set root in MeViS layout: JPEGImages/<video>/<frame>.jpg + meta_expressions.json.

:func:`load_meta_expressions` is the one parser of ``meta_expressions.json``
(``{"videos": {video: {"frames": [...], "expressions": {exp_id: {"exp": text,
"anno_id": [...]}}}}}``); the batch run, the evaluation and the app all read it through
this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from refine.errors import InputError
from refine.files import load_json
from refine.frames import FrameSource
from refine.names import check_name, list_frame_files


@dataclass(frozen=True)
class ExpressionMeta:
    """One expression of ``meta_expressions.json``.

    sentence: its ``exp`` text ("" when absent);
    anno_ids: its ``anno_id`` list as strings (keys of ``mask_dict.json``); None when the
        entry has no ``anno_id`` at all (see :mod:`refine.ground_truth` for what that means).
    """

    sentence: str
    anno_ids: tuple[str, ...] | None


@dataclass(frozen=True)
class VideoMeta:
    """One video of ``meta_expressions.json``: its frame stems (None when not listed) and
    its expressions by exp_id, in file order."""

    frames: tuple[str, ...] | None
    expressions: dict[str, ExpressionMeta]


def _anno_ids(emeta: dict, where: str) -> tuple[str, ...] | None:
    if "anno_id" not in emeta:
        return None
    ids = emeta["anno_id"]
    if not isinstance(ids, list):
        raise InputError(f"{where}: 'anno_id' must be a list")
    for a in ids:
        if isinstance(a, bool) or not isinstance(a, (int, str)):
            raise InputError(f"{where}: anno_id {a!r} is not an integer or string")
    return tuple(str(a) for a in ids)


def _video_meta(path: str, video: str, vmeta: object) -> VideoMeta:
    where = f"{path}: video {video!r}"
    if not isinstance(vmeta, dict):
        raise InputError(f"{where}: expected an object with 'frames' and 'expressions'")
    frames = vmeta.get("frames")
    if frames is not None:
        if not isinstance(frames, list) or not frames:
            raise InputError(f"{where}: 'frames' must be a non-empty list of frame names")
        for frame in frames:
            check_name(frame, "frame", path)
        if len(set(frames)) != len(frames):
            raise InputError(f"{where}: 'frames' lists the same frame twice")
    exps = vmeta.get("expressions", {})
    if not isinstance(exps, dict):
        raise InputError(f"{where}: 'expressions' must be an object keyed by exp_id")
    expressions = {}
    for exp_id, emeta in exps.items():
        check_name(exp_id, "exp_id", path)
        if not isinstance(emeta, dict):
            raise InputError(f"{where}, expression {exp_id!r}: expected an object")
        sentence = emeta.get("exp", "")
        expressions[exp_id] = ExpressionMeta(
            sentence if isinstance(sentence, str) else str(sentence),
            _anno_ids(emeta, f"{where}, expression {exp_id!r}"),
        )
    return VideoMeta(None if frames is None else tuple(frames), expressions)


def load_meta_expressions(path: str) -> dict[str, VideoMeta]:
    """``meta_expressions.json`` parsed and checked: video name → :class:`VideoMeta`, in
    file order.

    Raises:
        InputError: the file is missing, not JSON (or nested too deeply), not in the
            layout above, or a video, exp_id or frame name is not a plain file name.
    """
    return parse_meta_expressions(load_json(path, "meta_expressions.json"), path)


def parse_meta_expressions(data: object, path: str) -> dict[str, VideoMeta]:
    """:func:`load_meta_expressions` on already-decoded JSON ``data`` from ``path``."""
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise InputError(f'{path}: expected {{"videos": {{video: {{...}}}}}} at the top level')
    return {
        check_name(video, "video", path): _video_meta(path, video, vmeta)
        for video, vmeta in videos.items()
    }


@dataclass(frozen=True)
class VideoInfo:
    """One video: its frame folder, frame files (SAM2 order), stems and sentences by exp_id."""

    name: str
    frames_dir: str
    frame_files: list[str]
    expressions: dict[str, str]

    @property
    def frame_names(self) -> list[str]:
        return [os.path.splitext(f)[0] for f in self.frame_files]

    def frame_source(self) -> FrameSource:
        return FrameSource.from_paths([os.path.join(self.frames_dir, f) for f in self.frame_files])


class MevisDataset:
    """Read-only view of a MeViS-layout root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.meta_path = os.path.join(root, "meta_expressions.json")
        if not os.path.isdir(os.path.join(root, "JPEGImages")):
            raise InputError(f"{root}: not a MeViS-layout root (no JPEGImages/ folder)")
        if not os.path.isfile(self.meta_path):
            raise InputError(f"{root}: no meta_expressions.json")
        raw = load_json(self.meta_path, "meta_expressions.json")
        self.videos_meta: dict[str, VideoMeta] = parse_meta_expressions(raw, self.meta_path)

    def videos(self) -> list[str]:
        return sorted(self.videos_meta)

    def expressions(self) -> list[tuple[str, str, str]]:
        """(video, exp_id, sentence) of every expression, videos by name, ids in file order."""
        return [
            (video, exp_id, e.sentence)
            for video in self.videos()
            for exp_id, e in self.videos_meta[video].expressions.items()
        ]

    def video(self, name: str) -> VideoInfo:
        """The video ``name``, with its frames checked against meta_expressions.json."""
        check_name(name, "video", self.meta_path)
        if name not in self.videos_meta:
            raise InputError(f"{self.meta_path}: no video {name!r}")
        entry = self.videos_meta[name]
        sentences = {exp_id: e.sentence for exp_id, e in entry.expressions.items()}
        frames_dir = os.path.join(self.root, "JPEGImages", name)
        files = list_frame_files(frames_dir)
        info = VideoInfo(name, frames_dir, files, sentences)
        listed = entry.frames
        if listed is not None and list(listed) != info.frame_names:
            raise InputError(
                f"{frames_dir}: frames on disk ({len(files)}, e.g. {info.frame_names[:3]}) "
                f"disagree with meta_expressions.json ({len(listed)}, e.g. {list(listed)[:3]})"
            )
        return info
