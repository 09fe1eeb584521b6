"""Which memory SAM2 tracks with: plain SAM2 or SAMURAI's motion-aware memory (torch-free).

:class:`MemoryConfig` is a frozen, hashable value: the batch markers record it
(``as_dict``) and a run cache can key by it. The SAMURAI settings' defaults are those of
the challenge solution's ``sam2.1_hiera_l.yaml`` (a SAMURAI fork).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields

from refine.errors import InputError

MEMORY_MODES = ("sam2", "samurai")

# field → (command-line flag, help); one table for the CLI, the bench and error messages
SAMURAI_FLAGS: dict[str, tuple[str, str]] = {
    "stable_frames": (
        "--samurai-stable-frames",
        "frames with a confident mask before the Kalman box takes part in mask choice",
    ),
    "stable_iou": (
        "--samurai-stable-iou",
        "predicted IoU a chosen mask needs to update the Kalman filter (else it restarts)",
    ),
    "min_obj_score": (
        "--samurai-min-obj-score",
        "object present where SAM2's object score logit exceeds this (SAM2 itself: 0)",
    ),
    "kf_weight": (
        "--samurai-kf-weight",
        "weight of the Kalman box IoU against SAM2's predicted IoU in mask choice, in [0, 1]",
    ),
    "memory_iou": ("--samurai-memory-iou", "predicted IoU a frame needs to enter the memory"),
    "memory_obj_score": (
        "--samurai-memory-obj-score",
        "object score logit a frame needs to enter the memory",
    ),
    "memory_kf_score": (
        "--samurai-memory-kf-score",
        "Kalman box IoU a frame needs to enter the memory (frames without one pass)",
    ),
}


@dataclass(frozen=True)
class MemoryConfig:
    """The tracking memory: ``mode`` "sam2" (SAM2.1's last frames) or "samurai".

    SAMURAI settings (only meaningful with ``mode="samurai"``; with "sam2" they must keep
    their defaults, so that equal configs mean equal behaviour):
    stable_frames, stable_iou — when the Kalman filter counts as stable;
    min_obj_score — the object-presence logit threshold;
    kf_weight — weight of the Kalman box IoU in mask choice;
    memory_iou, memory_obj_score, memory_kf_score — what a frame needs to enter the memory.
    """

    mode: str = "sam2"
    stable_frames: int = 15
    stable_iou: float = 0.3
    min_obj_score: float = -1.0
    kf_weight: float = 0.25
    memory_iou: float = 0.5
    memory_obj_score: float = 0.0
    memory_kf_score: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MEMORY_MODES:
            raise InputError(
                f"unknown memory mode {self.mode!r}; choose one of {list(MEMORY_MODES)}"
            )
        if isinstance(self.stable_frames, bool) or not isinstance(self.stable_frames, int):
            raise InputError(
                f"{SAMURAI_FLAGS['stable_frames'][0]} must be an integer, got {self.stable_frames!r}"
            )
        if self.stable_frames < 0:
            raise InputError(
                f"{SAMURAI_FLAGS['stable_frames'][0]} must be ≥ 0, got {self.stable_frames}"
            )
        for name in SAMURAI_FLAGS:
            if name == "stable_frames":
                continue
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise InputError(f"{SAMURAI_FLAGS[name][0]} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0.0 <= self.kf_weight <= 1.0:
            raise InputError(
                f"{SAMURAI_FLAGS['kf_weight'][0]} must lie in [0, 1], got {self.kf_weight}"
            )
        if self.mode == "sam2":
            changed = [SAMURAI_FLAGS[f.name][0] for f in fields(self) if f.name != "mode"
                       and getattr(self, f.name) != f.default]  # fmt: skip
            if changed:
                raise InputError(
                    f"{changed} only apply to the samurai memory; add --memory samurai"
                )

    @property
    def samurai(self) -> bool:
        return self.mode == "samurai"

    def as_dict(self) -> dict:
        """JSON-ready: the mode, plus the SAMURAI settings when they apply."""
        return asdict(self) if self.samurai else {"mode": self.mode}


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    """``--memory`` and the SAMURAI settings (read back with :func:`memory_config`)."""
    g = p.add_argument_group("tracking memory")
    g.add_argument(
        "--memory",
        default="sam2",
        choices=MEMORY_MODES,
        help="sam2: SAM2.1's memory of the last frames (default); samurai: SAMURAI's "
        "motion-aware memory (Kalman-filter mask choice and memory selection)",
    )
    defaults = MemoryConfig("samurai")
    for name, (flag, text) in SAMURAI_FLAGS.items():
        kind = int if name == "stable_frames" else float
        g.add_argument(
            flag,
            dest=name,
            type=kind,
            default=None,
            help=f"{text} (default {getattr(defaults, name)})",
        )


def memory_config(args: argparse.Namespace) -> MemoryConfig:
    """The MemoryConfig of parsed ``add_memory_arguments`` flags (InputError if invalid)."""
    values = {name: getattr(args, name) for name in SAMURAI_FLAGS}
    return MemoryConfig(args.memory, **{k: v for k, v in values.items() if v is not None})


SAM2_MEMORY = MemoryConfig()
"""The default: SAM2.1's own memory."""
