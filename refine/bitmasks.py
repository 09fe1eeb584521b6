"""Masks of a video held a bit a pixel (an eighth of a bool array), read a frame at a time.

:class:`BitMasks` is how the app keeps [T, H, W] masks it shows frame by frame (cached SAM2
runs, the stage-1 preview): ``masks[t]`` unpacks one frame, ``masks.array()`` (or
``np.asarray(masks)``) all of them, for metrics and exports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


class BitMasks:
    """T bool masks of H x W, packed: ``bits`` uint8 [T, ceil(H·W / 8)]."""

    def __init__(self, bits: np.ndarray, size: tuple[int, int]) -> None:
        if bits.ndim != 2 or bits.dtype != np.uint8 or bits.shape[1] != -(-size[0] * size[1] // 8):
            raise ValueError(f"bits {bits.dtype} {list(bits.shape)} do not hold masks of {size}")
        self.bits, self.size = bits, (int(size[0]), int(size[1]))

    @classmethod
    def pack(cls, masks: np.ndarray) -> BitMasks:
        """From bool [T, H, W]."""
        t, h, w = masks.shape
        return cls(np.packbits(masks.reshape(t, h * w).astype(bool, copy=False), axis=1), (h, w))

    @classmethod
    def zeros(cls, frames: int, size: tuple[int, int]) -> BitMasks:
        return cls(np.zeros((frames, -(-size[0] * size[1] // 8)), np.uint8), size)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.bits), *self.size)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    def __len__(self) -> int:
        return len(self.bits)

    def __getitem__(self, t: int) -> np.ndarray:
        """Frame ``t``: bool [H, W]."""
        h, w = self.size
        return np.unpackbits(self.bits[t], count=h * w).reshape(h, w).view(bool)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[t] for t in range(len(self)))

    def array(self) -> np.ndarray:
        """Every frame: bool [T, H, W]."""
        t, (h, w) = len(self.bits), self.size
        return np.unpackbits(self.bits, axis=1, count=h * w).reshape(t, h, w).view(bool)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self.array()
        return a if dtype is None else a.astype(dtype)


class FrameView:
    """T masks of H x W computed a frame at a time by ``frame(t)`` → bool [H, W]:
    ``[t]``, iteration, ``shape`` and ``np.asarray`` like a [T, H, W] array."""

    def __init__(self, frame: Callable[[int], np.ndarray], shape: tuple[int, int, int]) -> None:
        self.frame, self.shape = frame, shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        if not -len(self) <= t < len(self):
            raise IndexError(t)
        return self.frame(t % len(self))

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.frame(t) for t in range(len(self)))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        for t in range(len(self)):
            out[t] = self.frame(t)
        return out if dtype is None else out.astype(dtype)
