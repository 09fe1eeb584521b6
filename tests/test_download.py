"""checkpoints/download.py against a local HTTP server that honours Range requests, and
refine.models.resolve_checkpoint when the model hub cannot be reached."""

import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading

import pytest

spec = importlib.util.spec_from_file_location("download", "checkpoints/download.py")
download = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download)

PAYLOAD = bytes(range(256)) * 4000


class Handler(http.server.BaseHTTPRequestHandler):
    cut_after = None  # serve only this many bytes, then drop the connection
    requests: list = []

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()

    def do_GET(self):
        rng = self.headers.get("Range")
        Handler.requests.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if Handler.cut_after is not None:
            body = body[: Handler.cut_after]
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Handler.requests = []
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def test_interrupted_download_resumes_and_checks_size(server, tmp_path):
    dest = str(tmp_path / "sam2.1_hiera_tiny.pt")
    Handler.cut_after = 300_000
    with pytest.raises((download.DownloadError, OSError)):
        download.download(server + "x.pt", dest)
    assert (tmp_path / "sam2.1_hiera_tiny.pt.part").stat().st_size == 300_000
    assert not (tmp_path / "sam2.1_hiera_tiny.pt").exists()
    Handler.cut_after = None
    assert download.download(server + "x.pt", dest) == dest
    assert (tmp_path / "sam2.1_hiera_tiny.pt").read_bytes() == PAYLOAD
    assert Handler.requests == [None, "bytes=300000-"]
    # already complete: nothing fetched again
    download.download(server + "x.pt", dest)
    assert len(Handler.requests) == 2


def test_cli_names_sizes(server, tmp_path, capsys):
    assert download.main(["tiny", "--dest", str(tmp_path), "--base-url", server]) == 0
    assert (tmp_path / "sam2.1_hiera_tiny.pt").read_bytes() == PAYLOAD
    with pytest.raises(SystemExit):
        download.main(["huge"])


HUB_CHECK = """
import os, sys, time
from refine.errors import InputError
from refine.models import resolve_checkpoint

t0 = time.monotonic()
try:
    print("path", resolve_checkpoint(sys.argv[1]))
except InputError as err:
    print("error", str(err))
print("seconds", time.monotonic() - t0)
"""


def resolve_in_subprocess(tmp_path, size: str, **env: str) -> dict[str, str]:
    """resolve_checkpoint(size) in a fresh process whose model hub is a closed local port,
    with an empty hub cache under tmp_path (plus ``env``): {"path"|"error", "seconds"}."""
    closed = download_free_port()
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{closed}",
        "HF_HOME": str(tmp_path / "hf"),
        "REFINE_CHECKPOINTS": str(tmp_path / "none"),
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", HUB_CHECK, size], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout  # the message is one line
    return dict(line.split(" ", 1) for line in lines)


def download_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns


def test_unreachable_hub_fails_fast_with_one_line_naming_the_model(tmp_path):
    got = resolve_in_subprocess(tmp_path, "base_plus")
    message = got["error"]
    assert "SAM2.1 base_plus weights (facebook/sam2.1-hiera-base-plus) are not available" in message
    assert "cannot be reached" in message and "python checkpoints/download.py base_plus" in message
    assert "$REFINE_CHECKPOINTS" in message and "--checkpoint PATH" in message
    assert str(tmp_path) not in message  # no server paths
    # not huggingface_hub's own ~25 s of retries against a refused connection
    assert float(got["seconds"]) < 15


def test_checkpoints_dir_and_hub_cache_are_used_without_the_network(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sam2.1_hiera_tiny.pt").write_bytes(b"w")
    got = resolve_in_subprocess(tmp_path, "tiny", REFINE_CHECKPOINTS=str(mine))
    assert got["path"] == str(mine / "sam2.1_hiera_tiny.pt")
    snapshot = tmp_path / "hf/hub/models--facebook--sam2.1-hiera-small/snapshots/abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "sam2.1_hiera_small.pt").write_bytes(b"w")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs/main").write_text("abc123")
    got = resolve_in_subprocess(tmp_path, "small")
    assert got["path"] == str(snapshot / "sam2.1_hiera_small.pt")
