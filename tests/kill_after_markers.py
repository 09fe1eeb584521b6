"""``python -m tests.kill_after_markers N ARGS...``: ``python -m refine ARGS...`` that kills
itself with SIGKILL right after writing its N-th completion marker (crash-resume test)."""

import os
import signal
import sys

import refine.batch
from refine.cli import main

_write = refine.batch.write_text_in_tree
_count = [0]


def _write_then_die(root: str, path: str, text: str) -> None:
    _write(root, path, text)
    _count[0] += 1
    if _count[0] >= int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    refine.batch.write_text_in_tree = _write_then_die
    sys.exit(main(sys.argv[2:]))
