"""The in-process SAM2 parts of ``scripts/gpu_check.py``: fidelity across precisions and
devices, the two schedules' speed (through :mod:`refine.bench`), and the memory of a
long video with a bounded feature cache on the device or offloaded to the host.

Every step returns a JSON-ready dict whose ``summary`` is one line for the report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from refine import bench
from refine.frames import FrameSource
from refine.gpu_check import StepSkipped
from refine.metrics import db_eval_iou
from refine.models import CHECKPOINT_DIR, MODEL_SIZES, ModelSpec, get_predictor
from refine.pipeline import refine_video
from refine.propagation import Sam2Propagator
from refine.stage1 import VideoStage1
from refine.synthetic import random_expression, textured_frames, write_jpegs

Masks = dict[str, tuple[np.ndarray, bool]]
"""exp_id → (SAM2 union mask [T, H, W] bool, fusion took the union branch)."""


def model_spec(size: str, device: str, image_size: int) -> ModelSpec:
    """SAM2.1 ``size`` from ``checkpoints/`` if its file is there, else random weights (seed 0)."""
    path = os.path.join(CHECKPOINT_DIR, MODEL_SIZES[size][1])
    if os.path.isfile(path):
        return ModelSpec(size, device, checkpoint=path, image_size=image_size)
    return ModelSpec(size, device, random_weights=True, seed=0, image_size=image_size)


def weights_used(models: tuple[str, ...]) -> str:
    """ "random" or the checkpoint file, per model, for the report."""
    return ", ".join(
        f"{m}: {'random' if model_spec(m, 'cpu', 32).random_weights else MODEL_SIZES[m][1]}"
        for m in models
    )


@dataclass
class Clip:
    """A synthetic video as JPEGs with its stage-1 results."""

    paths: list[str]
    stage1: VideoStage1

    def frames(self) -> FrameSource:
        """A fresh FrameSource: its feature caches start empty (features made under one
        precision must not be reused by another)."""
        return FrameSource.from_paths(self.paths)


def make_clip(folder: str, t: int, e: int, h: int, w: int, seed: int) -> Clip:
    """T frames H×W and E expressions of :func:`refine.bench.make_inputs` in ``folder``."""
    names, exps = bench.make_inputs(folder, t, e, h, w, seed)
    return Clip([os.path.join(folder, f"{n}.jpg") for n in names], VideoStage1((h, w), names, exps))


def sam2_masks(spec: ModelSpec, precision: str, clip: Clip) -> tuple[Masks, dict]:
    """Every expression's SAM2 masks and fusion branch, with wall time and peak CUDA MB."""
    get_predictor(spec)  # build (or fetch) the model outside the timing
    prop = Sam2Propagator(spec, precision)
    t0 = time.perf_counter()
    with bench.PeakCudaMemory(spec.device) as mem:
        results = refine_video(clip.frames(), clip.stage1, prop)
    figures = {"seconds": time.perf_counter() - t0, "peak_cuda_mb": mem.peak_mb}
    return {r.exp_id: (r.sam2, bool(r.decision.multi)) for r in results}, figures


def compare(ref: Masks, test: Masks) -> dict:
    """Per-expression IoU (mean over frames, 1 where both are empty), its min and mean, the
    worst single frame's IoU, and whether the masks and the fusion decisions are identical."""
    per_frame = {e: db_eval_iou(ref[e][0], test[e][0]) for e in ref}
    iou = {e: float(j.mean()) for e, j in per_frame.items()}
    differ = [e for e in ref if ref[e][1] != test[e][1]]
    return {
        "iou_per_expression": iou,
        "iou_min": min(iou.values()),
        "iou_worst_frame": float(min(j.min() for j in per_frame.values())),
        "iou_mean": float(np.mean(list(iou.values()))),
        "masks_identical": all(np.array_equal(ref[e][0], test[e][0]) for e in ref),
        "decisions_identical": not differ,
        "decisions_differ": differ,
        "reference_foreground": float(np.mean([ref[e][0].mean() for e in ref])),
    }


