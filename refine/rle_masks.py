"""Binary masks kept compactly, frame by frame, as COCO run-length encodings.

A video's masks at full resolution are large (100 frames of 1280×720 bool: 92 MB per
object); their run-length encodings are a few kilobytes per frame. SAM2's per-object
masks and the stage-1 unions are stored this way as they arrive and decoded one frame
at a time when needed, so memory does not grow with the number of expressions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np


class RleMasks:
    """T frames of K object masks [H, W] bool, each frame stored as K COCO RLEs.

    ``masks[t] = m`` stores frame ``t`` (m: [K, H, W] bool); ``masks[t]`` decodes it
    ([K, H, W] bool; all False if never stored). ``union(t)`` is the OR over objects.
    """

    def __init__(self, num_frames: int, num_objects: int, height: int, width: int) -> None:
        self.shape = (num_frames, num_objects, height, width)
        self._frames: list[list[dict] | None] = [None] * num_frames

    @classmethod
    def from_array(cls, masks: np.ndarray) -> RleMasks:
        """Encode masks [T, K, H, W] bool."""
        masks = np.asarray(masks, dtype=bool)
        out = cls(*masks.shape)
        for t, m in enumerate(masks):
            out[t] = m
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, t: int, masks: np.ndarray) -> None:
        from pycocotools import mask as cocomask

        k, h, w = self.shape[1:]
        masks = np.asarray(masks, dtype=bool)
        if masks.shape != (k, h, w):
            raise ValueError(f"frame {t}: masks {masks.shape}, expected {(k, h, w)}")
        if k == 0:
            self._frames[t] = []
            return
        # pycocotools wants column-major uint8 [H, W, K]
        self._frames[t] = cocomask.encode(np.asfortranarray(masks.transpose(1, 2, 0), np.uint8))

    def __getitem__(self, t: int) -> np.ndarray:
        from pycocotools import mask as cocomask

        k, h, w = self.shape[1:]
        rles = self._frames[t]
        if rles is None or k == 0:
            return np.zeros((k, h, w), dtype=bool)
        with warnings.catch_warnings():
            # pycocotools 2.0.x under numpy 2 warns about __array__(copy=...) on every decode
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            masks = cocomask.decode(rles)
        return masks.transpose(2, 0, 1).astype(bool)

    def union(self, t: int) -> np.ndarray:
        """OR over objects of frame ``t``: [H, W] bool."""
        return self[t].any(axis=0)

    @staticmethod
    def of(masks: RleMasks | np.ndarray) -> RleMasks:
        """``masks`` as RleMasks (a [T, K, H, W] bool array is encoded)."""
        return masks if isinstance(masks, RleMasks) else RleMasks.from_array(masks)

    def to_array(self) -> np.ndarray:
        """All frames: [T, K, H, W] bool."""
        out = np.zeros(self.shape, dtype=bool)
        for t in range(len(self)):
            out[t] = self[t]
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of the encoded counts."""
        return sum(len(r["counts"]) for f in self._frames if f for r in f)


class LazyFrames:
    """A read-only sequence of T frames [H, W] made on demand by ``frame(t)``."""

    def __init__(self, num_frames: int, frame: Callable[[int], np.ndarray]) -> None:
        self._n = num_frames
        self._frame = frame

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, t: int) -> np.ndarray:
        if not 0 <= t < self._n:
            raise IndexError(t)
        return self._frame(t)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self._frame(t) for t in range(self._n))
