"""The served app under the finding's uploads (#17, finding 2): each session uploads 172
black 1080p frames (228 KiB that held 4.0 GiB before); with ``--max-memory-gb 0.2`` the
server's memory stays within the budget (plus the work of one upload at a time), the
upload that cannot fit is told the server is busy, and another session's frame moves are
answered within 2 s throughout."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client, handle_file

from tests.launch import start_app, stop_app, wait_until_up
from tests.test_session_memory import black_upload

CONTROLS = ("tiny", "cpu", "random", "mask", 0.275, "sam2")
BUDGET_GB = 0.2
UPLOADS = 5  # each holds ~45 MiB (its preview, a bit a pixel): the fifth does not fit
GIB = 2**30


def _kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


@pytest.mark.timeout(600)
def test_uploads_stay_within_the_budget_and_other_sessions_are_answered(tmp_path):
    frames, npz = black_upload(str(tmp_path), 172, (1080, 1920))
    log = tmp_path / "app.log"
    args = ["--fake-sam2", "--max-memory-gb", str(BUDGET_GB), "--max-pixels", str(1920 * 1080)]
    # glibc's default of 8 arenas per core keeps freed work buffers of Gradio's threads:
    # the peak above the budget varied from 0.46 to 0.63 GiB without this, 0.36-0.47 with it
    proc, url = start_app(args, log_path=str(log), env={"MALLOC_ARENA_MAX": "2"})
    latencies: list[float] = []
    stop = threading.Event()

    def look(client: Client) -> None:  # a user moving the frame slider every second
        t = 0
        while not stop.is_set():
            t = 1 - t  # every case here has frames 0 and 1
            start = time.monotonic()
            client.predict(t, api_name="/show_frame")
            latencies.append(time.monotonic() - start)
            stop.wait(1.0)

    def looking(client: Client) -> None:
        threading.Thread(target=look, args=(client,), daemon=True).start()

    try:
        wait_until_up(url, proc, timeout=120)
        watcher = Client(url, verbose=False)
        watcher.predict("birds/0", *CONTROLS, api_name="/open_example")
        baseline = _kib(proc.pid, "VmRSS") * 1024
        looking(watcher)
        statuses = []
        for _ in range(UPLOADS):  # one new session each; the others keep using theirs
            client = Client(url, verbose=False)
            out = client.predict(
                handle_file(frames), handle_file(npz), *CONTROLS, None, None,
                api_name="/open_upload",
            )  # fmt: skip
            statuses.append(" ".join(str(v) for v in out if isinstance(v, str)))
            looking(client)
        stop.wait(1.0)
        peak = _kib(proc.pid, "VmHWM") * 1024
    finally:
        stop.set()
        stop_app(proc)
    busy = [s for s in statuses if "The server is busy" in s]
    assert len(busy) == 1 and "busy" not in " ".join(statuses[:-1]), statuses
    assert "try a smaller clip" in busy[0].lower() and "/tmp" not in busy[0]
    assert len(latencies) > 20 and max(latencies) < 2.0, sorted(latencies)[-5:]
    # the budget plus the transient work of one upload (decoding a frame, upsampling a chunk)
    assert peak - baseline < BUDGET_GB * GIB + 0.4 * GIB, f"{(peak - baseline) / GIB:.2f} GiB"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
