"""SAM2.1 model sizes, checkpoint resolution and the lazily built, cached video predictor.

``torch`` and ``sam2`` are imported only when a model is first needed.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from refine.errors import InputError
from refine.names import check_device_name

log = logging.getLogger(__name__)

# size → (hydra config, checkpoint file, model-hub repo)
MODEL_SIZES: dict[str, tuple[str, str, str]] = {
    "tiny": (
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        "sam2.1_hiera_tiny.pt",
        "facebook/sam2.1-hiera-tiny",
    ),
    "small": (
        "configs/sam2.1/sam2.1_hiera_s.yaml",
        "sam2.1_hiera_small.pt",
        "facebook/sam2.1-hiera-small",
    ),
    "base_plus": (
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
        "facebook/sam2.1-hiera-base-plus",
    ),
    "large": (
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        "sam2.1_hiera_large.pt",
        "facebook/sam2.1-hiera-large",
    ),
}
CHECKPOINT_DIR = os.environ.get(
    "REFINE_CHECKPOINTS", os.path.join(os.path.dirname(os.path.dirname(__file__)), "checkpoints")
)
RANDOM_WEIGHTS_WARNING = (
    "WARNING: SAM2 is running with RANDOM WEIGHTS (no checkpoint). Its masks are MEANINGLESS; "
    "use this only to test the software."
)


SAM2_IMAGE_SIZE = 1024  # the input size of every SAM2.1 config


@dataclass(frozen=True)
class ModelSpec:
    """Which SAM2 to build. ``checkpoint=None`` with ``random_weights`` gives an untrained model
    seeded with ``seed``; ``image_size`` (a multiple of 32) overrides the input size;
    ``fill_holes`` > 0 fills background holes of at most that many pixels in each frame's
    low-resolution mask, as sam2 with its CUDA extension does (the challenge used 8)."""

    size: str = "large"
    device: str = "cpu"
    checkpoint: str | None = None
    random_weights: bool = False
    seed: int = 0
    image_size: int | None = None
    fill_holes: int = 0

    @property
    def input_size(self) -> int:
        """SAM2's square input size: ``image_size``, else the configs' 1024."""
        return self.image_size or SAM2_IMAGE_SIZE

    def __post_init__(self) -> None:
        if self.size not in MODEL_SIZES:
            raise InputError(f"unknown SAM2 size {self.size!r}; choose one of {list(MODEL_SIZES)}")
        if self.image_size is not None and (self.image_size <= 0 or self.image_size % 32):
            raise InputError(f"image size {self.image_size} must be a positive multiple of 32")
        if self.random_weights and self.checkpoint:
            raise InputError("give either a checkpoint or random weights, not both")
        if isinstance(self.fill_holes, bool) or not isinstance(self.fill_holes, int):
            raise InputError(
                f"--fill-holes must be a whole number of pixels, got {self.fill_holes!r}"
            )
        if self.fill_holes < 0:
            raise InputError(f"--fill-holes must be ≥ 0 pixels, got {self.fill_holes}")


HUB_CONNECT_TIMEOUT_S = 5.0


def download_command(size: str) -> str:
    return f"python checkpoints/download.py {size}"


def weights_unavailable(size: str, reason: str) -> InputError:
    """The one-line error for missing SAM2.1 weights: the model, why, and the ways to
    provide them (no server paths)."""
    _, filename, repo = MODEL_SIZES[size]
    return InputError(
        f"SAM2.1 {size} weights ({repo}) are not available: {reason}. Provide them by any of: "
        f"`{download_command(size)}` (puts {filename} in checkpoints/), "
        f"{filename} in $REFINE_CHECKPOINTS, --checkpoint PATH, a reachable model hub "
        "(HF_ENDPOINT), or choose random weights to try the software (meaningless masks)"
    )


def resolve_checkpoint(
    size: str, checkpoint: str | None = None, allow_download: bool = True
) -> str:
    """Path of the SAM2.1 checkpoint for ``size``, in this order: an explicit ``checkpoint``
    (must exist); ``$REFINE_CHECKPOINTS/<file>`` or ``checkpoints/<file>``; the model hub's
    cache; a download from the model hub (``facebook/sam2.1-hiera-<size>``, huggingface_hub,
    with a progress bar on stderr) when the hub answers within
    :data:`HUB_CONNECT_TIMEOUT_S`. Otherwise raises :func:`weights_unavailable`.
    """
    if checkpoint:
        if not os.path.isfile(checkpoint):
            raise InputError(f"{checkpoint}: checkpoint file does not exist")
        return checkpoint
    _, filename, repo = MODEL_SIZES[size]
    local = os.path.join(CHECKPOINT_DIR, filename)
    if os.path.isfile(local):
        return local
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return hf_hub_download(repo_id=repo, filename=filename, local_files_only=True)
    except LocalEntryNotFoundError:
        pass  # not in the hub cache yet
    if not allow_download:
        raise weights_unavailable(size, "it is not in checkpoints/ nor in the model-hub cache")
    reason = hub_unreachable_reason()
    if reason is None:
        try:
            return hf_hub_download(repo_id=repo, filename=filename)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            reason = f"the download failed ({type(err).__name__})"
            log.info("model-hub download of %s from %s failed: %s", filename, repo, err)
    raise weights_unavailable(size, reason)


def hub_unreachable_reason(timeout_s: float = HUB_CONNECT_TIMEOUT_S) -> str | None:
    """None when the model hub (``HF_ENDPOINT``) accepts a TCP connection within
    ``timeout_s``, else why not. A quick check: huggingface_hub itself retries a refused
    connection for ~25 s before giving up."""
    import socket
    import urllib.parse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "the model hub is switched off (HF_HUB_OFFLINE)"
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return None
    except OSError as err:
        return (
            f"the model hub {url.hostname} cannot be reached ({err.strerror or type(err).__name__})"
        )


_cache: dict[ModelSpec, object] = {}
_lock = threading.Lock()


def get_predictor(spec: ModelSpec):  # -> sam2.sam2_video_predictor.SAM2VideoPredictor
    """The predictor for ``spec``, built on first use and cached per process."""
    with _lock:
        if spec not in _cache:
            _cache[spec] = build_predictor(spec)
        return _cache[spec]


def build_predictor(spec: ModelSpec):  # -> SAM2VideoPredictor
    """Build a SAM2 video predictor (heavy: imports torch and sam2)."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from refine.fill_holes import enable_hole_filling
    from refine.sam2_patches import patch_predictor

    config, _, _ = MODEL_SIZES[spec.size]
    check_device(spec.device)
    overrides = [f"++model.image_size={spec.image_size}"] if spec.image_size else []
    if spec.random_weights:
        log.warning(RANDOM_WEIGHTS_WARNING)
        ckpt = None
    else:
        ckpt = resolve_checkpoint(spec.size, spec.checkpoint)
    torch.manual_seed(spec.seed)
    predictor = build_sam2_video_predictor(
        config, ckpt, device=spec.device, hydra_overrides_extra=overrides
    )
    # sam2's default build sets fill_hole_area = 8, which needs its CUDA extension: without
    # it sam2 warns on every frame and fills nothing, so its masks then differ from those of
    # a build with the extension (the challenge's) by background holes of ≤ 8 px. refine
    # fills holes only when asked (spec.fill_holes, --fill-holes), with the extension or
    # with OpenCV's connected components (refine.fill_holes) — the same masks either way.
    enable_hole_filling(predictor, spec.fill_holes)
    patch_predictor(predictor)
    return predictor


def check_device(device: str) -> None:
    """Raise InputError if ``device`` is not a device name or does not exist here."""
    import torch

    check_device_name(device)
    if device == "cpu":
        return
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("device 'mps' is not available on this machine")
        return
    if device.startswith("cuda"):
        n = torch.cuda.device_count()
        idx = int(device.split(":")[1]) if ":" in device else 0
        if idx >= n:
            raise InputError(f"device {device!r} does not exist ({n} CUDA devices visible)")
        return
    raise InputError(f"unknown device {device!r}; use cpu, cuda:N or mps")


def available_devices() -> list[str]:
    """Devices that exist here: cuda:0 …, mps, cpu."""
    import torch

    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return [*devices, "cpu"]
