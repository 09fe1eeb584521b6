"""The app's public API through gradio_client, served in-process on 127.0.0.1 (fake SAM2)."""

from __future__ import annotations

import os
import re
import zipfile

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from demo.config import AppConfig
from demo.render import VIEW_OUTPUTS
from refine.testing import StaticPropagator
from tests.launch import serve

CONTROLS = ("tiny", "cpu", "random", "mask", 0.275, "sam2")
VIEW = [k for k in VIEW_OUTPUTS if k != "session"]  # outputs of the view endpoints


class Scripted(StaticPropagator):
    """StaticPropagator that first raises the errors queued in ``fail_next``."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next: list[BaseException] = []

    def track(self, frames, prompt_sets, progress=None):
        if self.fail_next:
            raise self.fail_next.pop(0)
        yield from super().track(frames, prompt_sets, progress)


@pytest.fixture(scope="module")
def served():
    prop = Scripted()
    with serve(AppConfig(propagator_factory=lambda spec: prop)) as (url, _):
        yield Client(url, verbose=False), prop


def _view(result) -> dict:
    assert len(result) == len(VIEW)
    return dict(zip(VIEW, result, strict=True))


def test_public_endpoints(served):
    client, _ = served
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/open_example", "/open_upload", "/select_expression", "/run", "/refuse"):
        assert name in api
    assert [p["parameter_name"] for p in api["/refuse"]["parameters"]] == [
        "area_ratio",
        "vote",
        "t",
    ]


def test_open_run_refuse_over_the_api(served):
    client, prop = served
    calls = len(prop.calls)
    out = _view(client.predict("birds/0", *CONTROLS, api_name="/open_example"))
    assert "the two birds flying apart" in out["case_info"]
    assert os.path.isfile(out["img_stage1"]) and out["img_fused"] is None
    out = _view(client.predict("0", *CONTROLS, 2 / 3, 0.5, 6, api_name="/run"))
    assert "Fusion: union of SAM2 and stage 1" in out["decision"]
    assert out["sam2_runs"] == "SAM2 runs this session: 1"
    assert [row[0] for row in out["metrics"]["data"]] == ["stage 1", "SAM2-enhanced", "fused"]
    union_img = out["img_fused"]
    fused_img, decision, _ = client.predict(0.0, 0.5, 6, api_name="/refuse")
    assert "Fusion: SAM2 only" in decision
    with open(fused_img, "rb") as a, open(union_img, "rb") as b:
        assert a.read() != b.read()
    assert len(prop.calls) == calls + 1  # one SAM2 run for open + run + refuse
    videos = client.predict(api_name="/videos")
    assert len(videos) == 4 and all(str(v).endswith(".mp4") for v in videos[:3])
    files, _ = client.predict(api_name="/downloads")
    zips = [f for f in files if str(f).endswith(".zip")]
    with zipfile.ZipFile(zips[0]) as zf:
        assert "birds/0/00011.png" in zf.namelist()


def _status(result) -> str:
    """The status message of an endpoint's result (the view's status output)."""
    return _view(result)["status"]


def test_errors_come_back_as_messages(served):
    client, _ = served
    with pytest.raises(AppError, match="birds/9 is not in the list of choices"):
        client.predict("birds/9", *CONTROLS, api_name="/open_example")  # Gradio checks it
    fresh = Client(client.src, verbose=False)  # a new session: nothing open
    assert "open a case first" in _status(
        fresh.predict(None, *CONTROLS, 2 / 3, 0.5, 0, api_name="/run")
    )
    # before any case: the fast endpoints answer with empty values, not errors
    assert fresh.predict(0.5, 0.5, 1, api_name="/refuse")[2] == ""
    assert fresh.predict(1, api_name="/show_frame")[:3] == (None, None, None)
    assert fresh.predict(api_name="/stop") == "Nothing is running."


def test_pickled_npz_upload_through_the_api_is_refused(served, tmp_path):
    from tests.test_app_session import pickled_upload

    client, _ = served
    frames_zip, npz, target = pickled_upload(tmp_path)
    out = client.predict(
        handle_file(frames_zip), handle_file(npz), *CONTROLS, None, None, api_name="/open_upload"
    )
    status = _status(out)
    assert "convert-referdino --trust-pickle" in status and "/tmp" not in status
    assert not os.path.exists(target)
    out = _view(client.predict("ball/0", *CONTROLS, api_name="/open_example"))
    assert "the blue ball" in out["case_info"]  # the server and the session carry on


def test_run_failures_come_back_as_messages_and_the_session_carries_on(served):
    client, prop = served
    client = Client(client.src, verbose=False)
    _view(client.predict("birds/1", *CONTROLS, api_name="/open_example"))
    prop.fail_next = [
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        KeyError("bug"),
    ]
    status = _status(client.predict("1", *CONTROLS, 2 / 3, 0.5, 0, api_name="/run"))
    assert re.search(r"SAM2 ran out of memory on birds/1 .* smaller SAM2 model", status)
    status = _status(client.predict("1", *CONTROLS, 2 / 3, 0.5, 0, api_name="/run"))
    assert (
        "Internal error in run: KeyError: &#x27;bug&#x27;" in status or "KeyError: 'bug'" in status
    )
    out = _view(client.predict("1", *CONTROLS, 2 / 3, 0.5, 0, api_name="/run"))
    assert out["sam2_runs"] == "SAM2 runs this session: 1" and "Fusion:" in out["decision"]


def test_gradio_refuses_uploads_over_the_size_limit(tmp_path):
    import httpx

    from refine.limits import UploadLimits

    config = AppConfig(fake_sam2=True, limits=UploadLimits(max_upload_bytes=1000))
    with serve(config) as (base, _):
        url = f"{base}gradio_api/upload"
        big = httpx.post(url, files={"files": ("big.zip", b"\0" * 1001)}, timeout=30)
        assert big.status_code == 413 and "maximum allowed size of 1000 bytes" in big.text
        small = httpx.post(url, files={"files": ("small.zip", b"\0" * 1000)}, timeout=30)
        assert small.status_code == 200
        path = tmp_path / "big.zip"
        path.write_bytes(b"\0" * 1001)
        client = Client(base, verbose=False)
        with pytest.raises(ValueError, match="exceeds the maximum file size of 1000 bytes"):
            client.predict(
                handle_file(str(path)),
                handle_file(str(path)),
                *CONTROLS,
                None,
                None,
                api_name="/open_upload",
            )
