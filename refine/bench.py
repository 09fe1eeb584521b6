"""``python -m refine bench``: our schedule vs the challenge code's, on a synthetic video.

Default mode, in one process on the same inputs:

* **seed schedule** — what the challenge code did: per expression a fresh
  ``init_state`` on the JPEG folder (every frame decoded and resized up front, SAM2's
  one-frame feature cache), prompts, forward then reverse propagation;
* **ours** — :class:`refine.propagation.Sam2Propagator` (frames decoded on demand, a
  shared feature cache, all expressions in lockstep).

It prints wall time, image-encoder calls and peak RSS of each, their ratio, the
physical-limit line ``T·encode + steps·track`` (encode = one encoder call, measured;
track = one tracking step with cached features, measured inside our run) and whether
the masks are identical.

``--long-video`` instead measures the peak RSS of state creation plus propagation over
the first 20 frames of a long video (default 1,000 frames at 480p, image_size 1024), ours
vs plain ``init_state``, each in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

from refine.frames import FrameSource
from refine.models import MODEL_SIZES, ModelSpec
from refine.pipeline import RefineParams, prepare_expression
from refine.propagation import Sam2Propagator, add_prompt, frames_to_track
from refine.synthetic import random_expression, textured_frames, write_jpegs


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def above_start_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def make_inputs(root: str, t: int, e: int, h: int, w: int, seed: int):
    """Write T frames to ``root`` and make E expressions whose queries peak on various frames."""
    names = write_jpegs(textured_frames(t, h, w, seed), root)
    rng = np.random.default_rng(seed)
    exps = {}
    for i in range(e):
        k = 1 + i % 3
        peaks = [(int(rng.integers(0, t)), float(rng.uniform(0.5, 0.95))) for _ in range(k)]
        exps[str(i)] = random_expression(rng, t, 4, (24, 32), peaks)
    return names, exps


def run_seed_schedule(predictor, frames_dir: str, prompt_sets, autocast) -> list[np.ndarray]:
    """The challenge code's schedule: a fresh ``init_state`` per expression."""
    import torch

    outs = []
    for prompts in prompt_sets:
        with torch.inference_mode(), autocast:
            state = predictor.init_state(video_path=frames_dir)
            for p in prompts:
                add_prompt(predictor, state, p)
            n, h, w = state["num_frames"], state["video_height"], state["video_width"]
            out = np.zeros((n, len(prompts), h, w), bool)
            for reverse in (False, True):
                for t, _, logits in predictor.propagate_in_video(state, reverse=reverse):
                    out[t] = (logits[:, 0] > 0).cpu().numpy()
        outs.append(out)
        del state
    return outs


def _timed_encoder(predictor):
    """Wrap the predictor's forward_image to accumulate its time; returns the accumulator."""
    acc = {"seconds": 0.0}
    inner = predictor.forward_image

    def forward_image(img):
        t0 = time.perf_counter()
        out = inner(img)
        acc["seconds"] += time.perf_counter() - t0
        return out

    predictor.forward_image = forward_image
    return acc


def bench_schedules(args) -> dict:
    spec = ModelSpec(
        args.model, args.device, random_weights=True, seed=0, image_size=args.image_size
    )
    prop = Sam2Propagator(spec, args.precision, cache_mb=args.cache_mb)
    predictor = prop.predictor
    enc = _timed_encoder(predictor)
    with tempfile.TemporaryDirectory() as tmp:
        frames_dir = os.path.join(tmp, "frames")
        _, exps = make_inputs(frames_dir, args.frames, args.expressions, args.height, args.width, 0)
        params = RefineParams()
        prepared = [
            prepare_expression(k, e, (args.height, args.width), params) for k, e in exps.items()
        ]
        prompt_sets = [p.prompts for p in prepared if p.prompts]
        # warm-up: first calls allocate and pick kernels
        import torch

        with torch.inference_mode():
            predictor.forward_image(torch.zeros(1, 3, predictor.image_size, predictor.image_size))
        # encode component: T encoder calls on ready inputs
        frames = FrameSource.from_paths(
            sorted(os.path.join(frames_dir, f) for f in os.listdir(frames_dir))
        )
        inputs = [frames.model_input(t, predictor.image_size)[None] for t in range(len(frames))]
        enc["seconds"] = 0.0
        with torch.inference_mode(), prop._autocast():
            for x in inputs:
                predictor.forward_image(x.to(spec.device))
        t_encode = enc["seconds"] / len(inputs)
        del inputs

        calls0, enc["seconds"] = predictor.refine_encoder_calls, 0.0
        t0 = time.perf_counter()
        with PeakRSS() as rss_seed:
            seed_masks = run_seed_schedule(predictor, frames_dir, prompt_sets, prop._autocast())
        t_seed = time.perf_counter() - t0
        calls_seed = predictor.refine_encoder_calls - calls0

        frames = FrameSource.from_paths(
            sorted(os.path.join(frames_dir, f) for f in os.listdir(frames_dir))
        )
        calls0, enc["seconds"] = predictor.refine_encoder_calls, 0.0
        t0 = time.perf_counter()
        with PeakRSS() as rss_ours:
            our_masks = list(prop.track(frames, prompt_sets))
        t_ours = time.perf_counter() - t0
        calls_ours = predictor.refine_encoder_calls - calls0
        enc_in_ours = enc["seconds"]
    steps = sum(frames_to_track(args.frames, ps) for ps in prompt_sets)
    t_track = (t_ours - enc_in_ours) / steps
    limit = args.frames * t_encode + steps * t_track
    limit_et = args.frames * t_encode + len(prompt_sets) * args.frames * t_track
    identical = all(np.array_equal(a, b) for a, b in zip(seed_masks, our_masks))
    return {
        "config": vars(args),
        "expressions_tracked": len(prompt_sets),
        "seed": {
            "seconds": t_seed,
            "encoder_calls": calls_seed,
            "peak_rss_mb": rss_seed.above_start_mb,
        },
        "ours": {
            "seconds": t_ours,
            "encoder_calls": calls_ours,
            "peak_rss_mb": rss_ours.above_start_mb,
        },
        "speedup": t_seed / t_ours,
        "encode_seconds_per_frame": t_encode,
        "track_seconds_per_step": t_track,
        "tracking_steps": steps,
        "limit_seconds": limit,
        "limit_seconds_E_T": limit_et,
        "ours_over_limit": t_ours / limit,
        "masks_identical": identical,
    }


