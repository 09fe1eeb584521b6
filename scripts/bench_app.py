"""Benchmarks of the app (targets: re-fusion < 100 ms, start to interactive page < 5 s).

    .venv/bin/python scripts/bench_app.py [--frames 100] [--height 480] [--width 854]
                                          [--trials 40] [--starts 3] [--no-browser]

1. Slider → new fused overlay, server side, with cached SAM2 masks: a synthetic video of
   T frames at H×W with two moving objects, "tracked" by the fake StaticPropagator (so the
   masks are cached exactly as after a SAM2 run). Each trial moves ρ so that the fusion
   branch flips, and times the ρ callback (re-decide from cached box areas + fused overlay
   of the shown frame), then also Gradio's encoding of that image for the page, then the
   whole round trip through gradio_client against the app served on 127.0.0.1.
2. ``python app.py`` start → page answers over HTTP, and → page interactive in headless
   Chromium (the Run button visible), each from the moment the process is spawned.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from demo.callbacks import Callbacks
from demo.config import AppConfig
from demo.controls import Controls
from refine.frames import FrameSource
from refine.inspect import Case, Session, branch
from refine.stage1 import ExpressionStage1, VideoStage1
from refine.testing import StaticPropagator
from tests.launch import (
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    serve,
    start_app,
    stop_app,
    wait_until_up,
)

CONTROLS = ("tiny", "cpu", "random", "mask", 0.275, "sam2")  # as the page sends them


def synthetic_case(t: int, h: int, w: int) -> Case:
    """Two discs drifting apart over a textured background; stage-1 logits at 1/8 size."""
    yy, xx = np.mgrid[:h, :w]
    bg = np.stack([60 + 30 * np.sin(xx / 17.0), 80 + 25 * np.cos(yy / 13.0), 90 + 0 * xx], -1)
    frames = np.empty((t, h, w, 3), np.uint8)
    lh, lw = h // 8, w // 8
    ly, lx = np.mgrid[:lh, :lw]
    masks = np.full((t, 2, lh, lw), -4.0, np.float32)
    r = h / 8
    drift = (w / 3 - r - 4) / max(t - 1, 1)  # px per frame: the discs end at the borders
    for i in range(t):
        img = bg.copy()
        for q, (cy, cx) in enumerate(((h / 2, w / 3 - drift * i), (h / 2, 2 * w / 3 + drift * i))):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = (230, 60 + 150 * q, 50)
            masks[i, q] = (r / 8) - np.hypot(ly - cy / 8, lx - cx / 8)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    scores = np.full((t, 2), 0.05, np.float32)
    scores[:, 0] = np.linspace(0.9, 0.5, t)
    scores[:, 1] = np.linspace(0.85, 0.45, t)
    boxes = np.tile(np.array([0.5, 0.5, 0.2, 0.3], np.float32), (t, 2, 1))
    names = [f"{i:05d}" for i in range(t)]
    exp = ExpressionStage1(scores, boxes, masks.astype(np.float16), "two discs drifting apart")
    return Case(
        key="bench",
        video="bench",
        frames=FrameSource.from_arrays(frames),
        frame_names=names,
        stage1=VideoStage1((h, w), names, {"0": exp}),
        source="benchmark",
    )


def write_upload(case: Case, folder: str) -> tuple[str, str]:
    """The case as an upload: a zip of JPEG frames and a safe stage-1 npz."""
    import io
    import zipfile

    from PIL import Image

    from refine.stage1 import save_stage1_npz

    frames_zip = os.path.join(folder, "bench_frames.zip")
    with zipfile.ZipFile(frames_zip, "w") as zf:
        for i, name in enumerate(case.frame_names):
            buf = io.BytesIO()
            Image.fromarray(case.frames.rgb(i)).save(buf, format="JPEG", quality=90)
            zf.writestr(f"{name}.jpg", buf.getvalue())
    npz = os.path.join(folder, "bench_frames.npz")
    save_stage1_npz(npz, case.stage1)
    return frames_zip, npz


def _ms(samples: list[float]) -> str:
    s = sorted(samples)
    p90 = s[min(len(s) - 1, int(0.9 * len(s)))]
    return f"median {1000 * statistics.median(s):6.1f} ms, p90 {1000 * p90:6.1f} ms, max {1000 * s[-1]:6.1f} ms"


def bench_refuse(t: int, h: int, w: int, trials: int) -> None:
    import tempfile

    import gradio as gr
    from gradio_client import Client, handle_file

    prop = StaticPropagator()
    cb = Callbacks(AppConfig(propagator_factory=lambda spec: prop))
    session = Session()
    session.open_case(synthetic_case(t, h, w), "0")
    start = time.perf_counter()
    controls = Controls.of(*CONTROLS)
    cb.runs.run(session, "0", controls, 2 / 3, 0.5, t // 2, progress=lambda *a, **k: None)
    print(
        f"setup: {t} frames {w}x{h}, fake SAM2 run + first view {time.perf_counter() - start:.1f} s"
    )
    image = gr.Image(type="numpy", format="jpeg")
    branches, cb_times, enc_times = set(), [], []
    frame = t // 2
    for i in range(trials):
        rho = 0.0 if i % 2 else 2 / 3  # flips union ↔ SAM2 only: a different overlay each time
        t0 = time.perf_counter()
        out = cb.runs.refuse(session, rho, 0.5, frame)
        t1 = time.perf_counter()
        image.postprocess(out["img_fused"])  # what Gradio does before sending it to the page
        t2 = time.perf_counter()
        cb_times.append(t1 - t0)
        enc_times.append(t2 - t0)
        branches.add(branch(session.decision))
    assert branches == {"union", "sam2"}, "the benchmark must flip the fusion branch"
    assert len(prop.calls) == 1, "re-fusion must not run SAM2"
    print(f"ρ change → fused overlay (callback only):          {_ms(cb_times)}")
    print(f"ρ change → fused overlay + JPEG for the page:       {_ms(enc_times)}")
    session.close()

    tmp = tempfile.mkdtemp(prefix="bench-app-")
    try:
        with serve(AppConfig(propagator_factory=lambda spec: prop)) as (url, _):
            client = Client(url, verbose=False)
            frames_zip, npz = write_upload(synthetic_case(t, h, w), tmp)
            client.predict(
                handle_file(frames_zip),
                handle_file(npz),
                *CONTROLS,
                None,
                None,
                api_name="/open_upload",
            )
            client.predict("0", *CONTROLS, 2 / 3, 0.5, frame, api_name="/run")
            rt = []
            for i in range(trials):
                t0 = time.perf_counter()
                client.predict(0.0 if i % 2 else 2 / 3, 0.5, frame, api_name="/refuse")
                rt.append(time.perf_counter() - t0)
            print(f"ρ change → fused overlay, gradio_client round trip: {_ms(rt)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_browser_refuse(t: int, h: int, w: int, trials: int) -> None:
    """ρ change → new fused overlay shown in Chromium (upload, fake SAM2 run, then toggle ρ)."""
    import tempfile

    from playwright.sync_api import expect, sync_playwright

    tmp = tempfile.mkdtemp(prefix="bench-app-")
    frames_zip, npz = write_upload(synthetic_case(t, h, w), tmp)
    proc, url = start_app(["--fake-sam2"])
    try:
        wait_until_up(url, proc, timeout=120)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
            page = b.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(url)
            page.get_by_role("tab", name="Upload").click()
            page.locator("#up-video input[type=file]").set_input_files(frames_zip)
            page.locator("#up-stage1 input[type=file]").set_input_files(npz)
            page.wait_for_timeout(1000)  # let both uploads finish
            page.locator("#up-load").click()
            expect(page.locator("#case-info")).to_contain_text("bench_frames", timeout=120_000)
            page.locator("#frame input[type=range]").fill(str(t // 2))
            page.locator("#run-button").click()
            expect(page.locator("#sam2-runs")).to_contain_text(
                "runs this session: 1", timeout=120_000
            )
            page.wait_for_timeout(3000)  # videos and plots of the run
            times = []
            for i in range(trials):
                src = page.locator("#img-fused img").get_attribute("src")
                t0 = page.evaluate("performance.now()")
                page.locator("#area-ratio input[type=range]").fill("0" if i % 2 == 0 else "0.66")
                done = page.wait_for_function(
                    "s => { const i = document.querySelector('#img-fused img');"
                    " return i && i.getAttribute('src') !== s && i.complete"
                    " ? performance.now() : false }",
                    arg=src,
                    polling="raf",
                    timeout=30_000,
                )
                times.append((done.json_value() - t0) / 1000)
                page.wait_for_timeout(1500)  # the slow part (fused video, plots) settles
            expect(page.locator("#sam2-runs")).to_contain_text("runs this session: 1")
            b.close()
        print(f"ρ change → new fused overlay shown in Chromium:    {_ms(times)}")
    finally:
        stop_app(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def bench_start(starts: int, browser: bool) -> None:
    http, interactive = [], []
    for _ in range(starts):
        port = free_port()
        t0 = time.monotonic()
        proc, url = start_app([], port=port)
        try:
            wait_until_up(url, proc, timeout=120)
            http.append(time.monotonic() - t0)
            if browser:
                from playwright.sync_api import sync_playwright

                with sync_playwright() as p:
                    b = p.chromium.launch(
                        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
                    )
                    # the browser's own start is not the app's: launch it, then time the page
                    page = b.new_page()
                    t_page = time.monotonic()
                    page.goto(url)
                    page.locator("#run-button").wait_for(state="visible", timeout=60_000)
                    interactive.append(http[-1] + time.monotonic() - t_page)
                    b.close()
        finally:
            stop_app(proc)
    print(f"python app.py → page served over HTTP:       {_ms(http)}")
    if interactive:
        print(f"python app.py → page interactive (Chromium): {_ms(interactive)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--no-browser", action="store_true", help="time HTTP only")
    args = p.parse_args()
    bench_refuse(args.frames, args.height, args.width, args.trials)
    if not args.no_browser:
        bench_browser_refuse(args.frames, args.height, args.width, min(args.trials, 10))
    if args.starts > 0:  # 0: skip the start-up benchmark
        bench_start(args.starts, not args.no_browser)


if __name__ == "__main__":
    main()
