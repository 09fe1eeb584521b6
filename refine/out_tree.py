"""Rules for the output tree ``<out>/<video>/<exp_id>/<frame>.png`` (and refine's markers).

The output folder may sit inside a data set someone else made, so refine trusts nothing
already in it: it never writes or deletes through a symbolic link below ``<out>`` (the
folder the user named), it only replaces an expression folder that holds nothing but
regular ``.png`` files (what refine writes there), and it zips regular files only.
"""

from __future__ import annotations

import os
import stat

from refine.errors import InputError
from refine.files import file_kind, write_text_atomic

LINK_HINT = (
    "refine never writes, deletes or zips through links inside its output folder; remove "
    "the link or choose another --out"
)


def check_no_links(root: str, path: str) -> str:
    """``path`` if no component of it below ``root`` (``path`` included) is a symbolic
    link; InputError naming the first link otherwise. Components that do not exist yet
    are fine. ``root`` itself, the folder the user named, may be a link."""
    rel = os.path.relpath(path, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise InputError(f"{path}: not inside the output folder {root}")
    current = root
    for part in [] if rel == os.curdir else rel.split(os.sep):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise InputError(f"{current}: is a symbolic link; {LINK_HINT}")
    return path


def check_written_by_refine(folder: str) -> None:
    """InputError unless ``folder`` holds only regular ``*.png`` files (an expression
    folder refine wrote), so that replacing it deletes nothing refine did not write."""
    with os.scandir(folder) as entries:
        for e in entries:
            mode = e.stat(follow_symlinks=False).st_mode
            if not (stat.S_ISREG(mode) and e.name.endswith(".png")):
                kind = "file" if stat.S_ISREG(mode) else file_kind(mode)
                raise InputError(
                    f"{e.path}: a {kind} that refine did not write, in the output folder "
                    f"{folder}; refine only replaces folders of its own PNG masks — move it "
                    "away or choose another --out"
                )


def write_text_in_tree(root: str, path: str, text: str) -> None:
    """Write ``text`` to ``path`` under ``root`` atomically, refusing links on the way."""
    write_text_atomic(check_no_links(root, path), text)


def regular_pngs(root: str, folder: str) -> list[str]:
    """Names of the ``*.png`` files in ``folder`` (under ``root``), sorted; InputError for
    a ``.png`` that is a symbolic link or not a regular file (FIFO, device, folder)."""
    check_no_links(root, folder)
    names = []
    with os.scandir(folder) as entries:
        for e in entries:
            if not e.name.endswith(".png") or e.name.startswith("."):
                continue
            mode = e.stat(follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                raise InputError(
                    f"{e.path}: is a {file_kind(mode)}, not a regular file; {LINK_HINT}"
                )
            names.append(e.name)
    return sorted(names)
