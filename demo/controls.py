"""The run settings a person picks on the page, as one value (no Gradio import).

:class:`Controls` is built once per event from the settings components (in the order of
:data:`CONTROL_NAMES`) and turned into refine's :class:`~refine.inspect.RunSettings`. A new
SAM2 run setting (e.g. a memory mode) is one more field here, one more name in
:data:`CONTROL_NAMES`, one more component in the layout, and one more field of RunSettings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from refine.errors import InputError
from refine.inspect import RunSettings
from refine.memory import MEMORY_MODES, SAM2_MEMORY, MemoryConfig
from refine.models import MODEL_SIZES, ModelSpec
from refine.pipeline import RefineParams
from refine.prompts import PROMPT_KINDS
from refine.selection import DEFAULT_THRESHOLD

WEIGHTS_CHECKPOINT = "checkpoint"
WEIGHTS_RANDOM = "random"
WEIGHT_CHOICES = [
    ("SAM2.1 checkpoint", WEIGHTS_CHECKPOINT),
    ("Random weights (masks meaningless)", WEIGHTS_RANDOM),
]
DEVICE_AUTO = "auto"
DEFAULT_PROMPT = RefineParams.prompt
FAST_SIZE = next(iter(MODEL_SIZES))  # tiny: the start size without a checkpoint


@dataclass(frozen=True)
class Controls:
    """SAM2 size, device, weights, prompt kind, θ and tracking memory as set on the page
    (SAMURAI with the challenge fork's settings)."""

    size: str = FAST_SIZE
    device: str = DEVICE_AUTO
    weights: str = WEIGHTS_RANDOM
    prompt: str = DEFAULT_PROMPT
    threshold: float = DEFAULT_THRESHOLD
    memory: str = SAM2_MEMORY.mode

    def __post_init__(self) -> None:
        if self.weights not in (WEIGHTS_CHECKPOINT, WEIGHTS_RANDOM):
            raise InputError(
                f"weights {self.weights!r} must be {WEIGHTS_CHECKPOINT!r} or {WEIGHTS_RANDOM!r}"
            )
        if self.size not in MODEL_SIZES:
            raise InputError(f"SAM2 size {self.size!r} is not one of {list(MODEL_SIZES)}")
        if self.prompt not in PROMPT_KINDS:
            raise InputError(f"prompt {self.prompt!r} is not one of {list(PROMPT_KINDS)}")
        try:
            theta = float(self.threshold)
        except (TypeError, ValueError):
            raise InputError(f"θ must be a number, got {self.threshold!r}") from None
        if not 0 <= theta < 1:
            raise InputError(f"θ must lie in [0, 1), got {self.threshold}")
        object.__setattr__(self, "threshold", theta)
        if self.memory not in MEMORY_MODES:
            raise InputError(f"memory {self.memory!r} is not one of {list(MEMORY_MODES)}")

    @classmethod
    def of(cls, *values: object) -> Controls:
        """Controls from component values in the order of :data:`CONTROL_NAMES`."""
        return cls(*values)

    @property
    def random_weights(self) -> bool:
        return self.weights == WEIGHTS_RANDOM

    @property
    def device_auto(self) -> bool:
        return self.device == DEVICE_AUTO

    def settings(self, image_size: int | None, device: str | None = None) -> RunSettings:
        """RunSettings of these controls; ``device`` replaces the chosen one (e.g. "auto"
        resolved to a real device)."""
        spec = ModelSpec(
            size=self.size,
            device=device or self.device,
            random_weights=self.random_weights,
            seed=0,
            image_size=image_size,
        )
        return RunSettings(spec, self.threshold, self.prompt, MemoryConfig(self.memory))


CONTROL_NAMES = tuple(f.name for f in fields(Controls))
