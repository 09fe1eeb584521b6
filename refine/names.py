"""Validation of names that come from files (videos, expression ids, frames).

Names read from user files are untrusted: they become path components of the
output, so anything that is not a plain file name is rejected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from refine.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".JPG", ".JPEG")


def check_name(name: object, what: str, source: str) -> str:
    """Return ``name`` if it is a plain file name, else raise InputError.

    ``what`` says which kind of name it is ("video", "exp_id", "frame"), ``source``
    which file it came from; both appear in the message.
    """
    if not isinstance(name, str):
        raise InputError(f"{source}: {what} name {name!r} is not a string")
    bad = (
        name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name != name.strip()
        or os.path.isabs(name)
    )
    if bad:
        raise InputError(
            f"{source}: {what} name {name!r} is not a plain file name "
            "(no path separators, '..', NUL, surrounding spaces or empty names)"
        )
    return name


def exp_id_sort_key(exp_id: str) -> tuple[int, int, str]:
    """Sort key of expression ids: decimal ids first by value ("2" before "10"), then
    the others by name. (ASCII digits only: ``"²".isdigit()`` is true but ``int`` fails.)"""
    if exp_id.isascii() and exp_id.isdigit():
        return (0, int(exp_id), exp_id)
    return (1, 0, exp_id)


def check_device_name(device: object, source: str = "device") -> str:
    """``device`` if it is written like a torch device refine runs on: ``cpu``, ``mps``,
    ``cuda`` or ``cuda:N`` (N a decimal index, no sign); else InputError. Whether that
    device exists here is :func:`refine.models.check_device`'s question."""
    if isinstance(device, str):
        kind, sep, index = device.partition(":")
        if (kind in ("cpu", "mps", "cuda") and not sep) or (
            kind == "cuda" and index.isascii() and index.isdigit()
        ):
            return device
    raise InputError(
        f"{source}: {device!r} is not a device; use cpu, cuda, cuda:N (N = 0, 1, …) or mps"
    )


def frame_index(stem: str, source: str) -> int:
    """Integer value of a frame stem ("00012" → 12), as SAM2 orders a JPEG folder."""
    try:
        value = int(stem)
    except ValueError:
        raise InputError(
            f"{source}: frame name {stem!r} is not an integer; frames must be named "
            "like 00000.jpg, 00001.jpg, … (SAM2 orders them by integer value)"
        ) from None
    if value < 0:
        raise InputError(f"{source}: frame name {stem!r} is negative")
    return value


def sort_frame_stems(stems: Iterable[str], source: str) -> list[str]:
    """Stems ordered by integer value; duplicates of the same integer are an error."""
    stems = list(stems)
    for s in stems:
        check_name(s, "frame", source)
    keyed = sorted(stems, key=lambda s: frame_index(s, source))
    values = [frame_index(s, source) for s in keyed]
    for a, b, sa, sb in zip(values, values[1:], keyed, keyed[1:], strict=False):
        if a == b:
            raise InputError(f"{source}: frames {sa!r} and {sb!r} have the same index {a}")
    return keyed


def list_frame_files(video_dir: str) -> list[str]:
    """File names of the JPEG frames in ``video_dir``, in SAM2's (integer) order.

    Each must be a regular file: a FIFO named like a frame would block the reader forever.
    """
    from refine.files import check_regular_file

    if not os.path.isdir(video_dir):
        raise InputError(f"{video_dir}: frame folder does not exist")
    files = {
        os.path.splitext(p)[0]: p
        for p in os.listdir(video_dir)
        if os.path.splitext(p)[1] in IMAGE_EXTENSIONS
    }
    if not files:
        raise InputError(f"{video_dir}: no JPEG frames (*.jpg) found")
    for name in files.values():
        check_regular_file(os.path.join(video_dir, name), "frame")
    return [files[s] for s in sort_frame_stems(files, video_dir)]
