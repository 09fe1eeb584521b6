"""The overlay image output (demo.cached_image): a file Gradio serves is never seen
partly written while the same image is shown again (issue #17 finding 8, Gradio #8878)."""

from __future__ import annotations

import threading
import time

import gradio as gr
import numpy as np

from demo.cached_image import serve_arrays_atomically


def _image(seed: int = 0) -> np.ndarray:
    """A noisy (256, 256, 3) uint8 image: a JPEG of ~100 KB, slow enough to write."""
    return np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)


def _torn_reads(component: gr.Image, seconds: float = 2.0) -> tuple[int, int]:
    """Show the same image over and over in one thread while another reads its file:
    (reads that saw fewer bytes than the image has, reads)."""
    rgb = _image()
    path = component.postprocess(rgb).path
    with open(path, "rb") as f:
        size = len(f.read())
    stop = threading.Event()

    def show() -> None:
        while not stop.is_set():
            component.postprocess(rgb)

    writer = threading.Thread(target=show)
    writer.start()
    torn = reads = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            with open(path, "rb") as f:
                torn += len(f.read()) != size
            reads += 1
    finally:
        stop.set()
        writer.join()
    return torn, reads


def test_a_shown_image_is_never_read_partly_written(tmp_path):
    component = serve_arrays_atomically(gr.Image(type="numpy", format="jpeg"))
    component.GRADIO_CACHE = str(tmp_path)
    torn, reads = _torn_reads(component)
    assert reads > 100 and torn == 0


def test_the_file_is_the_one_gradio_would_write(tmp_path):
    ours = serve_arrays_atomically(gr.Image(type="numpy", format="jpeg"))
    theirs = gr.Image(type="numpy", format="jpeg")
    ours.GRADIO_CACHE = str(tmp_path / "ours")
    theirs.GRADIO_CACHE = str(tmp_path / "theirs")
    a, b = ours.postprocess(_image(1)), theirs.postprocess(_image(1))
    assert a.path.startswith(ours.GRADIO_CACHE) and a.orig_name == b.orig_name == "image.jpeg"
    assert a.path.split("/")[-2] == b.path.split("/")[-2]  # the same content-addressed name
    with open(a.path, "rb") as fa, open(b.path, "rb") as fb:
        assert fa.read() == fb.read()
    assert ours.postprocess(None) is None