def comparison_summary(c: dict) -> str:
    same = "identical" if c["decisions_identical"] else f"DIFFER on {c['decisions_differ']}"
    return (
        f"IoU min {c['iou_min']:.4f} mean {c['iou_mean']:.4f} over {len(c['iou_per_expression'])} "
        f"expressions (masks identical: {c['masks_identical']}); fusion decisions {same}"
    )


class Fidelity:
    """fp32 reference masks per model, then each precision and the CPU compared to it."""

    def __init__(self, clip: Clip, short_clip: Clip, device: str, image_size: int) -> None:
        self.clip, self.short_clip = clip, short_clip
        self.device, self.image_size = device, image_size
        self.reference: dict[str, Masks] = {}

    def fp32_reference(self, model: str) -> dict:
        spec = model_spec(model, self.device, self.image_size)
        self.reference[model], figures = sam2_masks(spec, "fp32", self.clip)
        fg = np.mean([m.mean() for m, _ in self.reference[model].values()])
        return {**figures, "summary": f"{figures['seconds']:.1f} s, foreground {fg:.3f}"}

    def precision(self, model: str, precision: str) -> dict:
        if model not in self.reference:
            raise StepSkipped(f"no fp32 reference for {model} (its step did not finish)")
        spec = model_spec(model, self.device, self.image_size)
        masks, figures = sam2_masks(spec, precision, self.clip)
        c = compare(self.reference[model], masks)
        return {**figures, **c, "summary": comparison_summary(c)}

    def device_vs_cpu(self, model: str) -> dict:
        dev, figures = sam2_masks(
            model_spec(model, self.device, self.image_size), "fp32", self.short_clip
        )
        cpu, cpu_figures = sam2_masks(
            model_spec(model, "cpu", self.image_size), "fp32", self.short_clip
        )
        c = compare(cpu, dev)
        return {"device": figures, "cpu": cpu_figures, **c, "summary": comparison_summary(c)}


def bench_args(model: str, device: str, image_size: int, clip: tuple[int, int, int, int]):
    """``python -m refine bench`` arguments for one model at ``clip`` = (T, E, H, W)."""
    t, e, h, w = clip
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    argv = ["-T", t, "-E", e, "--height", h, "--width", w, "--image-size", image_size]
    return p.parse_args([str(a) for a in argv] + ["--model", model, "--device", device])


def speed(model: str, device: str, image_size: int, clip: tuple[int, int, int, int]) -> dict:
    """Seed schedule vs ours (refine.bench) with expressions/s, frames/s, peak CUDA memory
    per schedule and GPU utilisation while it ran."""
    with GpuUtilisation(device) as util:
        r = bench.bench_schedules(bench_args(model, device, image_size, clip))
    out = {k: r[k] for k in ("speedup", "ours_over_limit", "seed_over_limit", "limit_seconds")}
    out.update(masks_identical=r["masks_identical"], gpu_utilisation=util.summary(), bench=r)
    steps = r["tracking_steps"]
    for name in ("seed", "ours"):
        s = r[name]
        peaks = [run["peak_cuda_mb"] for run in r["runs"][name] if run["peak_cuda_mb"] is not None]
        out[name] = {
            "seconds": s["seconds"],
            "expressions_per_s": r["expressions_tracked"] / s["seconds"],
            "frames_per_s": steps / s["seconds"],
            "encoder_calls": s["encoder_calls"],
            "peak_cuda_mb": max(peaks) if peaks else None,
            "peak_rss_mb": s["peak_rss_mb"],
        }
    seed, ours = out["seed"], out["ours"]
    out["summary"] = (
        f"seed {seed['seconds']:.1f} s, ours {ours['seconds']:.1f} s: {r['speedup']:.2f}x; ours/limit "
        f"{r['ours_over_limit']:.2f}; {ours['expressions_per_s']:.2f} exp/s, {ours['frames_per_s']:.0f} "
        f"expression-frames/s; peak CUDA MB seed {seed['peak_cuda_mb']}, ours {ours['peak_cuda_mb']}; "
        f"GPU util {util.summary()}; masks identical {r['masks_identical']}"
    )
    return out


