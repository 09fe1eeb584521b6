"""An image output whose files never change while Gradio serves them.

Gradio 6.31 stores an output image at a name made from its bytes
(``<cache>/<sha256>/image.jpeg``) and writes it in place every time the image is shown
again (``processing_utils.save_pil_to_cache``). When two requests show the same image
at once (a slider moved back and forth, two sessions on the same example), one rewrite
truncates the file while another response streams it, and the page gets a truncated
image ("Too little data for declared Content-Length", Gradio issue #8878, open).
:func:`serve_arrays_atomically` makes an image output write a new image under a temporary
name and rename it into place, and reuse a file that is already there, so a served file is
only ever complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from gradio import processing_utils
from gradio.data_classes import Base64ImageData, ImageData
from PIL import Image


def save_image_atomically(rgb: np.ndarray, cache_dir: str, fmt: str) -> str:
    """Path of the image ``rgb`` (H, W, 3) uint8 encoded as ``fmt`` in ``cache_dir``, at
    Gradio's content-addressed name; written once, complete, whatever runs concurrently."""
    data = processing_utils.encode_pil_to_bytes(Image.fromarray(rgb), fmt)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"image.{fmt}"
    if path.exists():
        os.utime(path)  # Gradio's delete_cache ages files by ctime: this one is in use again
        return str(path)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=".image-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(path)


def serve_arrays_atomically(image: gr.Image) -> gr.Image:
    """``image`` with its ``postprocess`` storing uint8 arrays by
    :func:`save_image_atomically` rather than Gradio's in-place rewrite (other values, and
    watermarked images, go to Gradio's own). The instance's method is replaced, not the
    class: a ``gr.Image`` subclass makes Gradio write a ``.pyi`` stub next to this module
    at import."""
    gradio_postprocess = image.postprocess

    def postprocess(
        value: np.ndarray | Image.Image | str | Path | None,
    ) -> ImageData | Base64ImageData | None:
        if isinstance(value, np.ndarray) and value.dtype == np.uint8:
            if image.watermark.watermark is None:
                value = save_image_atomically(value, image.GRADIO_CACHE, image.format)
        return gradio_postprocess(value)

    image.postprocess = postprocess
    return image
