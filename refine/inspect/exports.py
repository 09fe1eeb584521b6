"""A session's files: overlay videos of its runs and the fused-masks zip, in one folder.

The folder stays bounded: one masks zip per session (rewritten for each download, with fixed
zip timestamps so that the same masks give the same bytes) and the videos of at most
:data:`MAX_RUNS_WITH_VIDEOS` runs (older runs' videos are deleted and made again on demand).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable

from refine.errors import InputError
from refine.files import atomic_write, remove_tree
from refine.fusion import FusionDecision
from refine.inspect.cases import Case
from refine.inspect.runs import CaseRun, branch
from refine.mask_io import encode_mask_png
from refine.overlay import STAGE_COLORS, write_overlay_videos

log = logging.getLogger(__name__)

MAX_RUNS_WITH_VIDEOS = 3
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: same masks, same zip bytes
MASKS_ZIP = "fused_masks.zip"


class FilesRemoved(InputError):
    """The session's folder was deleted while a file was being written (its tab closed)."""


def safe_name(name: str) -> str:
    """``name`` with characters other than letters, digits, ``-``, ``_``, ``.`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class SessionFiles:
    """The files of one session under ``workdir`` (made on first use, made again after
    :meth:`remove`)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._with_videos: OrderedDict[int, CaseRun] = OrderedDict()
        self._lock = threading.RLock()  # one writer at a time: two events may ask at once

    def folder(self, *sub: str) -> str:
        path = os.path.join(self.workdir, *sub)
        os.makedirs(path, exist_ok=True)
        return path

    def remove(self) -> None:
        """Delete every file; the runs' videos are made again when asked for. (Not under the
        lock: a tab that closes while videos are written stops the writer this way.)"""
        for run in list(self._with_videos.values()):
            run.videos.clear()
        self._with_videos.clear()
        remove_tree(self.workdir, "session folder")

    def masks_zip(self, case: Case, run: CaseRun, decision: FusionDecision) -> str:
        """The fused masks of ``run`` under ``decision`` as a MeViS-layout zip
        ``<video>/<exp_id>/<frame>.png`` (values 0/255): the session's one masks zip."""
        with self._lock:
            return self._masks_zip(case, run, decision)

    def _masks_zip(self, case: Case, run: CaseRun, decision: FusionDecision) -> str:
        path = os.path.join(self.folder(), MASKS_ZIP)
        with (
            self._guard(),
            atomic_write(path) as tmp,
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        ):
            for name, mask in zip(case.frame_names, run.fused(decision), strict=True):
                entry = zipfile.ZipInfo(f"{case.video}/{run.exp_id}/{name}.png", ZIP_TIME)
                entry.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(entry, encode_mask_png(mask))
        return path

    def videos(
        self,
        case: Case,
        run: CaseRun,
        decision: FusionDecision,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, str]:
        """Overlay mp4s of ``run``: {"stage1", "sam2", "fused"} → path (each rendered once
        per run and fusion branch; a second caller waits for the first one's files)."""
        with self._lock:
            return self._videos(case, run, decision, progress)

    def _videos(self, case, run, decision, progress) -> dict[str, str]:
        fused_key = f"fused-{branch(decision)}"
        stem = f"{safe_name(case.video)}_{safe_name(run.exp_id)}_run{run.run_id}"
        todo = {
            k: os.path.join(self.folder("videos"), f"{stem}_{k}.mp4")
            for k in ("stage1", "sam2", fused_key)
            if not os.path.isfile(run.videos.get(k, ""))
        }
        if todo:
            r = run.result
            masks = {"stage1": r.stage1, "sam2": r.sam2, fused_key: run.fused(decision)}
            colors = {"stage1": "stage1", "sam2": "sam2", fused_key: "fused"}
            with self._guard():
                write_overlay_videos(
                    todo,
                    case.frames.rgb,
                    {k: masks[k] for k in todo},
                    {k: STAGE_COLORS[colors[k]] for k in todo},
                    case.fps,
                    progress,
                )
            run.videos.update(todo)
            self._mark(run)
        return {
            "stage1": run.videos["stage1"],
            "sam2": run.videos["sam2"],
            "fused": run.videos[fused_key],
        }

    def drop_videos(self, run: CaseRun) -> None:
        """Delete ``run``'s videos (e.g. the run left the cache)."""
        with self._lock:
            self._drop_videos(run)

    def _drop_videos(self, run: CaseRun) -> None:
        self._with_videos.pop(run.run_id, None)
        for path in run.videos.values():
            _remove(path)
        run.videos.clear()

    def _mark(self, run: CaseRun) -> None:
        """``run`` has videos now; older runs beyond the bound lose theirs."""
        self._with_videos[run.run_id] = run
        self._with_videos.move_to_end(run.run_id)
        while len(self._with_videos) > MAX_RUNS_WITH_VIDEOS:
            self._drop_videos(next(iter(self._with_videos.values())))

    def _guard(self):
        return _FolderGuard(self.workdir)


class _FolderGuard:
    """An OSError (e.g. BrokenPipe from ffmpeg) while the folder is gone becomes
    :class:`FilesRemoved`; with the folder still there it goes on as it is."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if isinstance(err, OSError) and not os.path.isdir(self.folder):
            raise FilesRemoved(
                "the session's files were removed while they were written (the tab closed?); "
                "reload the page to start again"
            ) from err
        return False


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        log.debug("%s was already removed", path)
