"""``python -m refine bench --batch-memory``: peak memory of a batch run against the number
of expressions.

On one synthetic video (T frames at H×W, stage-1 with N queries per expression at a low
resolution), for each E in ``--expression-counts`` a fresh child process runs

* **refine** — ``refine run`` on that video (:func:`refine.batch.run_batch`), in the
  schedules of ``--schedules`` (lockstep, sequential);
* **challenge** — the challenge code's schedule: stage-1 loaded whole, then per
  expression a fresh ``init_state`` on the JPEG folder, prompts, forward then reverse
  propagation, fusion of full [T, H, W] arrays, PNGs written;

and reports its peak resident memory (``ru_maxrss``). Every run writes its PNGs; the
table says whether all runs of one E wrote identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

from refine.models import ModelSpec

MODES = ("lockstep", "sequential", "challenge")


def write_inputs(root: str, t: int, h: int, w: int, e: int, queries: int, low: tuple[int, int]):
    """Frames in ``root/JPEGImages/v0`` (once) and, for E expressions, the meta file and
    ``root/stage1-E/v0.npz``; returns (data root, stage-1 folder)."""
    from refine.stage1 import VideoStage1, save_stage1_npz
    from refine.synthetic import random_expression, textured_frames, write_jpegs

    frames_dir = os.path.join(root, "JPEGImages", "v0")
    if not os.path.isdir(frames_dir):
        write_jpegs(textured_frames(t, h, w, 0), frames_dir)
    names = [f"{i:05d}" for i in range(t)]
    rng = np.random.default_rng(0)
    exps = {}
    for i in range(e):  # two confident queries per expression, peaking on various frames
        peaks = [(int(rng.integers(0, t)), float(rng.uniform(0.6, 0.95))) for _ in range(2)]
        exps[str(i)] = random_expression(rng, t, queries, low, peaks)
    meta = {"videos": {"v0": {"frames": names, "expressions": {k: {"exp": k} for k in exps}}}}
    with open(os.path.join(root, "meta_expressions.json"), "w") as f:
        json.dump(meta, f)
    stage1 = os.path.join(root, f"stage1-{e}")
    os.makedirs(stage1, exist_ok=True)
    save_stage1_npz(os.path.join(stage1, "v0.npz"), VideoStage1((h, w), names, exps))
    return root, stage1


def run_refine(data: str, stage1: str, out: str, spec: ModelSpec, schedule: str) -> None:
    from refine.batch import BatchConfig, run_batch

    cfg = BatchConfig(data, stage1, out, spec, schedule=schedule)
    (report,) = run_batch(cfg, None, [spec.device])
    if report.error:
        raise RuntimeError(report.error)


def run_challenge(data: str, stage1: str, out: str, spec: ModelSpec) -> None:
    """The challenge code's schedule, one expression at a time on plain ``init_state``."""
    from refine.challenge_schedule import run_seed_schedule
    from refine.fusion import fuse
    from refine.mask_io import write_expression_masks
    from refine.pipeline import RefineParams, prepare_expression
    from refine.propagation import Sam2Propagator
    from refine.stage1 import load_stage1_npz
    from refine.upsample import upsample_masks

    prop = Sam2Propagator(spec)
    video = load_stage1_npz(os.path.join(stage1, "v0.npz"))
    frames_dir = os.path.join(data, "JPEGImages", "v0")
    params = RefineParams()
    for exp_id, exp in video.expressions.items():
        prep = prepare_expression(exp_id, exp, video.video_size, params)
        (objects,) = run_seed_schedule(prop.predictor, frames_dir, [prep.prompts], prop.autocast())
        ori = upsample_masks(exp.masks[:, prep.kept], video.video_size).any(axis=1)
        fused, _ = fuse(ori, objects.any(axis=1), params.area_ratio, params.vote)
        write_expression_masks(out, "v0", exp_id, video.frame_names, fused)
        del objects, ori, fused


