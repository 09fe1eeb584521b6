"""Pictures of results: mask overlays on frames, H.264 mp4s of them, diagnostics plots.

Everything here is pure (arrays in, arrays/files/figures out) and UI-independent.
matplotlib and imageio-ffmpeg are imported when first used; plots are
``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot state).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

# RGB colours of each stage's overlay
STAGE_COLORS: dict[str, tuple[int, int, int]] = {
    "stage1": (255, 150, 0),
    "sam2": (0, 150, 255),
    "fused": (40, 210, 90),
}
STAGE_LABELS = {"stage1": "stage 1", "sam2": "SAM2-enhanced", "fused": "fused"}
DEFAULT_ALPHA = 0.45
DEFAULT_FPS = 6.0


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Inner boundary of a mask (pixels with a 4-neighbour outside): [H, W] bool → [H, W] bool."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def overlay_mask(
    frame: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int],
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """``frame`` with ``mask`` tinted in ``color`` and outlined: uint8 [H, W, 3], bool [H, W]
    → uint8 [H, W, 3] (a new array)."""
    frame = np.asarray(frame)
    mask = np.asarray(mask, dtype=bool)
    if frame.shape[:2] != mask.shape or frame.ndim != 3:
        raise ValueError(f"frame {frame.shape} and mask {mask.shape} sizes differ")
    out = frame.copy()
    if not mask.any():
        return out
    a = round(alpha * 256)
    col = np.asarray(color, np.uint16)
    region = out[mask].astype(np.uint16)
    out[mask] = ((region * (256 - a) + col * a) >> 8).astype(np.uint8)
    out[mask_edges(mask)] = np.asarray(color, np.uint8)
    return out


def pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad [H, W, 3] by repeating the last row/column so that H and W are even
    (H.264 with yuv420p needs even sizes)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class Mp4Writer:
    """An H.264 (libx264, yuv420p) mp4 written frame by frame through imageio-ffmpeg.

    Frames are uint8 [H, W, 3] RGB of the size given at creation; odd sizes are padded
    to even. Use as a context manager; the file is complete after ``close()``.
    """

    def __init__(self, path: str, height: int, width: int, fps: float = DEFAULT_FPS) -> None:
        import imageio_ffmpeg

        self.path = path
        self.size = (height, width)
        even_w, even_h = width + width % 2, height + height % 2
        self._gen = imageio_ffmpeg.write_frames(
            path,
            (even_w, even_h),
            fps=float(fps),
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=2,
            ffmpeg_log_level="error",
            output_params=["-preset", "veryfast", "-crf", "23", "-movflags", "+faststart"],
        )
        self._gen.send(None)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != self.size:
            raise ValueError(f"frame is {frame.shape[:2]}, the video is {self.size}")
        self._gen.send(np.ascontiguousarray(pad_even(frame)))
        self.frames += 1

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_overlay_videos(
    paths: dict[str, str],
    rgb: Callable[[int], np.ndarray],
    masks: dict[str, np.ndarray],
    colors: dict[str, tuple[int, int, int]],
    fps: float = DEFAULT_FPS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """One overlay mp4 per key of ``paths``, decoding each frame once.

    rgb(t) → uint8 [H, W, 3]; masks[key]: [T, H, W] bool; colors[key]: RGB.
    Returns ``paths``. Files are written next to their final name and renamed when done.
    """
    if not paths:
        return paths
    keys = list(paths)
    t_total, h, w = masks[keys[0]].shape
    tmp = {k: f"{os.path.splitext(p)[0]}.part.mp4" for k, p in paths.items()}
    writers = [Mp4Writer(tmp[k], h, w, fps) for k in keys]
    try:
        for t in range(t_total):
            frame = rgb(t)
            for k, wr in zip(keys, writers, strict=True):
                wr.write(overlay_mask(frame, masks[k][t], colors[k]))
            if progress is not None:
                progress(t + 1, t_total)
    finally:
        for wr in writers:
            wr.close()
    for k in keys:
        os.replace(tmp[k], paths[k])
    return paths


def _figure(width: float = 6.4, height: float = 3.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def score_plot(
    scores: np.ndarray,
    threshold: float,
    kept: Sequence[int],
    prompt_frames: Sequence[int] = (),
    title: str | None = None,
):
    """Each query's score per frame with the θ line; kept queries solid, with their prompt
    frame marked. scores: [T, N]; kept: [K] query indices; prompt_frames: [K]."""
    scores = np.asarray(scores, dtype=np.float64)
    t, n = scores.shape
    fig, ax = _figure()
    x = np.arange(t)
    kept = [int(k) for k in kept]
    cmap = _colors(n)
    for q in range(n):
        is_kept = q in kept
        ax.plot(
            x,
            scores[:, q],
            color=cmap[q],
            lw=2.0 if is_kept else 1.0,
            ls="-" if is_kept else "--",
            alpha=1.0 if is_kept else 0.5,
            label=f"q{q}" + (" (kept)" if is_kept else ""),
            marker="o" if t <= 40 and is_kept else None,
            ms=3,
        )
    for q, f in zip(kept, prompt_frames, strict=False):
        ax.plot([f], [scores[f, q]], marker="*", ms=14, color=cmap[q], mec="black", ls="none")
    ax.axhline(threshold, color="crimson", lw=1.2, ls=":", label=f"θ = {threshold:g}")
    ax.set_xlim(-0.5, t - 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("score")
    ax.set_title(title or f"query scores (kept: {kept or 'none'}; ★ = prompt frame)", fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, n + 1), loc="upper right", framealpha=0.8)
    ax.grid(alpha=0.3)
    return fig


def area_ratios(area_stage1: np.ndarray, area_sam2: np.ndarray) -> np.ndarray:
    """Per-frame area(SAM2)/area(stage-1) box ratio, NaN where either is empty: [T], [T] → [T]."""
    a1 = np.asarray(area_stage1, dtype=np.float64)
    a2 = np.asarray(area_sam2, dtype=np.float64)
    valid = (a1 > 0) & (a2 > 0)
    out = np.full(a1.shape, np.nan)
    np.divide(a2, a1, out=out, where=valid)
    return out


def area_ratio_plot(
    area_stage1: np.ndarray,
    area_sam2: np.ndarray,
    area_ratio: Fraction | float,
    title: str | None = None,
):
    """Per-frame SAM2/stage-1 box-area ratio with the ρ line; frames below ρ (shrunk) in red,
    frames without both boxes marked at the bottom. areas: [T] int."""
    ratios = area_ratios(area_stage1, area_sam2)
    rho = float(area_ratio)
    t = len(ratios)
    x = np.arange(t)
    fig, ax = _figure()
    valid = ~np.isnan(ratios)
    shrunk = valid & (ratios < rho)
    ax.bar(x[valid & ~shrunk], ratios[valid & ~shrunk], color="#3a8fd9", label="SAM2 ≥ ρ·stage 1")
    ax.bar(x[shrunk], ratios[shrunk], color="#d9453a", label="shrunk: SAM2 < ρ·stage 1")
    if (~valid).any():
        ax.plot(x[~valid], np.zeros((~valid).sum()), "x", color="gray", label="no box in one")
    ax.axhline(rho, color="black", ls="--", lw=1.2, label=f"ρ = {_frac(area_ratio)}")
    top = np.nanmax(ratios) if valid.any() else 1.0
    ax.set_ylim(0, max(1.2, min(top * 1.1, 5.0)))
    ax.set_xlim(-0.5, t - 0.5)
    ax.set_xlabel("frame")
    ax.set_ylabel("box area SAM2 / stage 1")
    ax.set_title(
        title or f"{int(shrunk.sum())} of {int(valid.sum())} comparable frames shrunk", fontsize=10
    )
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    ax.grid(alpha=0.3, axis="y")
    return fig


def figure_to_rgb(fig) -> np.ndarray:
    """Render a matplotlib Figure with Agg: uint8 [H, W, 3]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _frac(value: Fraction | float) -> str:
    return str(value) if isinstance(value, Fraction) else f"{value:g}"
