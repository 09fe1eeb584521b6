"""Converter for the challenge code's pickled stage-1 files → the safe format.

``Annotations_intermediate/<video>.npz`` from the ReferDINO-Plus code holds
``video_path``, ``size`` and one pickled dict per exp_id (``scores``, ``boxes``,
``masks``). Loading a pickle runs code from the file, so this is the only place in
refine that unpickles, and only when the caller says the files are trusted.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from refine.errors import InputError
from refine.names import check_name, list_frame_files
from refine.stage1 import ExpressionStage1, VideoStage1, save_stage1_npz, validate_expression

REFUSAL = (
    "refusing to read {path}: the challenge code's intermediate files are Python pickles, and "
    "loading a pickle runs code from the file. Only if you trust where these files came from, "
    "pass --trust-pickle."
)


def convert_referdino_file(
    path: str, out_dir: str, trust_pickle: bool, frames_root: str | None = None
) -> str:
    """Convert one pickled ``<video>.npz``; returns the written safe-format path."""
    if not trust_pickle:
        raise InputError(REFUSAL.format(path=path))
    try:
        data = np.load(path, allow_pickle=True)  # trusted by the caller (--trust-pickle)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path}: not a readable npz file ({err})") from err
    with data:
        if "video_path" not in data.files or "size" not in data.files:
            raise InputError(f"{path}: no 'video_path'/'size' entries; not a challenge-code file")
        video_path = str(data["video_path"])
        video = check_name(video_path.rstrip("/").split("/")[-1], "video", path)
        size = np.asarray(data["size"]).astype(np.int64).reshape(-1)
        if size.shape != (2,):
            raise InputError(f"{path}: 'size' must be [H, W], got {size.tolist()}")
        frames_dir = os.path.join(frames_root, video) if frames_root else video_path
        names = [os.path.splitext(f)[0] for f in list_frame_files(frames_dir)]
        expressions = {}
        for key in data.files:
            if key in ("video_path", "size"):
                continue
            exp_id = check_name(key, "exp_id", path)
            meta = data[key].item()
            if not isinstance(meta, dict) or not {"scores", "boxes", "masks"} <= set(meta):
                raise InputError(f"{path}: entry {key!r} is not a dict with scores/boxes/masks")
            exp = ExpressionStage1(
                *(_as_numpy(meta[k]).astype(np.float32) for k in ("scores", "boxes")),
                masks=_as_numpy(meta["masks"]),
            )
            expressions[exp_id] = validate_expression(exp, len(names), exp_id, path)
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"{video}.npz")
    save_stage1_npz(out, VideoStage1((int(size[0]), int(size[1])), names, expressions))
    return out


def _as_numpy(x: object) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor inside the pickle
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float32)


def convert_referdino_dir(
    in_dir: str,
    out_dir: str,
    trust_pickle: bool,
    frames_root: str | None = None,
    on_file: Callable[[str], None] | None = None,
) -> list[str]:
    """Convert every ``*.npz`` in ``in_dir``; returns the written paths."""
    if not trust_pickle:
        raise InputError(REFUSAL.format(path=in_dir))
    if not os.path.isdir(in_dir):
        raise InputError(f"{in_dir}: input folder does not exist")
    files = sorted(f for f in os.listdir(in_dir) if f.endswith(".npz"))
    if not files:
        raise InputError(f"{in_dir}: no .npz files")
    written = []
    for f in files:
        written.append(convert_referdino_file(os.path.join(in_dir, f), out_dir, True, frames_root))
        if on_file is not None:
            on_file(f)
    return written
