"""Check refine on a GPU in one go: fidelity across precisions, speed, memory, CUDA-only paths.

    python scripts/gpu_check.py OUT_DIR [--budget-s 480]     # on a CUDA machine (cuda:0)
    python scripts/gpu_check.py --smoke OUT_DIR              # every part on CPU, tiny sizes

Writes OUT_DIR/gpu_check.json (all figures) and OUT_DIR/gpu_check.md (one line per step),
rewritten after every step, plus the logs of the processes it starts. No network; SAM2
has random weights unless checkpoints/<file>.pt is present (fidelity part). Parts:

1. fidelity: SAM2.1 large and tiny at 1024 on a synthetic clip, masks under fp16 and bf16
   autocast vs fp32 on the same GPU, and fp32 GPU vs fp32 CPU on a short clip:
   per-expression IoU (min / mean), identical fusion decisions or not;
2. speed: the seed schedule vs refine's lockstep (``python -m refine bench``) at E=8,
   T=32, 1024: wall, ratio, ours / limit line, expressions/s, frames/s, GPU utilisation;
3. memory: peak CUDA memory per schedule (in 2) and a 300-frame 1024² video with the
   feature cache bounded at 2 GB on the GPU, then offloaded to the host;
4. paths: ``refine run --gpus 0 --workers 2`` (spawned workers), the app's Run on cuda:0
   through gradio_client, and a forced out of memory (a CUDA memory-fraction limit in the
   app's process) that must end with the app's out-of-memory message and a session that
   runs again (on the CPU).

Each step is timed and skipped if its part's share of ``--budget-s`` runs short; the exit
status is 1 if a step failed. ``--smoke`` runs all parts on the CPU at tiny sizes (image
size 64, tiny model, bf16 instead of fp16; the out of memory is injected, as a CPU has no
memory limit to set).
"""

from __future__ import annotations

import argparse
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

STARTED = time.monotonic()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from refine.gpu_check import FULL, SMOKE, Checker, Sizes, StepSkipped  # noqa: E402