def _print_schedules(r: dict) -> None:
    c = r["config"]
    print(
        f"synthetic video: T={c['frames']} frames {c['width']}x{c['height']}, E={c['expressions']} "
        f"expressions ({r['expressions_tracked']} tracked), SAM2 {c['model']} at {c['image_size']}, "
        f"{c['device']}, random weights"
    )
    print(f"{'schedule':<10}{'wall s':>10}{'encoder calls':>16}{'peak RSS +MB':>15}")
    for name in ("seed", "ours"):
        s = r[name]
        print(f"{name:<10}{s['seconds']:>10.2f}{s['encoder_calls']:>16}{s['peak_rss_mb']:>15.0f}")
    print(f"speed-up (seed / ours): {r['speedup']:.2f}x")
    print(
        f"limit line: T·encode + steps·track = {c['frames']}·{r['encode_seconds_per_frame']:.3f} + "
        f"{r['tracking_steps']}·{r['track_seconds_per_step']:.4f} = {r['limit_seconds']:.2f} s "
        f"(with E·T steps: {r['limit_seconds_E_T']:.2f} s); ours / limit = {r['ours_over_limit']:.2f}"
    )
    print(f"masks identical: {r['masks_identical']}")


LONG_CHILD = r"""
import json, os, sys, time, resource
import numpy as np, psutil, torch
from refine.models import ModelSpec, get_predictor
from refine.frames import FrameSource
from refine.sam2_patches import new_inference_state
from refine.feature_cache import FeatureCache
mode, frames_dir, image_size, n_track, cache_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
pred = get_predictor(ModelSpec("tiny", "cpu", random_weights=True, image_size=image_size))
proc = psutil.Process()
model_rss = proc.memory_info().rss
t0 = time.perf_counter()
with torch.inference_mode():
    if mode == "plain":
        state = pred.init_state(video_path=frames_dir)
        h, w = state["video_height"], state["video_width"]
    else:
        files = sorted(os.path.join(frames_dir, f) for f in os.listdir(frames_dir))
        src = FrameSource.from_paths(files)
        h, w = src.height, src.width
        state = new_inference_state(pred, src.bind(pred.image_size), h, w, FeatureCache(cache_mb))
    mask = np.zeros((h, w), bool); mask[h // 3: h // 2, w // 3: w // 2] = True
    pred.add_new_mask(state, frame_idx=0, obj_id=0, mask=mask)
    for t, _, logits in pred.propagate_in_video(state, start_frame_idx=0, max_frame_num_to_track=n_track - 1):
        pass
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"mode": mode, "model_rss_mb": model_rss / 2**20, "peak_rss_mb": peak / 2**20,
                  "above_model_mb": (peak - model_rss) / 2**20, "seconds": time.perf_counter() - t0,
                  "frames_tracked": t + 1}))
"""


def bench_long_video(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        frames_dir = os.path.join(tmp, "frames")
        base = textured_frames(50, args.height, args.width, 0)
        write_jpegs(np.concatenate([base] * (args.frames // 50 + 1))[: args.frames], frames_dir)
        results = {}
        for mode in ("ours", "plain"):
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    LONG_CHILD,
                    mode,
                    frames_dir,
                    str(args.image_size),
                    str(args.track_frames),
                    str(args.cache_mb),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                results[mode] = {"error": proc.stderr.strip().splitlines()[-1:]}
            else:
                results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"config": vars(args), **results}


def _print_long(r: dict) -> None:
    c = r["config"]
    print(
        f"long video: {c['frames']} frames {c['width']}x{c['height']}, SAM2 tiny at "
        f"{c['image_size']}, state creation + propagation over {c['track_frames']} frames"
    )
    for mode in ("ours", "plain"):
        s = r[mode]
        if "error" in s:
            print(f"{mode:<6} failed: {s['error']}")
            continue
        print(
            f"{mode:<6} peak RSS {s['peak_rss_mb'] / 1024:6.2f} GiB = model {s['model_rss_mb'] / 1024:.2f} GiB "
            f"+ {s['above_model_mb'] / 1024:.2f} GiB  ({s['seconds']:.0f} s)"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m refine bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", "-T", type=int, default=None, help="frames (default 32; long: 1000)")
    p.add_argument("--expressions", "-E", type=int, default=8)
    p.add_argument("--model", default="tiny", choices=list(MODEL_SIZES))
    p.add_argument("--image-size", type=int, default=None, help="default 256; long: 1024")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--cache-mb", type=float, default=4096.0)
    p.add_argument("--long-video", action="store_true", help="the long-video memory benchmark")
    p.add_argument("--track-frames", type=int, default=20, help="long: frames to propagate")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")


def run(args) -> int:
    if args.long_video:
        args.frames = args.frames or 1000
        args.image_size = args.image_size or 1024
        result = bench_long_video(args)
        _print_long(result)
    else:
        args.frames = args.frames or 32
        args.image_size = args.image_size or 256
        result = bench_schedules(args)
        _print_schedules(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return 0
