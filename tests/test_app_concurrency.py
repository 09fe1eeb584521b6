"""Four users at once: the app served in a subprocess with two SAM2 runs at a time (the
fake SAM2, and untrained SAM2.1-tiny at a 128-px input, whose one predictor the runs
share), four gradio_client sessions on the four bundled cases in threads. Each must get
exactly what it gets alone, and only its own case."""

from __future__ import annotations

import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from tests.launch import start_app, stop_app, wait_until_up

CASES = [("birds", "0"), ("birds", "1"), ("ball", "0"), ("ball", "1")]
CONTROLS = ("tiny", "cpu", "random", "mask", 0.275, "sam2")
TIMEOUT_S = 120  # per user, for the whole flow
VIEW_CASE_INFO, VIEW_DECISION, VIEW_RUNS = 5, 6, 8  # positions in the /run outputs


MODES = {
    "fake-sam2": ["--fake-sam2"],
    "random-tiny-128": ["--random-weights", "--model-size", "tiny", "--image-size", "128"],
}


@pytest.fixture(scope="module", params=list(MODES))
def app_url(request, tmp_path_factory):
    log = tmp_path_factory.mktemp("app") / "app.log"
    args = [*MODES[request.param], "--concurrency", "2"]
    proc, url = start_app(args, log_path=str(log))
    try:
        wait_until_up(url, proc, timeout=120)
        yield url
    finally:
        stop_app(proc)
    assert "Traceback" not in log.read_text()


def _masks(zip_path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(zip_path) as zf:
        return {n: np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in zf.namelist()}


def _user(url: str, video: str, exp_id: str, folder: str, barrier: threading.Barrier | None):
    """One user: open the case, run SAM2, wait for the others, download the fused masks."""
    client = Client(url, verbose=False, download_files=folder)
    try:
        if barrier is not None:
            barrier.wait()
        client.predict(f"{video}/{exp_id}", *CONTROLS, api_name="/open_example")
        view = client.predict(exp_id, *CONTROLS, 2 / 3, 0.5, 0, api_name="/run")
        if barrier is not None:
            barrier.wait()  # every session has its case open and its run done
        files, _ = client.predict(api_name="/downloads")
        (zip_path,) = [f for f in files if str(f).endswith(".zip")]
        return {
            "case_info": view[VIEW_CASE_INFO],
            "decision": view[VIEW_DECISION],
            "sam2_runs": view[VIEW_RUNS],
            "masks": _masks(zip_path),
        }
    finally:
        client.close()


def test_four_sessions_at_once_match_their_sequential_results(app_url, tmp_path):
    alone = {
        case: _user(app_url, *case, str(tmp_path / f"seq-{i}"), None)
        for i, case in enumerate(CASES)
    }
    barrier = threading.Barrier(len(CASES), timeout=TIMEOUT_S)
    with ThreadPoolExecutor(len(CASES)) as pool:
        futures = {
            case: pool.submit(_user, app_url, *case, str(tmp_path / f"par-{i}"), barrier)
            for i, case in enumerate(CASES)
        }
        together = {case: f.result(timeout=TIMEOUT_S) for case, f in futures.items()}
    decisions = set()
    for (video, exp_id), result in together.items():
        expected = alone[(video, exp_id)]
        assert result["decision"] == expected["decision"]
        assert result["case_info"] == expected["case_info"]
        assert f"Expression **{exp_id}**" in result["case_info"]
        assert result["sam2_runs"] == expected["sam2_runs"]
        names = sorted(result["masks"])
        assert names == [f"{video}/{exp_id}/{t:05d}.png" for t in range(12)]  # its own case
        assert names == sorted(expected["masks"])
        for name in names:
            np.testing.assert_array_equal(result["masks"][name], expected["masks"][name])
        decisions.add(result["decision"].split("\n")[0])
    assert together[("birds", "0")]["sam2_runs"] == "SAM2 runs this session: 1"
    assert together[("ball", "1")]["sam2_runs"] == "SAM2 runs this session: 0"  # no query kept
    assert not together[("ball", "1")]["masks"]["ball/1/00000.png"].any()
    assert together[("birds", "0")]["masks"]["birds/0/00006.png"].any()
    assert len(decisions) > 1  # the cases differ, so equal results are not a coincidence
