"""Gradio app of refine (also the Hugging Face Spaces ``app_file``).

    python app.py [--host 127.0.0.1] [--port N] [--mevis-root DIR] [--stage1-dir DIR]

Opens without importing torch; SAM2 is loaded by the first Run. On Ctrl+C or SIGTERM it
stops serving and deletes the sessions' files. See README (App section).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from demo.config import parse_args
from demo.ui import build_app, launch_kwargs
from refine.errors import InputError


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (e.g. a container stopping) ends the app like Ctrl+C: cleanup runs."""
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = parse_args(argv)
        demo, callbacks = build_app(config)
    except InputError as err:
        logging.getLogger("app").error("%s", err)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