def child(argv: list[str]) -> None:
    """One measured run: MODE DATA STAGE1 OUT MODEL IMAGE_SIZE; prints JSON."""
    from refine.models import get_predictor

    mode, data, stage1, out, model, image_size = argv
    spec = ModelSpec(model, "cpu", random_weights=True, image_size=int(image_size))
    get_predictor(spec)
    before = _peak_rss()
    if mode == "challenge":
        from refine.challenge_schedule import quiet_frame_loading

        with quiet_frame_loading():
            run_challenge(data, stage1, out, spec)
    else:
        run_refine(data, stage1, out, spec, mode)
    figures = {"model_rss_gb": before / 2**30, "peak_rss_gb": _peak_rss() / 2**30}
    sys.stdout.write(json.dumps(figures) + "\n")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _tree_digest(folder: str) -> str:
    """sha256 over the relative paths and bytes of every PNG under ``folder``."""
    digest = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(folder)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if f.endswith(".png")):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def measure(mode: str, data: str, stage1: str, out: str, args) -> dict:
    """Run one mode in a fresh child process; its figures and the digest of its PNGs."""
    cmd = [sys.executable, "-m", "refine.bench_batch_memory", mode, data, stage1, out]
    proc = subprocess.run(
        [*cmd, args.model, str(args.image_size)],
        capture_output=True,
        text=True,
        timeout=args.timeout,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "digest": _tree_digest(out)}


def bench_batch_memory(args) -> dict:
    counts = sorted(set(args.expression_counts))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for e in counts:
            data, stage1 = write_inputs(
                tmp, args.frames, args.height, args.width, e, args.queries, args.low_res
            )
            row = {"expressions": e}
            for mode in args.schedules:
                row[mode] = measure(mode, data, stage1, os.path.join(tmp, f"out-{mode}-{e}"), args)
            digests = {r.get("digest") for m, r in row.items() if m in MODES}
            row["identical"] = len(digests) == 1 and None not in digests
            rows.append(row)
    return {"config": {k: v for k, v in vars(args).items() if k != "func"}, "rows": rows}


def format_table(r: dict) -> str:
    """The figures of :func:`bench_batch_memory` as a text table."""
    c = r["config"]
    lines = [
        f"batch memory: 1 video, T={c['frames']} frames {c['width']}x{c['height']}, stage-1 "
        f"{c['queries']} queries/expression at {c['low_res'][1]}x{c['low_res'][0]} (2 kept), "
        f"SAM2 {c['model']} at {c['image_size']} (cpu, random weights); peak RSS in GB"
    ]
    modes = list(c["schedules"])
    lines.append(f"{'E':>4}" + "".join(f"{m:>14}" for m in modes) + f"{'masks identical':>18}")
    for row in r["rows"]:
        cells = []
        for m in modes:
            s = row[m]
            cells.append(f"{'failed':>14}" if "error" in s else f"{s['peak_rss_gb']:>14.2f}")
        lines.append(f"{row['expressions']:>4}" + "".join(cells) + f"{row['identical']!s:>18}")
    for row in r["rows"]:
        lines += [
            f"E={row['expressions']} {m} failed: {row[m]['error']}"
            for m in modes
            if "error" in row[m]
        ]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expression-counts",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[4, 8, 16, 32],
        metavar="E1,E2,...",
        help="batch memory: numbers of expressions (default 4,8,16,32)",
    )
    p.add_argument(
        "--schedules",
        type=lambda s: s.split(","),
        default=["lockstep", "challenge"],
        metavar="M1,M2",
        help=f"batch memory: runs to measure, of {','.join(MODES)} (default lockstep,challenge)",
    )
    p.add_argument("--queries", type=int, default=5, help="batch memory: stage-1 queries (N)")
    p.add_argument(
        "--low-res",
        type=lambda s: tuple(int(x) for x in s.split("x")),
        default=(90, 160),
        metavar="HxW",
        help="batch memory: stage-1 mask size (default 90x160)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="batch memory: seconds per run")


if __name__ == "__main__":
    child(sys.argv[1:])
