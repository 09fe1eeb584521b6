"""The app's public API through gradio_client, served in-process on 127.0.0.1 (fake SAM2)."""

from __future__ import annotations

import os
import zipfile

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from demo.config import AppConfig
from demo.launch import free_port
from demo.ui import build_app, launch_kwargs
from refine.testing import StaticPropagator

CONTROLS = ("tiny", "cpu", "random", "mask", 0.275)
VIEW = [
    "expression",
    "frame",
    "img_stage1",
    "img_sam2",
    "img_fused",
    "case_info",
    "decision",
    "status",
    "sam2_runs",
    "banner",
    "plot_scores",
    "plot_ratio",
    "metrics",
    "metrics_note",
    "vid_stage1",
    "vid_sam2",
    "vid_fused",
]


@pytest.fixture(scope="module")
def served():
    prop = StaticPropagator()
    demo, _ = build_app(AppConfig(propagator_factory=lambda spec: prop))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_kwargs(),
    )
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False), prop
    finally:
        demo.close()


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
    out = _view(client.predict("birds", "0", *CONTROLS, api_name="/open_example"))
    assert "the two birds flying apart" in out["case_info"]
    assert os.path.isfile(out["img_stage1"]) and out["img_fused"] is None
    out = _view(client.predict("0", *CONTROLS, 2 / 3, 0.5, 6, api_name="/run"))
    assert "Fusion: union of SAM2 and stage 1" in out["decision"]
    assert out["sam2_runs"] == "SAM2 runs this session: 1"
    assert [row[0] for row in out["metrics"]["data"]] == ["stage 1", "SAM2-enhanced", "fused"]
    union_img = out["img_fused"]
    fused_img, decision = client.predict(0.0, 0.5, 6, api_name="/refuse")
    assert "Fusion: SAM2 only" in decision
    with open(fused_img, "rb") as a, open(union_img, "rb") as b:
        assert a.read() != b.read()
    assert len(prop.calls) == calls + 1  # one SAM2 run for open + run + refuse
    videos = client.predict(api_name="/videos")
    assert len(videos) == 3 and all(str(v).endswith(".mp4") for v in videos)
    files = client.predict(api_name="/downloads")
    zips = [f for f in files if str(f).endswith(".zip")]
    with zipfile.ZipFile(zips[0]) as zf:
        assert "birds/0/00011.png" in zf.namelist()


def test_errors_come_back_as_messages(served):
    client, _ = served
    with pytest.raises(AppError, match="no stage-1 results for expression '9'"):
        client.predict("birds", "9", *CONTROLS, api_name="/open_example")
    fresh = Client(client.src, verbose=False)  # a new session: nothing open
    with pytest.raises(AppError, match="open a case first"):
        fresh.predict("0", *CONTROLS, 2 / 3, 0.5, 0, api_name="/run")
