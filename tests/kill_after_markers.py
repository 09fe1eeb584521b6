"""``python -m tests.kill_after_markers N ARGS...``: ``python -m refine ARGS...`` that kills
itself with SIGKILL right after writing its N-th completion marker (crash-resume test)."""

import os
import signal
import sys

import refine.batch
from refine.cli import main

_write = refine.batch.write_text_atomic
_count = [0]


def _write_then_die(path: str, text: str) -> None:
    _write(path, text)
    _count[0] += 1
    if _count[0] >= int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    refine.batch.write_text_atomic = _write_then_die
    sys.exit(main(sys.argv[2:]))
