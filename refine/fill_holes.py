"""SAM2's small-hole filling without its CUDA extension (design §5, ``--fill-holes N``).

sam2 fills background holes of at most ``fill_hole_area`` pixels in each tracked frame's
low-resolution mask logits (``fill_holes_in_mask_scores``, after ``track_step``), which
needs the connected components of its CUDA extension. The challenge's build had that
extension and used ``fill_hole_area = 8``; without it sam2 warns on every frame and fills
nothing. :func:`connected_components` is the same computation with OpenCV (8-connectivity,
the component's area at each of its pixels), so hole filling gives the same masks on any
device.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def has_cuda_extension() -> bool:
    """True when sam2 was built with its CUDA extension (``sam2._C``)."""
    return importlib.util.find_spec("sam2._C") is not None


def connected_components(mask):
    """8-connected components of binary masks, as sam2's ``get_connected_components``.

    mask: [N, 1, H, W] tensor (non-zero = foreground) → (labels, areas), both [N, 1, H, W]
    int32 on the mask's device: labels > 0 on foreground pixels (numbering differs from the
    CUDA kernel's; sam2 only tests ``labels > 0``), areas = the pixel count of the pixel's
    component on foreground, 0 on background.
    """
    import cv2
    import torch

    m = (mask != 0).to(torch.uint8).cpu().numpy()
    labels = np.zeros(m.shape, dtype=np.int32)
    areas = np.zeros(m.shape, dtype=np.int32)
    for i in range(m.shape[0]):
        _, lab, stats, _ = cv2.connectedComponentsWithStats(
            m[i, 0], connectivity=8, ltype=cv2.CV_32S
        )
        labels[i, 0] = lab
        areas[i, 0] = np.where(lab > 0, stats[lab, cv2.CC_STAT_AREA], 0)
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def enable_hole_filling(predictor, max_area: int) -> None:
    """Make ``predictor`` fill background holes of at most ``max_area`` pixels (0: off).

    Without sam2's CUDA extension, sam2's connected-components call is replaced by
    :func:`connected_components` (process-wide, idempotent; the extension's result and
    this one give the same filled masks).
    """
    if max_area < 0:
        raise ValueError(f"fill-holes area must be ≥ 0 pixels, got {max_area}")
    if max_area > 0 and not has_cuda_extension():
        import sam2.utils.misc as misc

        misc.get_connected_components = connected_components
    predictor.fill_hole_area = int(max_area)
