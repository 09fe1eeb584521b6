"""``python -m refine``: run, evaluate, convert-referdino, zip, bench."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from refine import __version__
from refine.errors import InputError
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE
from refine.memory import add_memory_arguments, memory_config
from refine.models import MODEL_SIZES, RANDOM_WEIGHTS_WARNING, ModelSpec
from refine.names import check_device_name
from refine.pipeline import RefineParams
from refine.prompts import PROMPT_KINDS
from refine.propagation import DEFAULT_CACHE_MB, PRECISIONS, SCHEDULES
from refine.selection import DEFAULT_THRESHOLD


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="ROOT", help="MeViS-layout root")
    p.add_argument("--stage1", required=True, metavar="DIR", help="folder of <video>.npz")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--videos", nargs="+", metavar="V", help="only these videos")
    p.add_argument("--model", default="large", choices=list(MODEL_SIZES), help="SAM2.1 size")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--checkpoint", metavar="PATH", help="SAM2.1 checkpoint (.pt)")
    w.add_argument(
        "--random-weights",
        action="store_true",
        help="untrained SAM2 (tests only: masks are meaningless)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights and points")
    p.add_argument("--image-size", type=int, metavar="N", help="SAM2 input size (multiple of 32)")
    p.add_argument(
        "--fill-holes",
        type=int,
        default=0,
        metavar="PX",
        help="fill background holes of at most PX pixels in SAM2's masks, as sam2 with its "
        "CUDA extension did in the challenge (8); default 0: off",
    )
    d = p.add_mutually_exclusive_group()
    d.add_argument("--device", default=None, help="cpu, cuda:N or mps (default: cuda:0 if present)")
    d.add_argument("--gpus", "--gids", nargs="+", type=int, metavar="ID", help="one worker per GPU")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: one per device)",
    )
    p.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="auto: fp16 on CUDA, else fp32"
    )
    p.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="query score threshold θ"
    )
    p.add_argument(
        "--area-ratio",
        default=str(DEFAULT_AREA_RATIO),
        help="fusion area ratio ρ (e.g. 2/3 or 0.6)",
    )
    p.add_argument("--vote", default=str(DEFAULT_VOTE), help="fusion vote v")
    p.add_argument("--prompt", default=RefineParams.prompt, choices=PROMPT_KINDS)
    p.add_argument("--resume", action="store_true", help="skip expressions already complete")
    p.add_argument(
        "--resume-any",
        action="store_true",
        help="like --resume, also keeping outputs made with other settings (precision, model, …)",
    )
    p.add_argument(
        "--eval",
        action="store_true",
        help="score stage-1, SAM2 and fused masks against the data set's mask_dict.json",
    )
    p.add_argument(
        "--cache-mb", type=float, default=DEFAULT_CACHE_MB, help="frame-feature cache bound in MB"
    )
    p.add_argument(
        "--offload-cache", action="store_true", help="keep cached features in CPU memory"
    )
    p.add_argument(
        "--schedule",
        default="lockstep",
        choices=SCHEDULES,
        help="lockstep: all expressions of a video share one sweep (default); sequential: one by one",
    )
    add_memory_arguments(p)


def _devices(args) -> list[str]:
    if args.gpus:
        devices = [f"cuda:{g}" for g in args.gpus]
    elif args.device:
        devices = [args.device]
    else:
        import torch

        devices = ["cuda:0" if torch.cuda.is_available() else "cpu"]
    if args.workers is not None:
        if args.workers < 1:
            raise InputError(f"--workers must be ≥ 1, got {args.workers}")
        devices = [devices[i % len(devices)] for i in range(args.workers)]
    return [check_device_name(d, "--device/--gpus") for d in devices]


def cmd_run(args) -> int:
    from refine.batch import BatchConfig, run_batch
    from refine.fusion import as_fraction

    devices = _devices(args)
    try:
        params = RefineParams(
            threshold=args.threshold,
            area_ratio=as_fraction(args.area_ratio, "--area-ratio"),
            vote=as_fraction(args.vote, "--vote"),
            prompt=args.prompt,
            points_seed=args.seed,
        )
    except ValueError as err:
        raise InputError(str(err)) from err
    spec = ModelSpec(
        size=args.model,
        device=devices[0],
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        seed=args.seed,
        image_size=args.image_size,
        fill_holes=args.fill_holes,
    )
    if spec.random_weights:
        print(f"\n{'!' * 80}\n{RANDOM_WEIGHTS_WARNING}\n{'!' * 80}\n", file=sys.stderr)
    cfg = BatchConfig(
        args.data,
        args.stage1,
        args.out,
        spec,
        params,
        precision=args.precision,
        resume=args.resume or args.resume_any,
        resume_any=args.resume_any,
        cache_mb=args.cache_mb,
        offload_cache=args.offload_cache,
        schedule=args.schedule,
        evaluate=args.eval,
        memory=memory_config(args),
    )
    reports = run_batch(cfg, args.videos, devices)
    if args.eval:
        _print_eval(cfg, [r.video for r in reports if not r.error])
    written = sum(len(r.written) for r in reports)
    skipped = sum(len(r.skipped) for r in reports)
    errors = [r for r in reports if r.error]
    print(
        f"wrote {written} expressions, skipped {skipped} already complete, to {args.out}",
        file=sys.stderr,
    )
    for r in errors:
        print(f"error: {r.error}", file=sys.stderr)
    if spec.random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    return 1 if errors else 0


def _print_eval(cfg, videos: list[str]) -> None:
    import json
    import os

    from refine.batch import MARKER_DIR, summarize_scores
    from refine.out_tree import write_text_in_tree

    summary = summarize_scores(cfg.out, videos)
    if not summary:
        return
    print(f"{'stage':<8}{'J':>8}{'F':>8}{'J&F':>8}")
    for stage in ("stage1", "sam2", "fused"):
        s = summary[stage]
        print(f"{stage:<8}{s['J']:>8.2f}{s['F']:>8.2f}{s['J&F']:>8.2f}")
    path = os.path.join(cfg.out, MARKER_DIR, "eval.json")
    write_text_in_tree(cfg.out, path, json.dumps(summary, indent=1))
    print(f"per-expression scores: {path}", file=sys.stderr)


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("in_dir", metavar="IN_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="I trust these files: loading them runs code from them (pickle)",
    )
    p.add_argument("--frames-root", metavar="DIR", help="JPEGImages folder holding <video>/ frames")


def cmd_convert(args) -> int:
    from refine.convert import convert_referdino_dir

    written = convert_referdino_dir(args.in_dir, args.out_dir, args.trust_pickle, args.frames_root)
    print(f"converted {len(written)} files to {args.out_dir}", file=sys.stderr)
    return 0


def _zip_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("zip_path", metavar="FILE.zip")


def cmd_zip(args) -> int:
    from refine.submission import make_submission_zip

    n = make_submission_zip(args.out_dir, args.zip_path)
    print(f"zipped {n} masks into {args.zip_path}", file=sys.stderr)
    return 0


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]


def commands() -> list[Command]:
    """Every subcommand as (name, help, add_arguments(parser), run(args) → exit status): the
    one way a subcommand is registered."""
    from refine import bench, evaluate_cli

    return [
        ("run", "SAM2 enhancement + conditional fusion over a data set", _run_arguments, cmd_run),
        (
            "evaluate",
            "score predicted masks against ground truth (J, F, J&F)",
            evaluate_cli.add_arguments,
            evaluate_cli.run_evaluate,
        ),
        (
            "convert-referdino",
            "convert the challenge code's pickled Annotations_intermediate/*.npz to the safe "
            "format",
            _convert_arguments,
            cmd_convert,
        ),
        ("zip", "make the MeViS submission zip of an output folder", _zip_arguments, cmd_zip),
        (
            "bench",
            "benchmark our schedule against the challenge code's",
            bench.add_arguments,
            bench.run,
        ),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m refine",
        description="SAM2 mask enhancement and conditional fusion for RVOS results",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"refine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in commands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished expressions are kept (use --resume)", file=sys.stderr)
        return 130
