"""The MeViS submission zip: ``<video>/<exp_id>/<frame>.png`` at the zip's root."""

from __future__ import annotations

import os
import zipfile

from refine.errors import InputError


def make_submission_zip(out_dir: str, zip_path: str) -> int:
    """Zip every ``<video>/<exp_id>/*.png`` under ``out_dir``; returns the PNG count.

    Hidden entries (refine's markers and temporary folders) are left out. The zip is
    written to a temporary file and renamed, so a crash leaves no half-written zip.
    """
    if not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: output folder does not exist")
    entries = []
    for video in sorted(os.listdir(out_dir)):
        vdir = os.path.join(out_dir, video)
        if video.startswith(".") or not os.path.isdir(vdir):
            continue
        for exp_id in sorted(os.listdir(vdir)):
            edir = os.path.join(vdir, exp_id)
            if exp_id.startswith(".") or not os.path.isdir(edir):
                continue
            for f in sorted(os.listdir(edir)):
                if f.endswith(".png") and not f.startswith("."):
                    entries.append((os.path.join(edir, f), f"{video}/{exp_id}/{f}"))
    if not entries:
        raise InputError(f"{out_dir}: no <video>/<exp_id>/*.png masks to zip")
    tmp = f"{zip_path}.tmp-{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src, arc in entries:
            zf.write(src, arc)
    os.replace(tmp, zip_path)
    return len(entries)
