"""Starting the app in a subprocess and waiting for it (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/ → the repository


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_app(
    args: Sequence[str] = (),
    port: int | None = None,
    log_path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen, str]:
    """``python app.py --host 127.0.0.1 --port PORT *args`` in a subprocess: (process, url).

    Output goes to ``log_path`` (or is discarded); ``env`` adds to the environment. The
    caller must stop the process.
    """
    port = port or free_port()
    cmd = [sys.executable, os.path.join(REPO, "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [*cmd, *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        if log_path:
            out.close()
    return proc, f"http://127.0.0.1:{port}/"


def wait_until_up(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> float:
    """Poll ``url`` until it answers 200; returns the seconds waited. Raises RuntimeError
    if the process exits or the timeout passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop_app(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the app process (kill it if it does not exit in ``timeout`` s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def serve(config) -> Iterator[tuple[str, object]]:
    """The app of ``config`` (a demo.config.AppConfig) served in this process on a free
    127.0.0.1 port, with the app's launch arguments: yields (url, callbacks); closed after."""
    from demo.ui import build_app, launch_kwargs

    demo, cb = build_app(config)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_kwargs(config),
    )
    try:
        yield f"http://127.0.0.1:{port}/", cb
    finally:
        demo.close()
        cb.close()