class GpuUtilisation:
    """GPU utilisation (%) read every 0.5 s while the block runs: through
    ``torch.cuda.utilization`` when it works here (it needs pynvml), else one
    ``nvidia-smi`` query per sample; nothing on a device that is not CUDA."""

    def __init__(self, device: str) -> None:
        self.read = _utilisation_reader(device) if device.startswith("cuda") else None
        self.samples: list[float] = []
        self.failed_reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.samples.append(self.read())
            except Exception:  # noqa: BLE001 - an optional figure: a failed read is counted
                self.failed_reads += 1

    def __enter__(self):
        if self.read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.read is not None:
            self._stop.set()
            self._thread.join()

    def summary(self) -> str:
        if self.read is None:
            return "not read (no CUDA device, or neither pynvml nor nvidia-smi)"
        if not self.samples:
            return f"no sample ({self.failed_reads} failed reads)"
        return (
            f"mean {np.mean(self.samples):.0f}% max {max(self.samples):.0f}% "
            f"({len(self.samples)} samples, {self.failed_reads} failed reads)"
        )


def _utilisation_reader(device: str) -> Callable[[], float] | None:
    import torch

    try:
        torch.cuda.utilization(device)
        return lambda: float(torch.cuda.utilization(device))
    except Exception:  # noqa: BLE001 - pynvml missing (ImportError) or NVML unusable: try nvidia-smi
        pass
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    index = device.split(":")[1] if ":" in device else "0"
    cmd = [exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", index]
    return lambda: float(subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout)


class LongVideo:
    """A long video (``t`` frames ``side``², one expression with two objects) tracked with
    the feature cache bounded at ``cache_mb``, on the device or offloaded to the host."""

    def __init__(self, folder: str, t: int, side: int, spec: ModelSpec, cache_mb: float) -> None:
        base = textured_frames(min(t, 25), side, side, 0)  # tiled: making 300 frames is slow
        names = write_jpegs(np.concatenate([base] * (t // len(base) + 1))[:t], folder)
        rng = np.random.default_rng(0)
        exp = random_expression(rng, t, 4, (32, 32), [(t // 2, 0.9), (t // 3, 0.8)])
        self.clip = Clip(
            [os.path.join(folder, f"{n}.jpg") for n in names],
            VideoStage1((side, side), names, {"0": exp}),
        )
        self.spec, self.cache_mb = spec, cache_mb
        self.masks: dict[bool, np.ndarray] = {}

    def run(self, offload: bool) -> dict:
        prop = Sam2Propagator(self.spec, "auto", cache_mb=self.cache_mb, offload_cache=offload)
        calls0 = prop.encoder_calls
        t0 = time.perf_counter()
        with bench.PeakRSS() as rss, bench.PeakCudaMemory(self.spec.device) as mem:
            (result,) = refine_video(self.clip.frames(), self.clip.stage1, prop)
        seconds = time.perf_counter() - t0
        cache = prop.last_cache
        self.masks[offload] = result.sam2
        out = {
            "seconds": seconds,
            "frames": len(self.clip.paths),
            "peak_cuda_mb": mem.peak_mb,
            "peak_rss_above_start_mb": rss.above_start_mb,
            "encoder_calls": prop.encoder_calls - calls0,
            "cache": {
                "bound_mb": self.cache_mb,
                "held_mb": cache.bytes / 2**20,
                "entries": len(cache),
            },
            "cache_counts": {
                "hits": cache.hits,
                "misses": cache.misses,
                "evictions": cache.evictions,
            },
        }
        where = "offloaded to host" if offload else "on the device"
        out["summary"] = (
            f"{out['frames']} frames in {seconds:.1f} s; peak CUDA MB {mem.peak_mb}, RSS +"
            f"{rss.above_start_mb:.0f} MB; cache {where} holds {out['cache']['held_mb']:.3g} of "
            f"{self.cache_mb:g} MB, {cache.evictions} evictions, {out['encoder_calls']} encoder calls"
        )
        if len(self.masks) == 2:
            same = bool(np.array_equal(self.masks[True], self.masks[False]))
            out["masks_identical_to_other_mode"] = same
            out["summary"] += f"; masks identical to the other mode: {same}"
        return out
