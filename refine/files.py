"""File-system rules in one place: reading only regular files, atomic writes, removing trees.

Every reader of a user file goes through :func:`read_regular_file` (a FIFO, socket or
device named like a frame or mask would block the reader or stream forever); every write
that must be all-or-nothing goes through :func:`atomic_write`; every folder refine
deletes goes through :func:`remove_tree`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from refine.errors import InputError

log = logging.getLogger(__name__)


def file_kind(mode: int) -> str:
    """A word for a non-regular file's kind, for messages ("FIFO", "socket", ...)."""
    for test, word in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISLNK, "symbolic link"),
    ):
        if test(mode):
            return word
    return "special file"


def _stat_regular(path: str, what: str, fd: int | None = None) -> os.stat_result:
    """``os.stat`` of ``path`` (or ``fstat`` of ``fd``); InputError unless it exists and is
    a regular file."""
    try:
        st = os.stat(path) if fd is None else os.fstat(fd)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found; check the path") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(
            f"{path}: the {what} is a {file_kind(st.st_mode)}, not a regular file; "
            "replace it with a plain file"
        )
    return st


def check_regular_file(path: str, what: str) -> None:
    """InputError unless ``path`` is a regular file (symlinks to one are followed)."""
    _stat_regular(path, what)


def read_regular_file(path: str, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file ``path``; InputError for anything else.

    The file is opened without blocking (a FIFO would block ``open``) and checked with
    ``fstat`` on the opened descriptor, so a file swapped after a check is still caught.
    ``max_bytes`` bounds its size, checked before reading.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        _stat_regular(path, what)  # says why when it is missing or not a regular file
        raise InputError(f"{path}: cannot read the {what} ({err.strerror})") from None
    try:
        size = _stat_regular(path, what, fd).st_size
        if max_bytes is not None and size > max_bytes:
            raise InputError(f"{path}: the {what} is {size} bytes, over the limit of {max_bytes}")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read()


def parse_json(text: str | bytes, source: str, what: str) -> object:
    """``text`` parsed as JSON; InputError naming ``source`` for invalid JSON, bad UTF-8 or
    nesting too deep for the parser (a few kilobytes of ``[[[…`` exhaust its recursion)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(
            f"{source}: the {what} is nested too deeply to read; nothing in it needs more "
            "than a few levels"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{source}: the {what} is not valid JSON ({err})") from None


def load_json(path: str, what: str) -> object:
    """The JSON file ``path`` (a regular file) parsed with :func:`parse_json`."""
    return parse_json(read_regular_file(path, what), path, what)


@contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block ends without error it is
    flushed to disk and renamed onto ``path``, else removed. A crash leaves either the old
    file or the new one, never half of one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def remove_tree(path: str, what: str = "folder") -> None:
    """Delete the folder ``path`` and what is in it; one already gone is fine, other
    failures are logged (``what`` names the folder in the log). A symbolic link is
    removed as a link: what it points to is never touched."""
    try:
        if os.path.islink(path):
            os.remove(path)
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        log.debug("%s was already removed", path)
    except OSError as err:
        log.warning("could not remove the %s %s: %s", what, path, err)
