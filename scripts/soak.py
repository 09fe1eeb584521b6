"""Soak test of the app: several gradio_client sessions at once, bounded in count and time.

    .venv/bin/python scripts/soak.py [--clients 4] [--requests 50] [--time-limit 600]
                                     [--sam2 fake|random] [--url http://127.0.0.1:PORT/ --pid N]

Starts ``python app.py`` on 127.0.0.1 (``--sam2 fake``: no SAM2; ``random``: random-weight
SAM2.1-tiny at a 64-px input, so that it runs on a small CPU machine), or uses the app at
``--url`` (127.0.0.1 only; with ``--pid``, its memory is read too). Each client opens its
own session, uploads a small synthetic clip (zip of frames + stage-1 npz, built with
tests/clips.py), then makes a fixed mix of requests: bundled examples, SAM2 runs, slider
moves (ρ, frame), downloads, rankings, more uploads; the files of every answer are fetched.

Prints: the server's peak RSS (VmHWM), the latency of each endpoint (p50, p95; the slider
moves are the cheap ones), the files left in the app's temp folders after the clients close
and after shutdown (when it started the app), and the errors: exceptions, "Internal error"
answers and tracebacks in the server log. Exits 1 on any error or file left after shutdown.

Endpoints are called by parameter name (from the app's API description), so an endpoint or
parameter the mix does not know about is ignored, unless it is required: then soak.py says
which value to add to VALUES.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from urllib.parse import urlparse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gradio_client import Client, handle_file

from refine.stage1 import VideoStage1, save_stage1_npz
from refine.synthetic import write_jpegs
from tests.clips import random_expression, textured_frames
from tests.launch import start_app, stop_app, wait_until_up

# values by API parameter name; the upload files are added per run
VALUES: dict[str, object] = {
    "example": "birds/0",
    "exp_id": "0",
    "size": "tiny",
    "device": "cpu",
    "weights": "random",
    "prompt": "mask",
    "threshold": 0.275,
    "memory": "sam2",
    "area_ratio": 2 / 3,
    "vote": 0.5,
    "t": 0,
    "rank_set": "examples",
    "rank_order": "fused",
    "limit": 2,
    "gt_file": None,
    "meta_file": None,
}
# one client's requests, in order, repeated: (endpoint, values that differ from VALUES)
MIX: list[tuple[str, dict]] = [
    ("/open_upload", {}),
    ("/run", {"t": 3}),
    ("/refuse", {"area_ratio": 0.0, "t": 3}),
    ("/show_frame", {"t": 5}),
    ("/refuse", {"area_ratio": 2 / 3, "t": 5}),
    ("/show_frame", {"t": 1}),
    ("/downloads", {}),
    ("/open_example", {}),
    ("/run", {"t": 2}),
    ("/refuse", {"area_ratio": 0.0, "t": 2}),
    ("/show_frame", {"t": 4}),
    ("/refuse", {"vote": 0.9, "t": 4}),
    ("/select_expression", {"exp_id": "1"}),
    ("/rank", {}),
    ("/show_frame", {"t": 0}),
]
CHEAP = ("/refuse", "/show_frame")  # slider moves: no SAM2, one overlay
SAM2_ARGS = {"fake": ["--fake-sam2"], "random": ["--random-weights", "--image-size", "64"]}


class Tally:
    """Latencies, error messages and refusals of all clients (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.refusals: Counter[str] = Counter()

    def add(self, name: str, seconds: float, error: str | None, refused: bool) -> None:
        with self.lock:
            self.latency[name].append(seconds)
            if error:
                self.errors.append(f"{name}: {error}")
            if refused:
                self.refusals[name] += 1


def write_upload(folder: str, t: int = 12, h: int = 64, w: int = 96) -> tuple[str, str]:
    """A synthetic clip as the app takes it: (zip of JPEG frames, stage-1 npz)."""
    frames_dir = os.path.join(folder, "soak_clip")
    names = write_jpegs(textured_frames(t, h, w, seed=0), frames_dir)
    frames_zip = os.path.join(folder, "soak_clip.zip")
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for name in names:
            zf.write(os.path.join(frames_dir, f"{name}.jpg"), f"{name}.jpg")
    rng = np.random.default_rng(0)
    expressions = {
        "0": random_expression(rng, t, 3, (8, 12), [(3, 0.9), (8, 0.8)], "the red square"),
        "1": random_expression(rng, t, 2, (8, 12), [(0, 0.9)], "the square at the start"),
    }
    npz = os.path.join(folder, "soak_clip.npz")
    save_stage1_npz(npz, VideoStage1((h, w), names, expressions))
    return frames_zip, npz


def call_args(api: dict, name: str, overrides: dict) -> dict:
    """Keyword arguments of endpoint ``name``: the known values of its parameters; the
    server's defaults for the others. SystemExit for a required parameter without one."""
    if name not in api:
        raise SystemExit(f"the app has no endpoint {name}; update MIX in scripts/soak.py")
    kwargs = {}
    for p in api[name]["parameters"]:
        key = p["parameter_name"]
        if key in overrides or key in VALUES:
            kwargs[key] = overrides.get(key, VALUES.get(key))
        elif not p.get("parameter_has_default"):
            raise SystemExit(f"{name} needs {key!r}: add a value for it to VALUES in soak.py")
    return kwargs


def _strings(result: object) -> list[str]:
    items = result if isinstance(result, (list, tuple)) else [result]
    return [x for x in items if isinstance(x, str)]


def client_loop(url: str, api: dict, requests: int, deadline: float, folder: str, tally: Tally):
    """One session: ``requests`` requests of MIX in order (or until ``deadline``)."""
    client = Client(url, verbose=False, download_files=folder)
    try:
        for i in range(requests):
            if time.monotonic() > deadline:
                tally.errors.append(f"time limit reached after {i} requests of a client")
                return
            name, overrides = MIX[i % len(MIX)]
            kwargs = call_args(api, name, overrides)
            t0 = time.perf_counter()
            error, refused = None, False
            try:
                result = client.predict(api_name=name, **kwargs)
                texts = _strings(result)
                error = next((s for s in texts if "Internal error" in s), None)
                refused = any(s.startswith("⚠ **") for s in texts)
            except Exception as err:  # noqa: BLE001 (any failure of a request is a finding)
                error = f"{type(err).__name__}: {err}"
            tally.add(name, time.perf_counter() - t0, error, refused)
    finally:
        client.close()


def files_under(folder: str) -> int:
    return sum(len(names) for _, _, names in os.walk(folder))


def temp_report(tmp: str) -> str:
    """Files in each of the app's folders under ``tmp`` (its $TMPDIR)."""
    parts = [f"{d}: {files_under(os.path.join(tmp, d))}" for d in sorted(os.listdir(tmp))]
    return ", ".join(parts) or "no folders"


def peak_rss(pid: int | None) -> str:
    if pid is None:
        return "n/a (no --pid)"
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return f"{fields['VmHWM'].strip()} (now {fields['VmRSS'].strip()})"


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def report(tally: Tally, wall: float) -> None:
    n = sum(len(v) for v in tally.latency.values())
    print(f"requests: {n} in {wall:.1f} s")
    for name, samples in sorted(tally.latency.items()):
        mark = "  (cheap)" if name in CHEAP else ""
        print(
            f"  {name:<20} n={len(samples):4d}  p50 {1000 * percentile(samples, 0.5):8.1f} ms"
            f"  p95 {1000 * percentile(samples, 0.95):8.1f} ms{mark}"
        )
    cheap = [x for k in CHEAP for x in tally.latency.get(k, [])]
    if cheap:
        print(f"cheap endpoints (slider moves) p95: {1000 * percentile(cheap, 0.95):.1f} ms")
    if tally.refusals:
        print(f"answers with an error status (input refused): {dict(tally.refusals)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=50, help="requests per client")
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds for all requests")
    p.add_argument("--sam2", choices=sorted(SAM2_ARGS), default="fake")
    p.add_argument("--url", help="an app already running on 127.0.0.1 (default: start one)")
    p.add_argument("--pid", type=int, help="with --url: the app's process, for its memory")
    args = p.parse_args()
    if args.url and urlparse(args.url).hostname != "127.0.0.1":
        raise SystemExit("--url must be on 127.0.0.1: the soak test loads the server")

    work = tempfile.mkdtemp(prefix="refine-soak-")
    app_tmp = os.path.join(work, "tmp")  # the app's $TMPDIR: its sessions and Gradio's files
    os.makedirs(app_tmp)
    proc, log = None, os.path.join(work, "app.log")
    try:
        if args.url:
            url, pid = args.url, args.pid
        else:
            env = {"TMPDIR": app_tmp, "GRADIO_HEARTBEAT_INTERVAL": "0.25"}
            proc, url = start_app(SAM2_ARGS[args.sam2], log_path=log, env=env)
            wait_until_up(url, proc, timeout=180)
            pid = proc.pid
        frames_zip, npz = write_upload(work)
        VALUES["video_file"], VALUES["stage1_file"] = handle_file(frames_zip), handle_file(npz)
        api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
        api = api["named_endpoints"]
        unused = sorted(set(api) - {name for name, _ in MIX})
        print(f"app at {url}; endpoints not in the mix: {', '.join(unused) or 'none'}")

        tally = Tally()
        deadline = time.monotonic() + args.time_limit
        t0 = time.monotonic()
        threads = [
            threading.Thread(
                target=client_loop,
                args=(url, api, args.requests, deadline, os.path.join(work, f"dl{k}"), tally),
            )
            for k in range(args.clients)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        report(tally, time.monotonic() - t0)
        print(f"server peak RSS: {peak_rss(pid)}")
        if proc is not None:
            time.sleep(3)  # the closed sessions' unload runs after their heartbeat stops
            print(f"files after the clients closed: {temp_report(app_tmp)}")
    finally:
        if proc is not None:
            stop_app(proc)
    left = 0
    if proc is not None:
        left = files_under(app_tmp)
        print(f"files after shutdown: {left} ({temp_report(app_tmp)})")
        with open(log, errors="replace") as f:
            tracebacks = f.read().count("Traceback (most recent call last)")
        if tracebacks:
            tally.errors.append(f"{tracebacks} tracebacks in the server log ({log})")
    errors = tally.errors
    print(f"errors: {len(errors)}")
    for e in errors[:5]:
        print(f"  {e[:300]}")
    if not errors and not left:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work} (the app's log and temp folders)")
    return 1 if errors or left else 0


if __name__ == "__main__":
    sys.exit(main())
