"""scripts/bench_app.py runs against the app as it is (its API arguments follow the page)."""

from __future__ import annotations

import subprocess
import sys

from tests.launch import REPO


def test_bench_app_runs_its_handler_and_client_benchmarks():
    args = ["--frames", "20", "--trials", "2", "--starts", "0", "--no-browser"]
    out = subprocess.run(
        [sys.executable, "scripts/bench_app.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "gradio_client round trip: median" in out.stdout
