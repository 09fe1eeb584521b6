"""A data set root in MeViS layout: JPEGImages/<video>/<frame>.jpg + meta_expressions.json."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from refine.errors import InputError
from refine.frames import FrameSource
from refine.names import check_name, list_frame_files


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
        try:
            with open(self.meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{self.meta_path}: not valid JSON ({err})") from err
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict):
            raise InputError(f"{self.meta_path}: expected {{'videos': {{video: {{...}}}}}}")
        self.meta: dict = videos
        for name in videos:
            check_name(name, "video", self.meta_path)

    def videos(self) -> list[str]:
        return sorted(self.meta)

    def video(self, name: str) -> VideoInfo:
        """The video ``name``, with its frames checked against meta_expressions.json."""
        check_name(name, "video", self.meta_path)
        if name not in self.meta:
            raise InputError(f"{self.meta_path}: no video {name!r}")
        entry = self.meta[name]
        exps = entry.get("expressions", {}) if isinstance(entry, dict) else None
        if not isinstance(exps, dict):
            raise InputError(f"{self.meta_path}: video {name!r} has no 'expressions' object")
        sentences = {}
        for exp_id, e in exps.items():
            check_name(exp_id, "exp_id", self.meta_path)
            sentences[exp_id] = str(e.get("exp", "")) if isinstance(e, dict) else ""
        frames_dir = os.path.join(self.root, "JPEGImages", name)
        files = list_frame_files(frames_dir)
        info = VideoInfo(name, frames_dir, files, sentences)
        listed = entry.get("frames")
        if listed is not None and [str(x) for x in listed] != info.frame_names:
            raise InputError(
                f"{frames_dir}: frames on disk ({len(files)}, e.g. {info.frame_names[:3]}) "
                f"disagree with meta_expressions.json ({len(listed)}, e.g. {list(listed)[:3]})"
            )
        return info
