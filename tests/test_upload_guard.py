"""The cap on one upload request (demo.upload_guard) on the app as ``python app.py`` serves
it: a request over the cap, or without a length, is refused before Gradio stores any of it."""

from __future__ import annotations

import os

import httpx
import pytest

from demo.upload_guard import (
    FILES_PER_REQUEST,
    MULTIPART_OVERHEAD,
    PartCounter,
    TooManyParts,
)
from tests.launch import start_app, stop_app, wait_until_up

MAX_FILE = 1024  # --max-upload-mb 1/1024: the per-file limit in bytes


def _files(folder: str) -> list[str]:
    return [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    gradio_temp = tmp_path_factory.mktemp("gradio-temp")
    log = tmp_path_factory.mktemp("log") / "app.log"
    proc, url = start_app(
        ["--fake-sam2", "--max-upload-mb", str(MAX_FILE / 2**20)],
        log_path=str(log),
        env={"GRADIO_TEMP_DIR": str(gradio_temp)},
    )
    try:
        wait_until_up(url, proc, timeout=120)
        yield url + "gradio_api/upload", str(gradio_temp)
    finally:
        stop_app(proc)


def test_an_upload_request_over_the_cap_is_refused_and_nothing_is_stored(app):
    url, gradio_temp = app
    before = set(_files(gradio_temp))
    n = (FILES_PER_REQUEST * MAX_FILE + MULTIPART_OVERHEAD) // MAX_FILE + 1  # each file is allowed
    files = [("files", (f"f{i}.zip", b"\0" * MAX_FILE)) for i in range(n)]
    resp = httpx.post(url, files=files, timeout=30)
    assert resp.status_code == 413
    assert "Upload refused" in resp.text and "upload fewer or smaller files" in resp.text
    assert set(_files(gradio_temp)) == before
    ok = httpx.post(url, files=files[:FILES_PER_REQUEST], timeout=30)  # the cap itself passes
    assert ok.status_code == 200 and len(ok.json()) == FILES_PER_REQUEST


def test_an_upload_request_without_a_length_is_refused(app):
    url, gradio_temp = app
    before = set(_files(gradio_temp))
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.zip"\r\n'
        f"Content-Type: application/zip\r\n\r\nPK\r\n--{boundary}--\r\n"
    ).encode()

    def chunks():  # a generator body: httpx sends it chunked, without Content-Length
        yield body

    resp = httpx.post(
        url,
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert resp.status_code == 411 and "no Content-Length" in resp.text
    assert set(_files(gradio_temp)) == before


def test_an_upload_request_with_more_files_than_the_inputs_is_refused(app):
    url, gradio_temp = app
    before = set(_files(gradio_temp))
    files = [("files", (f"f{i}.zip", b"\0" * 10)) for i in range(FILES_PER_REQUEST + 1)]
    resp = httpx.post(url, files=files, timeout=30)
    assert resp.status_code == 413 and "more than 4 files" in resp.text
    assert set(_files(gradio_temp)) == before


def test_part_counter_counts_delimiters_split_across_chunks():
    body = b"".join(b"--xyz\r\npart %d\r\n" % i for i in range(4)) + b"--xyz--\r\n"
    counter = PartCounter(b"--xyz", max_parts=4)
    for i in range(len(body)):  # one byte at a time: every delimiter is split
        counter.feed(body[i : i + 1])
    assert counter.seen == 5
    with pytest.raises(TooManyParts):
        PartCounter(b"--xyz", max_parts=3).feed(body)
