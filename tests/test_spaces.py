"""ZeroGPU: with a stub ``spaces`` package importable, the app's one GPU entry point is
wrapped in ``spaces.GPU`` with a duration that grows with the frames, Run goes through the
wrapper, and importing the app touches nothing CUDA-related (not even torch)."""

import os
import subprocess
import sys
import textwrap

from tests.test_packaging import ROOT

STUB = '''
"""Stub of Hugging Face's `spaces`: GPU(duration=f) records (function, f(*args)) per call."""
import sys

TORCH_AT_IMPORT = "torch" in sys.modules
calls = []


def GPU(task=None, *, duration=None, size=None):
    def wrap(fn):
        def wrapped(*args, **kwargs):
            calls.append((fn.__name__, duration(*args, **kwargs)))
            return fn(*args, **kwargs)

        wrapped.original = fn
        return wrapped

    return wrap(task) if callable(task) else wrap
'''

CHECK = """
import sys

import app  # the Space's app_file: everything the page needs at start
import spaces

assert not spaces.TORCH_AT_IMPORT, "torch was imported before spaces"
assert "torch" not in sys.modules, "importing the app imported torch"
import demo.gpu as gpu
from demo.callbacks import Callbacks
from demo.config import AppConfig
from demo.controls import Controls

assert gpu.track_expression.original.__name__ == "track_expression"
cb = Callbacks(AppConfig(image_size=64))
assert cb.ctx.track.func is gpu.track_expression  # the wrapped function is the tracker
controls = Controls("tiny", "cpu", "random", "mask", 0.275)
session = cb.cases.open_example(None, "birds/0", controls)["session"]
out = cb.runs.run(session, "0", controls, 2 / 3, 0.5, 0, progress=lambda *a, **k: None)
assert out["img_sam2"] is not None and "Fusion:" in out["decision"], out
assert "Ran SAM2.1 tiny on cpu (RANDOM weights, input 64px)" in out["status"], out["status"]
assert spaces.calls == [("track_expression", gpu.GPU_BASE_S + 12)], spaces.calls
session.close()
print("ok")
"""


def test_run_goes_through_spaces_gpu_and_import_stays_off_cuda(tmp_path):
    (tmp_path / "spaces.py").write_text(textwrap.dedent(STUB))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_gpu_duration_grows_with_the_frames():
    from demo.gpu import GPU_BASE_S, gpu_duration

    assert gpu_duration(range(10)) == GPU_BASE_S + 10
    assert gpu_duration(range(500), "0", None, None, None, None, cache_mb=1) > gpu_duration(
        range(10)
    )


def test_space_check_relies_on_files_that_exist():
    from demo.config import IMAGE_SIZE_ENV

    script = (ROOT / "scripts/space_check.sh").read_text()
    for name in (
        "app.py",
        "requirements.txt",
        "scripts/check_lib.sh",
        "scripts/space_client.py",
        "examples/data/JPEGImages/birds",
        "examples/data/stage1/birds.npz",
    ):
        assert (ROOT / name).exists(), name
    for word in (IMAGE_SIZE_ENV, "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "HF_ENDPOINT"):
        assert word in script, word
    # the builder's own `pip install spaces` then changes nothing that the lock pinned
    assert "\nspaces==" in (ROOT / "requirements.txt").read_text()
    for sh in ("space_check.sh", "install_check.sh", "check_lib.sh", "setup.sh", "lock.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "scripts" / sh)], check=True)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/space_client.py"), "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "--hub-blocked" in out.stdout, out.stderr
