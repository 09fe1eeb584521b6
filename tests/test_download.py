"""checkpoints/download.py against a local HTTP server that honours Range requests."""

import http.server
import importlib.util
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
