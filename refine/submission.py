"""The MeViS submission zip: ``<video>/<exp_id>/<frame>.png`` at the zip's root."""

from __future__ import annotations

import os
import zipfile

from refine.errors import InputError
from refine.files import atomic_write
from refine.out_tree import check_no_links, regular_pngs


def _subfolders(root: str, folder: str) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder``; a symbolic link among them
    is an InputError (see :func:`refine.out_tree.check_no_links`)."""
    names = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.startswith(".") and os.path.isdir(check_no_links(root, path)):
            names.append(name)
    return names


def make_submission_zip(out_dir: str, zip_path: str) -> int:
    """Zip every ``<video>/<exp_id>/*.png`` under ``out_dir``; returns the PNG count.

    Hidden entries (refine's markers and temporary folders) are left out. Only regular
    files are zipped: a symbolic link (to a file or a folder) or a special file named
    ``*.png`` is an InputError naming it. The zip is written to a temporary file and
    renamed, so a crash leaves no half-written zip.
    """
    if not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: output folder does not exist")
    entries = []
    for video in _subfolders(out_dir, out_dir):
        vdir = os.path.join(out_dir, video)
        for exp_id in _subfolders(out_dir, vdir):
            edir = os.path.join(vdir, exp_id)
            for f in regular_pngs(out_dir, edir):
                entries.append((os.path.join(edir, f), f"{video}/{exp_id}/{f}"))
    if not entries:
        raise InputError(f"{out_dir}: no <video>/<exp_id>/*.png masks to zip")
    with atomic_write(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, arc in entries:
            zf.write(src, arc)
    return len(entries)
