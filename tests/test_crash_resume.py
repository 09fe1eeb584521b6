"""A run killed with SIGKILL and restarted with --resume ends byte-identical to a clean run."""

import signal
import subprocess
import sys

from tests.clips import run_args

EXAMPLES = "examples/data"


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
    # killed right after its 2nd marker: "ball" (2 expressions, processed first) is
    # complete, "birds" not begun — every time, not as a race would have it
    killed = subprocess.run(
        [sys.executable, "-m", "tests.kill_after_markers", "2", *run_args(EXAMPLES, out)],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sorted(p.name for p in (out / ".refine" / "ball").iterdir()) == ["0.json", "1.json"]
    assert not (out / ".refine" / "birds").exists()
    resumed = subprocess.run(cmd(out, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped 2 already complete" in resumed.stderr
    assert files(out) == files(clean)
    assert len(files(clean)) == 48
