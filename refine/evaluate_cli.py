"""``python -m refine evaluate``: J, F and J&F of predicted masks, as MeViS scores them.

Ground truth comes from the labelled split's ``mask_dict.json`` under ``--data``
(the official way; see :mod:`refine.ground_truth`) or from PNG folders
``--gt <gt>/<video>/<exp_id>/<frame>.png``. The expressions evaluated are all
those of ``<data>/meta_expressions.json`` (with ``--gt``: of the videos that have
a folder there). Predictions are read from ``<pred>/<video>/<exp_id>/<frame>.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from refine.errors import InputError
from refine.ground_truth import (
    Expression,
    check_predictions_complete,
    expression_gt_from_mask_dict,
    expression_gt_from_pngs,
    find_missing_pngs,
    gt_shape,
    list_gt_videos,
    load_expressions,
    load_mask_dict,
    read_predictions,
    rles_for_expression,
)
from refine.mask_io import read_mask_png
from refine.metrics import ExpressionScore, evaluate_expression, summarize
from refine.rle import RLE

__all__ = ["add_arguments", "run_evaluate"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``evaluate`` subcommand's arguments (read by :func:`run_evaluate`)."""
    p.add_argument(
        "--data",
        required=True,
        metavar="ROOT",
        help="data set root holding meta_expressions.json (and mask_dict.json)",
    )
    p.add_argument(
        "--pred", required=True, metavar="DIR", help="predictions: DIR/<video>/<exp_id>/<frame>.png"
    )
    p.add_argument(
        "--gt",
        metavar="DIR",
        help="PNG ground truth DIR/<video>/<exp_id>/<frame>.png instead of ROOT/mask_dict.json",
    )
    p.add_argument("--json", metavar="FILE", help="write the scores (percent) to FILE")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="processes to evaluate with (default 1)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="count missing predicted frames/expressions as empty masks",
    )


@dataclass(frozen=True)
class _Task:
    """One expression's work. Exactly one of ``rles`` / ``gt_dir`` is set."""

    expr: Expression
    pred_dir: str
    allow_missing: bool
    rles: list[list[RLE | None]] | None = None
    gt_dir: str | None = None


def _first_prediction_shape(folder: str, frames: Sequence[str]) -> tuple[int, int] | None:
    for frame in frames:
        path = os.path.join(folder, f"{frame}.png")
        if os.path.isfile(path):
            return read_mask_png(path).shape
    return None


def _evaluate_task(task: _Task) -> ExpressionScore:
    """Load one expression's ground truth and prediction and score it."""
    expr = task.expr
    folder = os.path.join(task.pred_dir, expr.video, expr.exp_id)
    if task.rles is not None:
        # The official code sizes the ground truth by the first prediction; every RLE
        # must declare that size (checked before decoding: sizes are untrusted). With
        # no prediction at all, the first RLE's size, bounded.
        shape = _first_prediction_shape(folder, expr.frames) or gt_shape(task.rles, expr.key)
        gt = expression_gt_from_mask_dict(task.rles, expr.key, shape)
    else:
        gt = expression_gt_from_pngs(task.gt_dir, expr)
    pred = read_predictions(folder, expr.frames, gt.shape[1:], task.allow_missing)
    return evaluate_expression(gt, pred)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def _run_tasks(tasks: Sequence[_Task], workers: int) -> Iterator[ExpressionScore]:
    """Scores in the order of ``tasks``, with a progress bar on stderr."""
    bar = dict(total=len(tasks), file=sys.stderr, unit="expr", disable=None, desc="evaluate")
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from tqdm(map(_evaluate_task, tasks), **bar)
        return
    chunk = max(1, min(8, len(tasks) // (workers * 4)))
    # spawn, not fork: a forked child inherits OpenCV's thread-pool locks in whatever
    # state the parent's threads left them, and can hang on its first cv2 call.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        try:
            yield from tqdm(pool.map(_evaluate_task, tasks, chunksize=chunk), **bar)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a bad file: don't finish the rest first
            raise


def _build_tasks(args: argparse.Namespace) -> list[_Task]:
    meta_path = os.path.join(args.data, "meta_expressions.json")
    expressions = load_expressions(meta_path)
    if args.gt is not None:
        gt_videos = list_gt_videos(args.gt)
        known = {e.video for e in expressions}
        unknown = [v for v in gt_videos if v not in known]
        if unknown:
            raise InputError(
                f"{args.gt}: video folder(s) {', '.join(unknown[:5])} "
                f"({len(unknown)} in all) are not in {meta_path}; "
                "--data and --gt must be the same split"
            )
        present = set(gt_videos)
        expressions = [e for e in expressions if e.video in present]
        if not expressions:
            raise InputError(f"{args.gt}: no video folders of {meta_path} found there")
        return [_Task(e, args.pred, args.allow_missing, gt_dir=args.gt) for e in expressions]
    mask_path = os.path.join(args.data, "mask_dict.json")
    if not os.path.exists(mask_path):
        raise InputError(
            f"{mask_path} not found: this split has no labels; "
            "evaluate a labelled split (e.g. valid_u) or pass --gt DIR with PNG ground truth"
        )
    mask_dict = load_mask_dict(mask_path)
    unscored = [e.key for e in expressions if not e.scored]
    if unscored:
        print(
            f"warning: {len(unscored)} expression(s) without 'anno_id' are not scored "
            f"(as in the official evaluation): {', '.join(unscored[:5])}",
            file=sys.stderr,
        )
    expressions = [e for e in expressions if e.scored]
    if not expressions:
        raise InputError(f"{meta_path}: lists no expressions with 'anno_id' to evaluate")
    return [
        _Task(e, args.pred, args.allow_missing, rles=rles_for_expression(mask_dict, e, mask_path))
        for e in expressions
    ]


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate ``args.pred``; print J, F, J&F (percent) and optionally write JSON.

    ``args`` has ``data``, ``pred``, ``gt`` (or None), ``json`` (or None),
    ``workers`` and ``allow_missing``, as :func:`add_arguments` defines them.

    Returns:
        0 on success.

    Raises:
        InputError: bad paths, missing or malformed files, missing predictions
            (without ``allow_missing``), size mismatches.
    """
    if not os.path.isdir(args.pred):
        raise InputError(f"{args.pred}: prediction folder does not exist")
    tasks = _build_tasks(args)
    if args.allow_missing:
        missing = find_missing_pngs(args.pred, [t.expr for t in tasks])
        if missing:
            print(
                f"warning: {len(missing)} missing prediction file(s)/folder(s) "
                "counted as empty masks",
                file=sys.stderr,
            )
    else:
        check_predictions_complete(args.pred, [t.expr for t in tasks])

    keys = [t.expr.key for t in tasks]
    scores = dict(zip(keys, _run_tasks(tasks, args.workers), strict=True))
    result = summarize(scores)

    n_videos = len({t.expr.video for t in tasks})
    print(f"{len(scores)} expressions in {n_videos} videos")
    for name in ("J&F", "J", "F"):
        print(f"{name}: {result[name]:.2f}")
    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        try:
            os.makedirs(parent, exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=1)
                fh.write("\n")
        except OSError as exc:
            raise InputError(f"{args.json}: cannot write the scores ({exc})") from None
    return 0
