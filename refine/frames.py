"""Video frames held compactly and turned into SAM2 input on demand.

SAM2's ``init_state`` decodes every frame up front into float32 at image_size²
(≈12 GB for 1,000 frames at 1024). A :class:`FrameSource` instead keeps the image
files' paths or their encoded bytes (decoded when needed), or uint8 frames at source
resolution, and builds
the normalised [3, S, S] float32 tensor for one frame when SAM2 asks for it, with
exactly SAM2's preprocessing (PIL resize, /255 in float64, then (x − mean)/std in float32).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from refine.errors import InputError

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


class FrameSource:
    """T frames of one video: ``len()``, ``[t]`` → normalised torch tensor [3, S, S].

    Build with :meth:`from_paths` (JPEG files, decoded on demand),
    :meth:`from_encoded` (JPEG/PNG bytes in memory, decoded on demand) or
    :meth:`from_arrays` (uint8 [T, H, W, 3] RGB in memory).
    """

    def __init__(
        self,
        paths: Sequence[str | bytes] | None,
        arrays: np.ndarray | None,
        height: int,
        width: int,
    ) -> None:
        self._paths = list(paths) if paths is not None else None  # file paths or encoded bytes
        self._arrays = arrays
        self.height = height
        self.width = width
        self.decode_count = 0
        # feature caches of this video, one per (model, precision) (filled by refine.propagation)
        self.caches: dict[object, object] = {}

    @classmethod
    def from_paths(cls, paths: Sequence[str]) -> FrameSource:
        """Frames from image files; all must share the first frame's size."""
        if not paths:
            raise InputError("the video has no frames")
        width, height = _image_size(paths[0])
        return cls(paths, None, height, width)

    @classmethod
    def from_encoded(cls, images: Sequence[bytes], height: int, width: int) -> FrameSource:
        """Frames from encoded JPEG/PNG images in memory (e.g. a zip's entries), each
        decoded when needed exactly as from a file; all must be ``width`` x ``height``."""
        if not images:
            raise InputError("the video has no frames")
        return cls([bytes(b) for b in images], None, height, width)

    @classmethod
    def from_arrays(cls, frames: np.ndarray) -> FrameSource:
        """Frames from a uint8 array [T, H, W, 3] (RGB)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
            raise InputError(
                f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
            )
        return cls(None, frames, frames.shape[1], frames.shape[2])

    def __len__(self) -> int:
        return len(self._paths) if self._paths is not None else len(self._arrays)

    @property
    def nbytes(self) -> int:
        """Bytes of frame data held in memory (0 for frames read from files)."""
        if self._arrays is not None:
            return int(self._arrays.nbytes)
        return sum(len(p) for p in self._paths if isinstance(p, bytes))

    def rgb(self, t: int) -> np.ndarray:
        """Frame ``t`` as uint8 [H, W, 3] at source resolution."""
        self.decode_count += 1
        if self._arrays is not None:
            return self._arrays[t]
        where = self._paths[t] if isinstance(self._paths[t], str) else f"frame {t}"
        with _open(self._paths[t], where) as img:
            arr = np.asarray(img.convert("RGB"))
        if arr.shape[:2] != (self.height, self.width):
            raise InputError(
                f"{where}: frame is {arr.shape[1]}x{arr.shape[0]}, but the video's "
                f"first frame is {self.width}x{self.height}"
            )
        return arr

    def as_array(self) -> np.ndarray:
        """Every frame decoded: uint8 [T, H, W, 3] (for small clips and tests)."""
        return np.stack([self.rgb(t) for t in range(len(self))])

    def model_input(self, t: int, image_size: int):  # -> torch.Tensor
        """Frame ``t`` resized to image_size² and normalised: torch float32 [3, S, S]."""
        import torch

        if self._arrays is not None:
            img = Image.fromarray(self._arrays[t])
            self.decode_count += 1
        else:
            img = Image.fromarray(self.rgb(t))
        resized = np.array(img.resize((image_size, image_size))) / 255.0
        x = torch.from_numpy(resized).permute(2, 0, 1).to(torch.float32)
        mean = torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
        std = torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]
        return (x - mean) / std

    def bind(self, image_size: int) -> BoundFrames:
        """A view that SAM2 can index like its ``images`` tensor."""
        return BoundFrames(self, image_size)


class BoundFrames:
    """``images`` for a SAM2 inference state: ``[t]`` → [3, S, S] float32 on demand."""

    def __init__(self, source: FrameSource, image_size: int) -> None:
        self.source = source
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, t: int):  # -> torch.Tensor
        if not 0 <= t < len(self.source):
            raise IndexError(t)
        return self.source.model_input(t, self.image_size)


def _open(source: str | bytes, where: str | None = None) -> Image.Image:
    """PIL image of a file path or of encoded bytes; ``where`` names it in errors."""
    try:
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{where or source}: unreadable image ({err})") from err


def _image_size(path: str) -> tuple[int, int]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: frame file is missing")
    with _open(path) as img:
        return img.size
