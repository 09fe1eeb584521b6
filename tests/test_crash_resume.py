"""A run killed with SIGKILL and restarted with --resume ends byte-identical to a clean run."""

import os
import signal
import subprocess
import sys
import time

from tests.clips import run_args

EXAMPLES = os.path.abspath("examples/data")


def cmd(out, *extra):
    return [sys.executable, "-m", "refine", *run_args(EXAMPLES, out, *extra)]


def files(root):
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".refine" not in p.parts
    }


def test_kill_minus_nine_then_resume_is_byte_identical(tmp_path):
    clean = tmp_path / "clean"
    assert subprocess.run(cmd(clean), capture_output=True).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / ".refine" / "ball" / "1.json"  # "ball" is processed before "birds"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / ".refine" / "birds").exists()
    resumed = subprocess.run(cmd(out, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped 2 already complete" in resumed.stderr
    assert files(out) == files(clean)
    assert len(files(clean)) == 48
