"""Stage-1 results: the safe npz format and plain PNG masks.

Nothing here unpickles: npz files are opened with ``allow_pickle=False``; the
challenge code's pickled files are only read by ``refine.convert`` behind an
explicit trust flag.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from refine.errors import InputError
from refine.files import atomic_write, parse_json
from refine.limits import Reserve, format_bytes
from refine.names import check_name, exp_id_sort_key, frame_index

FORMAT = "refine-stage1/1"
_PARTS = ("scores", "boxes", "masks")
PICKLE_HINT = (
    "refine never unpickles stage-1 files; if this is the challenge code's "
    "Annotations_intermediate/<video>.npz and you trust it, convert it with "
    "`python -m refine convert-referdino --trust-pickle IN_DIR OUT_DIR`"
)


@dataclass(frozen=True)
class ExpressionStage1:
    """Stage-1 output for one expression.

    scores: [T, N] float in [0, 1]; boxes: [T, N, 4] normalized (cx, cy, w, h);
    masks: [T, N, h, w] float16/float32 logits (any h, w).
    """

    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    sentence: str | None = None

    @property
    def num_frames(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_queries(self) -> int:
        return int(self.scores.shape[1])


@dataclass(frozen=True)
class VideoStage1:
    """Stage-1 output for one video: H, W, T frame stems and expressions by exp_id."""

    video_size: tuple[int, int]
    frame_names: list[str]
    expressions: dict[str, ExpressionStage1] = field(default_factory=dict)


def validate_expression(
    exp: ExpressionStage1, num_frames: int, exp_id: str, source: str
) -> ExpressionStage1:
    """Check shapes, dtypes and values of one expression; returns it unchanged."""
    where = f"{source}: expression {exp_id!r}"
    for name in _PARTS:
        arr = getattr(exp, name)
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
            kind = getattr(arr, "dtype", type(arr))
            raise InputError(f"{where}: {name} must be a float array, got {kind}")
    s, b, m = exp.scores, exp.boxes, exp.masks
    if s.ndim != 2:
        raise InputError(f"{where}: scores must be [T, N], got shape {list(s.shape)}")
    t, n = s.shape
    if t != num_frames:
        raise InputError(
            f"{where}: scores cover {t} frames but the video has {num_frames} "
            "(T mismatch between stage-1 results and frames)"
        )
    if n == 0:
        raise InputError(f"{where}: scores have no queries (N = 0)")
    if b.shape != (t, n, 4):
        raise InputError(f"{where}: boxes must be [T, N, 4] = {[t, n, 4]}, got {list(b.shape)}")
    if m.ndim != 4 or m.shape[:2] != (t, n) or m.shape[2] == 0 or m.shape[3] == 0:
        raise InputError(
            f"{where}: masks must be [T, N, h, w] with T={t}, N={n}, got {list(m.shape)}"
        )
    for name in _PARTS:
        if not _all_finite(getattr(exp, name)):
            raise InputError(f"{where}: {name} contain NaN or inf values")
    if s.size and (s.min() < 0 or s.max() > 1):
        raise InputError(
            f"{where}: scores must be probabilities in [0, 1], found range "
            f"[{float(s.min()):g}, {float(s.max()):g}]"
        )
    return exp


_FINITE_CHUNK = 2**24  # elements checked at once: the check's bool temporary stays ≤ 16 MB


def _all_finite(arr: np.ndarray) -> bool:
    """``np.isfinite(arr).all()`` a frame block at a time (no temporary of arr's size)."""
    step = max(1, _FINITE_CHUNK // max(1, arr[:1].size))
    return all(np.isfinite(arr[s : s + step]).all() for s in range(0, len(arr), step))


def _check_member(data: np.lib.npyio.NpzFile, key: str, source: str) -> None:
    """InputError unless the member ``key`` is an ``.npy`` array whose header declares no
    more data than the member holds (checked before numpy allocates the array)."""
    name = f"{key}.npy"
    try:
        info = data.zip.getinfo(name)
        with data.zip.open(info) as f:
            npy = np.lib.format
            version = npy.read_magic(f)
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(f)
            header = f.tell()
    except KeyError:
        raise InputError(f"{source}: entry {key!r} is not an .npy array") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise InputError(f"{source}: entry {key!r} is not a valid array ({err})") from err
    if dtype.hasobject:
        raise InputError(f"{source}: entry {key!r} holds Python objects; {PICKLE_HINT}")
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size - header:
        raise InputError(
            f"{source}: entry {key!r} declares {list(shape)} {dtype} ({declared} bytes) but "
            f"holds {info.file_size - header} bytes of data; the file is corrupt or crafted"
        )


def _read_array(data: np.lib.npyio.NpzFile, key: str, source: str) -> np.ndarray:
    _check_member(data, key, source)
    try:
        arr = data[key]
    except ValueError as err:
        if "allow_pickle" in str(err):  # an object array: loading it would unpickle
            raise InputError(
                f"{source}: entry {key!r} holds Python objects; {PICKLE_HINT}"
            ) from err
        raise InputError(f"{source}: entry {key!r} is not a valid array ({err})") from err
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise InputError(f"{source}: entry {key!r} is unreadable ({err})") from err
    return arr


def _scalar_str(arr: np.ndarray, key: str, source: str) -> str:
    if arr.dtype.kind != "U" or arr.ndim != 0:
        raise InputError(f"{source}: {key!r} must be a string, got {arr.dtype} {list(arr.shape)}")
    return str(arr)


def _check_ratios(infos: list[zipfile.ZipInfo], max_ratio: float, path: str) -> None:
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 2**20 and ratio > max_ratio:
            raise InputError(
                f"{path}: member {info.filename!r} expands {ratio:.0f}x (limit {max_ratio:.0f}x);"
                " this looks like an npz bomb"
            )


def load_stage1_npz(
    path: str,
    max_bytes: int | None = None,
    lazy: bool = False,
    max_ratio: float | None = None,
    reserve: Reserve | None = None,
) -> VideoStage1:
    """Load ``<video>.npz`` in the safe format (design §3), validating everything.

    ``max_bytes`` bounds the total uncompressed size, checked from the archive's
    directory before any array is read (a small file can unpack to gigabytes);
    ``max_ratio`` bounds the compression ratio of each member over 1 MiB (npz bombs);
    ``reserve(nbytes, what)`` is told the uncompressed total before any array is read.
    ``lazy``: each expression's masks, once validated, are let go and read again from
    the file when indexed (:class:`~refine.npz_member.NpzMember`), so that memory holds
    one expression's masks at a time.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: stage-1 file does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"{path}: not a readable npz file ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: expected an .npz archive, found a single array")
    with data:
        total = sum(info.file_size for info in data.zip.infolist())  # unpacked, from the directory
        if max_bytes is not None and total > max_bytes:
            raise InputError(
                f"{path}: unpacks to {format_bytes(total)}, over the limit of "
                f"{format_bytes(max_bytes)}"
            )
        if max_ratio is not None:
            _check_ratios(data.zip.infolist(), max_ratio, path)
        if reserve is not None:
            reserve(total, f"the stage-1 results {os.path.basename(path)}")
        raw = [n for n in data.zip.namelist() if not n.endswith(".npy")]
        if raw:
            raise InputError(
                f"{path}: entries {raw[:5]} are not .npy arrays; every entry of a stage-1 npz "
                "is an array saved by numpy (numpy.savez)"
            )
        keys = set(data.files)
        if "format" not in keys:
            if "video_path" in keys or "size" in keys:
                raise InputError(f"{path}: not in the safe stage-1 format; {PICKLE_HINT}")
            raise InputError(f"{path}: no 'format' entry; expected format {FORMAT!r}")
        fmt = _scalar_str(_read_array(data, "format", path), "format", path)
        if fmt != FORMAT:
            raise InputError(f"{path}: format is {fmt!r}, expected {FORMAT!r}")
        size = _read_array(data, "video_size", path) if "video_size" in keys else None
        if size is None or size.dtype.kind not in "iu" or size.shape != (2,) or (size <= 0).any():
            raise InputError(f"{path}: 'video_size' must be two positive integers [H, W]")
        names = _read_array(data, "frame_names", path) if "frame_names" in keys else None
        if names is None or names.dtype.kind != "U" or names.ndim != 1 or names.size == 0:
            raise InputError(f"{path}: 'frame_names' must be a non-empty string array [T]")
        frame_names = [check_name(str(n), "frame", path) for n in names]
        order = [frame_index(n, path) for n in frame_names]
        if any(a >= b for a, b in itertools.pairwise(order)):
            raise InputError(
                f"{path}: 'frame_names' are not in increasing integer order "
                f"(e.g. {frame_names[:5]}); SAM2 orders frames by integer stem"
            )
        sentences: dict[str, str] = {}
        if "expressions" in keys:
            raw = _scalar_str(_read_array(data, "expressions", path), "expressions", path)
            sentences = parse_json(raw, path, "'expressions' entry")
            if not isinstance(sentences, dict) or not all(
                isinstance(v, str) for v in sentences.values()
            ):
                raise InputError(f"{path}: 'expressions' must be a JSON object of strings")
        exp_ids: dict[str, set[str]] = {}
        for key in keys - {"format", "video_size", "frame_names", "expressions"}:
            exp_id, sep, part = key.rpartition("/")
            if not sep or part not in _PARTS:
                raise InputError(
                    f"{path}: unexpected entry {key!r}; expected '<exp_id>/scores', "
                    "'<exp_id>/boxes' or '<exp_id>/masks'"
                )
            exp_ids.setdefault(check_name(exp_id, "exp_id", path), set()).add(part)
        expressions = {}
        for exp_id in sorted(exp_ids, key=exp_id_sort_key):
            missing = set(_PARTS) - exp_ids[exp_id]
            if missing:
                raise InputError(f"{path}: expression {exp_id!r} lacks {sorted(missing)}")
            arrays = {p: _read_array(data, f"{exp_id}/{p}", path) for p in _PARTS}
            exp = ExpressionStage1(sentence=sentences.get(exp_id), **arrays)
            expressions[exp_id] = validate_expression(exp, len(frame_names), exp_id, path)
            if lazy:
                from refine.npz_member import NpzMember

                m = NpzMember(path, f"{exp_id}/masks", exp.masks.shape, exp.masks.dtype)
                expressions[exp_id] = replace(exp, masks=m)
    return VideoStage1((int(size[0]), int(size[1])), frame_names, expressions)


def save_stage1_npz(path: str, stage1: VideoStage1) -> None:
    """Write ``stage1`` in the safe format, atomically (temp file + rename)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "video_size": np.array(stage1.video_size, dtype=np.int64),
        "frame_names": np.array(stage1.frame_names, dtype=str),
    }
    sentences = {k: e.sentence for k, e in stage1.expressions.items() if e.sentence is not None}
    if sentences:
        arrays["expressions"] = np.array(json.dumps(sentences))
    for exp_id, exp in stage1.expressions.items():
        check_name(exp_id, "exp_id", path)
        for part in _PARTS:
            arrays[f"{exp_id}/{part}"] = np.asarray(getattr(exp, part))
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def stage1_from_binary_masks(
    masks: Mapping[str, np.ndarray], frame_names: Sequence[str], sentences: Mapping[str, str]
) -> VideoStage1:
    """Stage-1 results from plain per-frame masks of any RVOS model.

    masks: {exp_id: [T, H, W] bool}. Each expression becomes one query with score 1
    on frames where its mask is non-empty (0 elsewhere), the mask's bounding box,
    and logits +1 inside / -1 outside (so upsampling at the same size gives the mask back).
    """
    expressions = {}
    size: tuple[int, int] | None = None
    for exp_id, m in masks.items():
        m = np.asarray(m, dtype=bool)
        t, h, w = m.shape
        size = size or (h, w)
        present = m.reshape(t, -1).any(1)
        rows, cols = m.any(2), m.any(1)
        boxes = np.zeros((t, 1, 4), np.float32)
        for i in np.flatnonzero(present):
            r = np.flatnonzero(rows[i])
            c = np.flatnonzero(cols[i])
            x1, x2, y1, y2 = c[0], c[-1] + 1, r[0], r[-1] + 1
            boxes[i, 0] = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
        logits = np.where(m, np.float16(1), np.float16(-1))[:, None]
        expressions[exp_id] = ExpressionStage1(
            scores=present.astype(np.float32)[:, None],
            boxes=boxes,
            masks=logits,
            sentence=sentences.get(exp_id),
        )
    if size is None:
        raise InputError("no expressions in the PNG stage-1 results")
    return VideoStage1(size, list(frame_names), expressions)


def load_stage1_png_dir(
    directory: str,
    frame_names: Sequence[str],
    video_size: tuple[int, int],
    sentences: Mapping[str, str] | None = None,
    reserve: Reserve | None = None,
) -> VideoStage1:
    """Load ``<directory>/<exp_id>/<frame>.png`` masks (non-zero = object) for one video.
    ``reserve(nbytes, what)`` is told, before any mask is read, 3 bytes a pixel: the bool
    masks and the float16 logits made from them."""
    from refine.mask_io import read_mask_png

    if not os.path.isdir(directory):
        raise InputError(f"{directory}: stage-1 mask folder does not exist")
    exp_ids = sorted(
        (d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))),
        key=exp_id_sort_key,
    )
    if not exp_ids:
        raise InputError(f"{directory}: no <exp_id>/ folders of PNG masks")
    if reserve is not None:
        pixels = len(exp_ids) * len(frame_names) * video_size[0] * video_size[1]
        reserve(3 * pixels, f"the stage-1 masks in {os.path.basename(directory)}")
    masks = {}
    for exp_id in exp_ids:
        check_name(exp_id, "exp_id", directory)
        exp_dir = os.path.join(directory, exp_id)
        stack = np.zeros((len(frame_names), *video_size), dtype=bool)
        for t, name in enumerate(frame_names):
            stack[t] = read_mask_png(os.path.join(exp_dir, f"{name}.png"), video_size)
        masks[exp_id] = stack
    return stage1_from_binary_masks(masks, frame_names, sentences or {})


