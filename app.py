"""Gradio app of refine (also the Hugging Face Spaces ``app_file``).

    python app.py [--host 127.0.0.1] [--port N] [--mevis-root DIR] [--stage1-dir DIR]

Opens without importing torch; SAM2 is loaded by the first Run. On Ctrl+C or SIGTERM it
stops serving and deletes the sessions' files and Gradio's copies of uploads and outputs
(kept in a folder of this process, unless $GRADIO_TEMP_DIR names one). See README (App
section).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from types import FrameType

GRADIO_TEMP_ENV = "GRADIO_TEMP_DIR"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (e.g. a container stopping) ends the app like Ctrl+C: cleanup runs."""
    raise SystemExit(0)


def _own_gradio_temp_dir() -> str | None:
    """Point Gradio's temp folder (uploads, outputs, its empty per-upload files) at a new
    folder of this process, removed at shutdown; None when $GRADIO_TEMP_DIR is set. Must
    run before gradio is imported: some of its modules read the variable at import."""
    if os.environ.get(GRADIO_TEMP_ENV):
        return None
    folder = tempfile.mkdtemp(prefix="refine-gradio-")
    os.environ[GRADIO_TEMP_ENV] = folder
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    gradio_temp = _own_gradio_temp_dir()
    from demo.config import parse_args
    from demo.ui import build_app, launch_kwargs
    from refine.errors import InputError
    from refine.files import remove_tree

    try:
        config = parse_args(argv)
        demo, callbacks = build_app(config)
    except InputError as err:
        logging.getLogger("app").error("%s", err)
        if gradio_temp:
            remove_tree(gradio_temp)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        demo.launch(
            server_name=config.host,
            server_port=config.port,
            show_error=True,
            footer_links=["api", "gradio"],
            **launch_kwargs(config),
        )
    finally:  # Ctrl+C or SIGTERM: stop serving, then delete every session's files
        demo.close()
        callbacks.close()
        if gradio_temp:
            remove_tree(gradio_temp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
