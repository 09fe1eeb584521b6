"""A bounded LRU cache of SAM2 image-encoder outputs, shared by every expression of a video."""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_CACHE_MB = 4096.0
"""Default bound of a video's feature cache: ~35 frames at 1024², the whole of most
videos at small input sizes."""


def _tensors(entry):
    image, backbone = entry
    yield image
    for key in ("backbone_fpn", "vision_pos_enc"):
        yield from backbone[key]


def entry_bytes(entry, shared: tuple = ()) -> int:
    """Bytes held by one cached (image, backbone_out) entry, not counting ``shared`` tensors."""
    return sum(
        t.numel() * t.element_size() for t in _tensors(entry) if not any(t is s for s in shared)
    )


def torch_equal(a, b) -> bool:
    import torch

    return a.device == b.device and bool(torch.equal(a, b))


def _move(entry, device):
    image, backbone = entry
    return image.to(device), {
        "backbone_fpn": [t.to(device) for t in backbone["backbone_fpn"]],
        "vision_pos_enc": [t.to(device) for t in backbone["vision_pos_enc"]],
    }


class FeatureCache:
    """frame index → SAM2 ``(image, backbone_out)``, least recently used evicted first.

    ``max_mb`` bounds the bytes held (None = unbounded; 0 = keep nothing).
    ``offload`` keeps entries in CPU memory and moves them to ``device`` when read:
    the values are unchanged, only where they live. SAM2's positional encodings
    (``vision_pos_enc``, 3/4 of an entry at 1024²) depend only on the image size, so
    one copy is kept and shared by every entry whose encodings are equal to it.
    """

    def __init__(self, max_mb: float | None = None, offload: bool = False, device: str = "cpu"):
        self.max_bytes = None if max_mb is None else int(max_mb * 2**20)
        self.offload = offload
        self.device = device
        self._entries: OrderedDict[int, tuple[object, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._pos_enc: list | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, frame_idx: int):
        item = self._entries.get(frame_idx)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(frame_idx)
        entry = item[0]
        return _move(entry, self.device) if self.offload else entry

    def _share_pos_enc(self, entry):
        image, backbone = entry
        pos = backbone["vision_pos_enc"]
        ref = self._pos_enc
        if ref is not None and len(ref) == len(pos):
            if all(a.shape == b.shape and torch_equal(a, b) for a, b in zip(ref, pos)):
                return (image, {**backbone, "vision_pos_enc": ref})
        self._pos_enc = list(pos)
        return entry

    def put(self, frame_idx: int, entry) -> None:
        # keep only what SAM2's _get_image_feature reads (drops e.g. "vision_features")
        entry = _move(entry, "cpu" if self.offload else entry[0].device)
        entry = self._share_pos_enc(entry)
        size = entry_bytes(entry, tuple(self._pos_enc or ()))
        if self.max_bytes is not None and size > self.max_bytes:
            return
        if frame_idx in self._entries:
            self.bytes -= self._entries.pop(frame_idx)[1]
        self._entries[frame_idx] = (entry, size)
        self.bytes += size
        while self.max_bytes is not None and self.bytes > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self.bytes -= old
            self.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
        self._pos_enc = None


FEATURE_BYTES_PER_INPUT_PIXEL = 112
"""Bytes one cached frame takes per pixel of SAM2's square input, in float32 (the image
and the three 256-channel feature levels at 1/4, 1/8 and 1/16; ~117 MB at 1024²)."""


def estimated_cache_bytes(frames: int, image_size: int, max_mb: float | None) -> int:
    """What a video's cache may come to: ``frames`` entries at ``image_size``², at most
    ``max_mb`` (None: unbounded)."""
    full = frames * FEATURE_BYTES_PER_INPUT_PIXEL * image_size * image_size
    return full if max_mb is None else min(full, int(max_mb * 2**20))
