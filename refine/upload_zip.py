"""Reading uploaded zips in memory, never extracting them: entry names, links, counts,
sizes and compression ratios are checked before any entry is read (bounds of one
:class:`~refine.limits.UploadLimits`); every problem is an InputError naming the zip."""

from __future__ import annotations

import logging
import os
import stat
import zipfile
import zlib
from pathlib import PurePosixPath

from refine.errors import InputError
from refine.limits import DEFAULT_LIMITS, UploadLimits, format_bytes
from refine.names import check_name

log = logging.getLogger(__name__)

_RATIO_MIN_BYTES = 2**20  # entries smaller than this are not ratio-checked
_JUNK_PREFIXES = ("__MACOSX", ".")


def check_zip_member_name(filename: str, source: str) -> PurePosixPath:
    """The entry's path if it is a safe relative path, else InputError.

    Rejects absolute paths (``/x``, ``C:x``), backslashes, NUL and ``..`` components:
    names that could point outside an extraction folder (zip-slip).
    """
    bad = (
        not filename
        or "\x00" in filename
        or "\\" in filename
        or filename.startswith("/")
        or (len(filename) > 1 and filename[1] == ":")
    )
    parts = PurePosixPath(filename).parts
    if bad or any(p in ("..", ".") for p in parts):
        raise InputError(
            f"{source}: zip entry {filename!r} is not a safe relative path (absolute, '..', "
            "backslash or NUL); re-create the zip from the folder itself"
        )
    return PurePosixPath(*parts)


def open_zip(path: str, limits: UploadLimits) -> zipfile.ZipFile:
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise InputError(f"{name}: zip file does not exist")
    limits.check_file_size(path, "zip")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise InputError(f"{name}: not a readable zip file ({err})") from err


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def checked_entries(
    zf: zipfile.ZipFile, limits: UploadLimits, source: str
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """All file entries, after checking names, links, count, sizes and ratios."""
    infos = zf.infolist()
    if len(infos) > limits.max_zip_entries:
        raise InputError(
            f"{source}: the zip has {len(infos)} entries; at most {limits.max_zip_entries} allowed"
        )
    total = 0
    out = []
    for info in infos:
        p = check_zip_member_name(info.filename, source)
        if _is_symlink(info):
            raise InputError(
                f"{source}: zip entry {info.filename!r} is a symbolic link; links are not "
                "accepted, zip the files themselves"
            )
        if info.is_dir():
            continue
        total += info.file_size
        if total > limits.max_unpacked_bytes:
            raise InputError(
                f"{source}: the zip holds more than {format_bytes(limits.max_unpacked_bytes)} "
                "uncompressed; upload a smaller clip"
            )
        if info.file_size > _RATIO_MIN_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_zip_ratio:
                raise InputError(
                    f"{source}: zip entry {info.filename!r} expands {ratio:.0f}x (limit "
                    f"{limits.max_zip_ratio:.0f}x); this looks like a zip bomb"
                )
        out.append((info, p))
    return out


def image_entries(
    zf: zipfile.ZipFile, limits: UploadLimits, source: str, extensions: tuple[str, ...]
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Checked entries with an image extension; junk (``__MACOSX/``, dotfiles) and other
    files are left out (logged)."""
    used, ignored = [], []
    for info, p in checked_entries(zf, limits, source):
        if any(part.startswith(_JUNK_PREFIXES) for part in p.parts):
            continue
        if p.suffix.lower() in extensions:
            check_name(p.stem, "frame", source)
            used.append((info, p))
        else:
            ignored.append(info.filename)
    if ignored:
        log.info("%s: ignoring %d non-image entries, e.g. %s", source, len(ignored), ignored[:3])
    if not used:
        raise InputError(
            f"{source}: no {'/'.join(e.lstrip('.') for e in extensions)} files in the zip"
        )
    return used


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        RuntimeError,
        NotImplementedError,
    ) as err:
        raise InputError(f"{source}: zip entry {info.filename!r} is unreadable ({err})") from err
    if len(data) > info.file_size:
        raise InputError(f"{source}: zip entry {info.filename!r} is larger than it declares")
    return data


def read_zip_file_named(
    path: str, filename: str, max_bytes: int, limits: UploadLimits = DEFAULT_LIMITS
) -> bytes | None:
    """The bytes of the zip entry ``filename`` at the zip's top or inside its one top folder
    (e.g. ``meta_expressions.json`` beside ``<exp_id>/`` folders), or None without one; at
    most ``max_bytes`` (declared and read)."""
    name = os.path.basename(path)
    with open_zip(path, limits) as zf:
        found = [
            info
            for info, p in checked_entries(zf, limits, name)
            if p.name == filename and len(p.parts) <= 2
        ]
        if not found:
            return None
        if len(found) > 1:
            raise InputError(
                f"{name}: {len(found)} entries named {filename}; keep one at the zip's top"
            )
        if found[0].file_size > max_bytes:
            raise InputError(
                f"{name}: {found[0].filename!r} is {format_bytes(found[0].file_size)}, over "
                f"the limit of {format_bytes(max_bytes)}"
            )
        return read_entry(zf, found[0], name)