EXAMPLES = os.path.join(REPO, "examples", "data")
EXAMPLE = ("birds", "0")  # an example clip and expression of the app
MEMORY_LIMIT = r"""
import runpy, sys
limit_mb = sys.argv.pop(1)
import torch
if limit_mb == "injected":  # no GPU: the first image-encoder call raises CUDA's error
    from sam2.modeling.sam2_base import SAM2Base
    inner = SAM2Base.forward_image
    def forward_image(self, img_batch):
        if not getattr(SAM2Base, "oom_injected", False):
            SAM2Base.oom_injected = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by gpu_check --smoke)")
        return inner(self, img_batch)
    SAM2Base.forward_image = forward_image
else:
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(float(limit_mb) * 2**20 / total, 0)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def child_env(sizes: Sizes) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": REPO, "GRADIO_ANALYTICS_ENABLED": "False"}
    if sizes.cpu_threads:
        env["OMP_NUM_THREADS"] = str(sizes.cpu_threads)
    return env


def cli_workers(sizes: Sizes, out_dir: str, left: float) -> dict:
    """``python -m refine run`` over the bundled examples with two spawned workers on one
    device (``--gpus 0 --workers 2``; ``--device cpu --workers 2`` in the smoke)."""
    import json

    with open(os.path.join(EXAMPLES, "meta_expressions.json"), encoding="utf-8") as f:
        videos = json.load(f)["videos"]
    expected = sum(len(v["frames"]) * len(v["expressions"]) for v in videos.values())
    device = ["--gpus", "0"] if sizes.device.startswith("cuda") else ["--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "refine", "run", "--data", EXAMPLES]
        cmd += ["--stage1", os.path.join(EXAMPLES, "stage1"), "--out", tmp, "--model", "tiny"]
        cmd += ["--random-weights", "--image-size", str(sizes.app_image_size), *device]
        cmd += ["--workers", "2"]
        log = os.path.join(out_dir, "refine_run.log")
        with open(log, "w") as f:
            # its own process group: on timeout the spawned workers are stopped with it
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=child_env(sizes),
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(left)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        pngs = len(glob.glob(os.path.join(tmp, "*", "*", "*.png")))
    shown = " ".join(cmd[1:]).replace(tmp, "OUT").replace(REPO + os.sep, "")
    if proc.returncode != 0 or pngs != expected:
        raise RuntimeError(
            f"`{shown}` exited {proc.returncode} with {pngs} of {expected} PNGs (see {log})"
        )
    return {"command": shown, "pngs": pngs, "summary": f"exit 0, {pngs} PNGs: `{shown}`"}


class App:
    """``python app.py`` on 127.0.0.1:``port`` (tiny SAM2, random weights) in a subprocess,
    with ``limited``, under a CUDA memory limit of ``sizes.oom_limit_mb`` (None: one injected
    out of memory); a gradio_client once it answers."""

    def __init__(self, sizes: Sizes, port: int, log: str, limited: bool = False) -> None:
        port = port or free_port()
        args = ["--host", "127.0.0.1", "--port", str(port), "--model-size", "tiny"]
        args += ["--random-weights", "--image-size", str(sizes.app_image_size)]
        mb = sizes.oom_limit_mb
        self.limit = ("injected" if mb is None else f"{mb:g} MB") if limited else None
        prefix = ["-c", MEMORY_LIMIT, self.limit.split()[0]] if self.limit else []
        self.started = time.monotonic()
        self.up_at: float | None = None
        self.url = f"http://127.0.0.1:{port}/"
        with open(log, "w") as f:
            self.proc = subprocess.Popen(
                [sys.executable, *prefix, os.path.join(REPO, "app.py"), *args],
                cwd=REPO,
                env=child_env(sizes),
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        self.log = log

    def client(self, timeout: float):
        """A gradio_client Client, once the app serves (RuntimeError if it exits or is late)."""
        import httpx
        from gradio_client import Client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode} (see {self.log})")
            try:
                client = Client(self.url, verbose=False)
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            self.up_at = self.up_at or time.monotonic()
            return client
        raise RuntimeError(
            f"the app did not serve {self.url} within {timeout:.0f} s (see {self.log})"
        )

    def seconds_up(self) -> float:
        """Seconds from start until the app first served (after :meth:`client`)."""
        return (self.up_at or time.monotonic()) - self.started

    @staticmethod
    def stop(apps: list[App]) -> None:
        """Terminate the apps (they delete their sessions' files), kill any still up at 15 s."""
        for app in apps:
            app.proc.terminate()
        for app in apps:
            try:
                app.proc.wait(15)
            except subprocess.TimeoutExpired:
                app.proc.kill()
                app.proc.wait(15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppOutOfMemory(RuntimeError):
    """The app's status area showed its out-of-memory message."""


def controls(device: str) -> tuple:
    """The Run settings: size, device, weights, prompt, θ, tracking memory."""
    return ("tiny", device, "random", "mask", 0.275, "sam2")


def app_run(client, device: str, deadline: float) -> str:
    """Open the example, Run SAM2 on ``device`` before ``deadline`` (a time.monotonic());
    returns the fusion decision shown."""
    video, exp_id = EXAMPLE
    job = client.submit(f"{video}/{exp_id}", *controls(device), api_name="/open_example")
    job.result(deadline - time.monotonic())
    job = client.submit(exp_id, *controls(device), 2 / 3, 0.5, 0, api_name="/run")
    out = job.result(deadline - time.monotonic())
    texts = [v for v in out if isinstance(v, str)]
    failed = [v for v in texts if "ran out of memory" in v]
    if failed:  # the app answers a failed Run with a message in its status area
        raise AppOutOfMemory(failed[0])
    lines = [ln for v in texts for ln in v.splitlines() if "Fusion:" in ln]
    if not lines:
        raise RuntimeError(f"the app's Run on {device} showed no fusion decision: {out!r}"[:500])
    return lines[0].replace("*", "").strip()


def app_on_device(app: App, sizes: Sizes, left: float) -> dict:
    deadline = time.monotonic() + left
    client = app.client(left)
    up = app.seconds_up()
    decision = app_run(client, sizes.device, deadline)
    return {
        "startup_s": up,
        "decision": decision,
        "summary": f"up {up:.0f} s after start; {decision}",
    }


def app_out_of_memory(app: App, sizes: Sizes, left: float) -> dict:
    """Run under a CUDA memory limit: the app must answer with its out-of-memory message, and
    the same session must then run on the CPU."""
    deadline = time.monotonic() + left
    client = app.client(left)
    try:
        app_run(client, sizes.device, deadline)
        raise RuntimeError(f"the Run under a memory limit ({app.limit}) did not run out of memory")
    except AppOutOfMemory as err:
        message = str(err)
    decision = app_run(client, "cpu", deadline)
    return {
        "limit": app.limit,
        "message": message,
        "then_on_cpu": decision,
        "summary": f"limit {app.limit}: '{message[:200]}…'; then on cpu: {decision}",
    }


def echo(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/gpu_check.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder for gpu_check.json/.md and logs")
    p.add_argument("--smoke", action="store_true", help="every part on CPU at tiny sizes")
    p.add_argument("--budget-s", type=float, default=None, help="seconds (default 480; smoke 110)")
    p.add_argument(
        "--port", type=int, default=7890, help="the apps use PORT and PORT+1 (0: free ports)"
    )
    args = p.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    budget = args.budget_s if args.budget_s is not None else (110.0 if args.smoke else 480.0)
    from refine.gpu_check import NoDevice, environment
    from refine.gpu_check_sam2 import weights_used

    if sizes.cpu_threads:
        import torch

        torch.set_num_threads(sizes.cpu_threads)

    meta = {
        "command": " ".join(
            ["python scripts/gpu_check.py", *sys.argv[1:]] if argv is None else argv
        )
    }
    try:
        meta.update(environment(sizes.device), weights=weights_used(sizes.models))
    except NoDevice as err:
        print(f"error: {err}; on a machine without one, run --smoke", file=sys.stderr)
        return 2
    check = Checker(args.out_dir, budget, sizes, meta, echo, started=STARTED)
    with tempfile.TemporaryDirectory() as tmp:
        run_sam2_parts(check, sizes, tmp)
    run_paths(check, sizes, args)
    check.write()  # the elapsed time now includes stopping the apps
    failed = check.failed
    check.say(f"done: {len(check.steps)} steps, {len(failed)} failed; report in {args.out_dir}")
    return 1 if failed else 0


def run_sam2_parts(check: Checker, sizes: Sizes, tmp: str) -> None:
    """Fidelity, speed and memory, in this process."""
    from refine.gpu_check_sam2 import speed

    run_fidelity(check, sizes, tmp)
    speeds = {}
    for model in sizes.models:
        t, e = sizes.speed[:2]
        name = f"{model} seed schedule vs lockstep, E={e} T={t} at {sizes.image_size}"
        speeds[model] = check.step(
            "speed",
            name,
            60,
            lambda _, m=model: speed(m, sizes.device, sizes.image_size, sizes.speed),
        )
    check.step("memory", "peak CUDA memory per schedule (from speed)", 0, lambda _: peaks(speeds))
    run_long_video(check, sizes, os.path.join(tmp, "long"))


def run_fidelity(check: Checker, sizes: Sizes, tmp: str) -> None:
    from refine.gpu_check_sam2 import Fidelity, make_clip

    clips = {}

    def make_clips(left: float) -> dict:
        clips["fid"] = make_clip(os.path.join(tmp, "clip"), *sizes.clip, seed=0)
        t, e, h, w = sizes.clip
        short = (sizes.cpu_frames, min(e, 2), h, w)
        clips["short"] = make_clip(os.path.join(tmp, "short"), *short, seed=1)
        return {"summary": f"T={t} E={e} {w}x{h}; short clip T={short[0]} E={short[1]}"}

    check.step("fidelity", "synthetic clips", 5, make_clips)
    fid = Fidelity(clips.get("fid"), clips.get("short"), sizes.device, sizes.image_size)
    for model in sizes.models:
        name = f"{model} fp32 reference"
        check.step("fidelity", name, 30, lambda _, m=model: fid.fp32_reference(m))
        for prec in sizes.precisions:
            name = f"{model} {prec} autocast vs fp32"
            check.step("fidelity", name, 15, lambda _, m=model, pr=prec: fid.precision(m, pr))
    for model in sizes.models:
        name = f"{model} fp32 {sizes.device} vs fp32 cpu, T={sizes.cpu_frames}"
        need = 60 if model == "large" else 20  # the CPU's share: a few s per frame for large
        check.step("fidelity", name, need, lambda _, m=model: fid.device_vs_cpu(m))


def peaks(speeds: dict[str, dict | None]) -> dict:
    """Peak CUDA memory (MB) of each schedule, per model, from the speed steps."""
    found = {m: {k: r[k]["peak_cuda_mb"] for k in ("seed", "ours")} for m, r in speeds.items() if r}
    if not found:
        raise StepSkipped("no speed step finished")
    text = "; ".join(f"{m}: seed {p['seed']}, ours {p['ours']}" for m, p in found.items())
    return {"peak_cuda_mb": found, "summary": text}


def run_long_video(check: Checker, sizes: Sizes, folder: str) -> None:
    from refine.gpu_check_sam2 import LongVideo, model_spec

    spec = model_spec(sizes.models[0], sizes.device, sizes.image_size)
    long_video: list[LongVideo] = []
    for offload in (False, True):
        where = "offloaded to host" if offload else "on the device"
        name = f"{spec.size} {sizes.long_frames} frames {sizes.long_side}², cache {sizes.long_cache_mb:g} MB {where}"

        def run_long(_, offload=offload) -> dict:
            if not long_video:  # made by whichever step runs first
                frames, side, mb = sizes.long_frames, sizes.long_side, sizes.long_cache_mb
                long_video.append(LongVideo(folder, frames, side, spec, mb))
            return long_video[0].run(offload)

        check.step("memory", name, 60, run_long)


def run_paths(check: Checker, sizes: Sizes, args) -> None:
    """The CLI's spawned workers, then the app on the device and under a memory limit; both
    apps start first, so that they come up while the CLI runs."""
    out = args.out_dir
    dev = "--gpus 0" if sizes.device.startswith("cuda") else "--device cpu"
    apps: list[App] = []
    try:
        if check.part_left("paths") > 0:
            apps.append(App(sizes, args.port, os.path.join(out, "app.log")))
            port = args.port and args.port + 1
            apps.append(App(sizes, port, os.path.join(out, "app_oom.log"), True))
        step = f"refine run {dev} --workers 2"
        check.step("paths", step, 60, lambda left: cli_workers(sizes, out, left))
        name = f"app Run on {sizes.device} via gradio_client"
        check.step("paths", name, 30, lambda left: app_on_device(apps[0], sizes, left))
        limit = "injected" if sizes.oom_limit_mb is None else f"{sizes.oom_limit_mb:g} MB limit"
        name = f"app out of memory ({limit}), then the session runs on cpu"
        check.step("paths", name, 45, lambda left: app_out_of_memory(apps[1], sizes, left))
    finally:
        App.stop(apps)


if __name__ == "__main__":
    sys.exit(main())
