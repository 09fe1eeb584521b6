"""Temporary files of the app: one folder per session under one folder per process; a
session's folder goes when its tab closes, its state when Gradio drops it, and everything
at shutdown (SIGTERM included)."""

from __future__ import annotations

import glob
import os
import time

import pytest
from gradio_client import Client

from demo.config import EXAMPLES_ROOT
from demo.sessions import SessionStore
from refine.inspect import DataSource
from tests.launch import start_app, stop_app, wait_until_up

CONTROLS = ("tiny", "cpu", "random", "mask", 0.275, "sam2")
EXAMPLES = DataSource("examples", EXAMPLES_ROOT, os.path.join(EXAMPLES_ROOT, "stage1"))


def _files(folder: str) -> list[str]:
    return [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]


def _wait_for(condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_session_store_folders_end_discard_close(tmp_path):
    store = SessionStore(parent=str(tmp_path))
    a = store.get(None, "hash-a")
    assert store.get(None, "hash-a") is a and store.get(a, "other") is a
    b = store.get(None, "hash-b")
    anonymous = store.get(None)
    folders = {s.workdir for s in (a, b, anonymous)}
    assert len(folders) == 3 and all(os.path.dirname(f) == store.root for f in folders)
    a.open_case(EXAMPLES.load_case("birds"), "0")
    with open(os.path.join(a.workdir, "x.zip"), "wb") as f:
        f.write(b"x")
    store.end("hash-a")  # tab closed: files go, the session stays (Gradio keeps its state)
    assert not os.path.exists(a.workdir) and a.case is not None
    store.end("never-seen")  # nothing to do
    store.discard(b)  # Gradio dropped b's state
    assert not os.path.exists(b.workdir) and store.get(None, "hash-b") is not b
    store.discard(None)
    store.close()
    assert not os.path.exists(store.root) and a.case is None
    with pytest.raises(RuntimeError, match="is closed"):
        store.get(None, "hash-c")


def _run_case(client: Client, video: str, exp_id: str) -> list[str]:
    client.predict(f"{video}/{exp_id}", *CONTROLS, api_name="/open_example")
    client.predict(exp_id, *CONTROLS, 2 / 3, 0.5, 0, api_name="/run")
    files, _ = client.predict(api_name="/downloads")
    return files


def test_app_removes_a_closed_sessions_folder_and_everything_at_shutdown(tmp_path):
    env = {"TMPDIR": str(tmp_path), "GRADIO_HEARTBEAT_INTERVAL": "0.25"}
    proc, url = start_app(["--fake-sam2"], log_path=str(tmp_path / "app.log"), env=env)
    try:
        wait_until_up(url, proc, timeout=120)
        (root,) = glob.glob(str(tmp_path / "refine-app-*"))
        first = Client(url, verbose=False, download_files=str(tmp_path / "dl1"))
        assert len(_run_case(first, "birds", "0")) == 4
        (folder,) = os.listdir(root)
        names = sorted(os.path.basename(f) for f in _files(os.path.join(root, folder)))
        assert any(n.endswith(".zip") for n in names) and sum(n.endswith(".mp4") for n in names)
        second = Client(url, verbose=False, download_files=str(tmp_path / "dl2"))
        _run_case(second, "ball", "0")
        assert len(os.listdir(root)) == 2
        first.close()  # the "tab" closes: its heartbeat stops, Gradio runs unload
        assert _wait_for(lambda: os.listdir(root) != [] and folder not in os.listdir(root))
        assert len(os.listdir(root)) == 1  # the other session keeps its files
        (gradio_cache,) = glob.glob(str(tmp_path / "refine-gradio-*"))  # this process's
        assert _files(gradio_cache)  # Gradio's copies of uploads/outputs, until shutdown
    finally:
        stop_app(proc)  # SIGTERM
    log = (tmp_path / "app.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert not os.path.exists(root)
    assert not os.path.exists(gradio_cache)  # all of Gradio's files, empty ones too
    assert "Traceback" not in log
    second.close()
