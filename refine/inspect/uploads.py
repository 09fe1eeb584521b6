"""A case from uploaded files: a video (file or zip of frames), stage-1 results (safe npz or
zip of PNG masks), optional ground truth and optional ``meta_expressions.json`` sentences.
Every file is checked against :class:`~refine.limits.UploadLimits` before it is read."""

from __future__ import annotations

import os
import re
import uuid

from refine.dataset import parse_meta_expressions
from refine.errors import InputError
from refine.files import parse_json
from refine.inspect.budget import Charge
from refine.inspect.cases import Case
from refine.limits import DEFAULT_LIMITS, UploadLimits
from refine.names import check_name
from refine.overlay import DEFAULT_FPS
from refine.pipeline import check_video_matches
from refine.stage1 import VideoStage1, load_stage1_npz, stage1_from_binary_masks

META_NAME = "meta_expressions.json"
MAX_META_BYTES = 8 * 2**20


def upload_video_name(path: str) -> str:
    """A plain file name for an uploaded file's video: its stem with characters other
    than letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip(".") or "video"
    return check_name(name, "video", path)


def case_from_upload(
    video_path: str,
    stage1_path: str,
    gt_path: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
    meta_path: str | None = None,
    charge: Charge | None = None,
) -> Case:
    """A case from uploaded files.

    video_path: a video file (mp4, webm, mov, …) or a zip of JPEG/PNG frames;
    stage1_path: a safe stage-1 ``.npz`` or a zip of PNG masks ``<exp_id>/<frame>.png``
    (optionally with a ``meta_expressions.json`` beside the folders);
    gt_path: optional zip of ground-truth PNG masks ``<exp_id>/<frame>.png``;
    meta_path: optional ``meta_expressions.json`` (MeViS layout) giving the sentences.
    A video file's frames take the stage-1 frame names (the counts must agree); a zip's
    frame names must equal them. Every file is checked against ``limits`` before it is
    read (sizes of all first); the npz is never unpickled. ``charge`` is told what each
    part will hold before it is read (the caller settles it to what the case holds).
    """
    from refine.video_io import is_zip_path, read_masks_zip, read_video

    vname = os.path.basename(video_path)
    sname = os.path.basename(stage1_path)
    ext = os.path.splitext(stage1_path)[1].lower()
    if ext != ".npz" and not is_zip_path(stage1_path):
        raise InputError(
            f"{sname}: stage-1 results must be a .npz (safe format) or a .zip of PNG masks "
            f"<exp_id>/<frame>.png, got {ext or 'no extension'!r}"
        )
    uploads = {
        "video": video_path,
        "stage-1 results": stage1_path,
        "ground truth": gt_path,
        META_NAME: meta_path,
    }
    for what, path in uploads.items():
        if path:
            limits.check_file_size(path, what)
    video_name = upload_video_name(video_path)
    sentences = _uploaded_sentences(meta_path, stage1_path if ext != ".npz" else None, video_name)
    reserve = charge.grow if charge is not None else None
    video = read_video(video_path, limits, reserve)
    frames = video.frames
    t, h, w = len(frames), frames.height, frames.width
    if ext == ".npz":
        stage1 = load_stage1_npz(
            stage1_path,
            max_bytes=limits.max_unpacked_bytes,
            max_ratio=limits.max_zip_ratio,
            reserve=reserve,
        )
        for exp_id, exp in stage1.expressions.items():
            limits.check_stage1_work(exp_id, t, exp.scores.shape[1], (h, w), sname)
    else:  # bool masks, then float16 logits beside them: 3 bytes a pixel
        masks = read_masks_zip(stage1_path, limits, "stage-1 masks", reserve, bytes_per_pixel=3)
        _check_mask_size(masks.masks, (h, w), sname, vname)
        stage1 = stage1_from_binary_masks(masks.masks, masks.frame_names, {})
        del masks
    names = video.frame_names
    if video.fps is not None:  # a video file: its frames have no names of their own
        if len(stage1.frame_names) != t:
            raise InputError(
                f"{sname}: stage-1 results cover {len(stage1.frame_names)} frames but {vname} "
                f"has {t}; upload the results made from this video"
            )
        names = list(stage1.frame_names)
    check_video_matches(stage1, names, frames, sname)
    gt = _uploaded_gt(gt_path, stage1, names, (h, w), vname, limits, reserve) if gt_path else {}
    own = {k: e.sentence for k, e in stage1.expressions.items() if e.sentence}
    return Case(
        key=f"upload:{uuid.uuid4().hex}",
        video=video_name,
        frames=frames,
        frame_names=names,
        stage1=stage1,
        sentences={**own, **{k: s for k, s in sentences.items() if s}},
        fps=video.fps or DEFAULT_FPS,
        gt=gt.get if gt_path else None,
        source="upload",
        charge=charge,
        _gt_cache={e: gt.get(e) for e in stage1.expressions} if gt_path else {},
    )


def _uploaded_gt(gt_path, stage1: VideoStage1, names, size, vname, limits, reserve) -> dict:
    """{exp_id: bool [T, H, W]} of the ground-truth zip, checked against the stage 1."""
    from refine.video_io import read_masks_zip

    gt_set = read_masks_zip(gt_path, limits, "ground-truth masks", reserve)
    gname = os.path.basename(gt_path)
    _check_mask_size(gt_set.masks, size, gname, vname)
    if gt_set.frame_names != names:
        raise InputError(
            f"{gname}: ground truth covers frames {gt_set.frame_names[:3]}… "
            f"({len(gt_set.frame_names)}), the video has {names[:3]}… ({len(names)})"
        )
    unknown = sorted(set(gt_set.masks) - set(stage1.expressions))
    if unknown:
        raise InputError(
            f"{gname}: ground truth for expressions {unknown} that have no stage-1 results"
        )
    return gt_set.masks


def _uploaded_sentences(meta_path: str | None, stage1_zip: str | None, video: str) -> dict:
    """{exp_id: sentence} from the uploaded meta_expressions.json, else from one inside the
    stage-1 zip, else {}."""
    if meta_path:
        where = os.path.basename(meta_path)
        with open(meta_path, "rb") as f:
            data = f.read(MAX_META_BYTES + 1)
        if len(data) > MAX_META_BYTES:
            raise InputError(f"{where}: over {MAX_META_BYTES // 2**20} MiB; is it the right file?")
    elif stage1_zip:
        from refine.upload_zip import read_zip_file_named

        where = f"{os.path.basename(stage1_zip)}/{META_NAME}"
        data = read_zip_file_named(stage1_zip, META_NAME, MAX_META_BYTES)
        if data is None:
            return {}
    else:
        return {}
    meta = parse_meta_expressions(parse_json(data, where, META_NAME), where)
    videos = {v: {e: m.sentence for e, m in vm.expressions.items()} for v, vm in meta.items()}
    if len(videos) == 1:
        return next(iter(videos.values()))
    if video in videos:
        return videos[video]
    raise InputError(
        f"{where}: describes videos {sorted(videos)[:5]}, none of them {video!r}; keep only "
        "this video's entry, or name the video file after it"
    )


def _check_mask_size(masks: dict, size: tuple[int, int], source: str, video: str) -> None:
    for exp_id, m in masks.items():
        if m.shape[1:] != size:
            raise InputError(
                f"{source}: masks of expression {exp_id!r} are {m.shape[2]}x{m.shape[1]} but "
                f"{video} is {size[1]}x{size[0]}; masks must have the video's size"
            )