def load_video_stage1(
    stage1_dir: str,
    video: str,
    frame_names: Sequence[str],
    video_size: tuple[int, int],
    sentences: Mapping[str, str] | None = None,
    lazy: bool = False,
    reserve: Reserve | None = None,
) -> tuple[str, VideoStage1]:
    """A video's stage-1 results: ``<stage1_dir>/<video>.npz`` (safe format) or, failing
    that, PNG masks ``<stage1_dir>/<video>/<exp_id>/<frame>.png``. Returns (source path,
    results); ``lazy`` as in :func:`load_stage1_npz`, ``reserve`` as in it and in
    :func:`load_stage1_png_dir`."""
    check_name(video, "video", stage1_dir)
    npz = os.path.join(stage1_dir, f"{video}.npz")
    png_dir = os.path.join(stage1_dir, video)
    if os.path.isfile(npz):
        return npz, load_stage1_npz(npz, lazy=lazy, reserve=reserve)
    if os.path.isdir(png_dir):
        return png_dir, load_stage1_png_dir(png_dir, frame_names, video_size, sentences, reserve)
    raise InputError(
        f"{npz}: no stage-1 results for video {video!r} (nor a folder {png_dir}); check the "
        "stage-1 folder (--stage1 for the CLI, --stage1-dir for the app)"
    )
