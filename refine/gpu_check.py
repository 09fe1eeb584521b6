"""The runner of ``scripts/gpu_check.py``: sizes, timed steps under one time budget, report.

A check is a list of steps, each in a part (``fidelity``, ``speed``, ``memory``,
``paths``) with the seconds it is expected to need. Each part may run until its share of
the budget ends (time an earlier part left unused carries over); a step that no longer
fits is recorded as skipped, one that outlives it (a subprocess or app call given the
part's remaining time) as timed out, one that raises as failed (with its error), and the
next step runs either way. The report (``gpu_check.json`` and ``gpu_check.md``) is rewritten
after every step, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

PART_SHARES = {"fidelity": 0.3, "speed": 0.25, "memory": 0.2, "paths": 0.25}
"""Share of the budget of each part, in the order they run."""
STATUSES = ("ok", "failed", "timed out", "skipped")


class NoDevice(RuntimeError):
    """The device the check is for does not exist here."""


class StepSkipped(Exception):
    """Raised by a step that cannot run (e.g. what it compares with did not run)."""


@dataclass(frozen=True)
class Sizes:
    """What one check covers. Clips are (T frames, E expressions, H, W); ``oom_limit_mb``
    None injects one out-of-memory error instead of limiting CUDA memory (no GPU)."""

    device: str
    models: tuple[str, ...]
    image_size: int
    precisions: tuple[str, ...]
    clip: tuple[int, int, int, int]
    cpu_frames: int
    speed: tuple[int, int, int, int]
    long_frames: int
    long_side: int
    long_cache_mb: float
    app_image_size: int
    oom_limit_mb: float | None
    need_scale: float
    cpu_threads: int | None = None


FULL = Sizes(
    device="cuda:0",
    models=("large", "tiny"),
    image_size=1024,
    precisions=("fp16", "bf16"),
    clip=(16, 4, 480, 854),
    cpu_frames=4,
    speed=(32, 8, 480, 854),
    long_frames=300,
    long_side=1024,
    long_cache_mb=2048.0,
    app_image_size=1024,
    oom_limit_mb=200.0,
    need_scale=1.0,
)
SMOKE = Sizes(
    device="cpu",
    models=("tiny",),
    image_size=64,
    precisions=("bf16",),
    clip=(4, 2, 48, 64),
    cpu_frames=3,
    speed=(4, 2, 48, 64),
    long_frames=12,
    long_side=64,
    long_cache_mb=0.5,
    app_image_size=64,
    oom_limit_mb=None,
    need_scale=0.05,
    cpu_threads=1,  # tiny work: on a loaded machine, more threads mostly wait for each other
)


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


class Checker:
    """Runs steps within ``budget_s`` seconds from ``started`` (a ``time.monotonic()``;
    default now), tells ``echo`` where it is (one line per event), writes the report to
    ``out_dir`` after each step."""

    def __init__(
        self,
        out_dir: str,
        budget_s: float,
        sizes: Sizes,
        meta: dict,
        echo: Callable[[str], None],
        started: float | None = None,
    ) -> None:
        self.echo = echo
        self.out_dir = out_dir
        self.budget_s = budget_s
        self.sizes = sizes
        self.meta = {**meta, "budget_s": budget_s, "sizes": asdict(sizes), "started": now_utc()}
        self.steps: list[dict] = []
        self._t0 = time.monotonic() if started is None else started
        os.makedirs(out_dir, exist_ok=True)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def part_left(self, part: str) -> float:
        """Seconds left before ``part``'s share of the budget ends."""
        shares = list(PART_SHARES)
        end = sum(PART_SHARES[p] for p in shares[: shares.index(part) + 1])
        return min(end, 1.0) * self.budget_s - self.elapsed()

    def say(self, text: str) -> None:
        self.echo(f"[{self.elapsed():6.1f} s] {text}")

    def step(self, part: str, name: str, need_s: float, fn: Callable[[float], dict]) -> dict | None:
        """Run ``fn(seconds_left)`` → result dict (with a one-line ``summary``) if the part
        still has ``need_s`` (scaled by ``sizes.need_scale``) seconds; record the outcome."""
        need = need_s * self.sizes.need_scale
        left = self.part_left(part)
        record = {"part": part, "name": name, "need_s": round(need, 1)}
        if left < need:
            record.update(status="skipped", seconds=0.0)
            record["summary"] = (
                f"skipped: {max(left, 0):.0f} s left in this part, needs ~{need:.0f} s"
            )
            self.say(f"{part}: {name}: {record['summary']}")
            return self._record(record, None)
        self.say(f"{part}: {name} …")
        t0 = time.monotonic()
        result = None
        try:
            result = fn(left)
            record.update(status="ok", result=result, summary=result.get("summary", ""))
        except StepSkipped as err:
            record.update(status="skipped", summary=f"skipped: {err}")
        except (TimeoutError, subprocess.TimeoutExpired):
            spent = time.monotonic() - t0
            record.update(
                status="timed out", summary=f"stopped when the part's time ran out ({spent:.0f} s)"
            )
        except Exception as err:  # noqa: BLE001 - a failed step is recorded; the others still run
            record.update(status="failed", summary=f"{type(err).__name__}: {err}"[:500])
            record["traceback"] = traceback.format_exc()[-4000:]
        record["seconds"] = round(time.monotonic() - t0, 2)
        self.say(
            f"{part}: {name}: {record['status']} ({record['seconds']:.1f} s) {record['summary']}"
        )
        return self._record(record, result)

    def _record(self, record: dict, result: dict | None) -> dict | None:
        self.steps.append(record)
        self.write()
        return result if record["status"] == "ok" else None

    @property
    def failed(self) -> list[dict]:
        return [s for s in self.steps if s["status"] == "failed"]

    def write(self) -> None:
        """gpu_check.json (everything) and gpu_check.md (one line per step)."""
        report = {**self.meta, "elapsed_s": round(self.elapsed(), 1), "steps": self.steps}
        with open(os.path.join(self.out_dir, "gpu_check.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, default=str)
        with open(os.path.join(self.out_dir, "gpu_check.md"), "w", encoding="utf-8") as f:
            f.write(markdown(report))


def markdown(report: dict) -> str:
    """The short report: what ran where, then one table row per step."""
    status = {s: sum(x["status"] == s for x in report["steps"]) for s in STATUSES}
    lines = [
        "# GPU check",
        "",
        f"`{report['command']}`, {report['started']}, {report['elapsed_s']:.0f} s of a "
        f"{report['budget_s']:.0f} s budget",
        "",
        f"Device: {report['device_name']}; torch {report['torch']}; weights: {report['weights']}",
        "",
        "Steps: " + ", ".join(f"{n} {s}" for s, n in status.items()) + ".",
        "",
        "Seconds per part: "
        + ", ".join(
            f"{part} {sum(s['seconds'] for s in report['steps'] if s['part'] == part):.0f}"
            for part in PART_SHARES
        ),
        "",
        "| part | step | status | s | result |",
        "|---|---|---|---:|---|",
    ]
    for s in report["steps"]:
        summary = str(s["summary"]).replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {s['part']} | {s['name']} | {s['status']} | {s['seconds']:.1f} | {summary} |"
        )
    return "\n".join(lines) + "\n"


def environment(device: str) -> dict:
    """torch version, the device's name and memory, and TF32 settings (imports torch)."""
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device_name": "cpu",
        "argv": sys.argv,
    }
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise NoDevice(f"the check is for {device}, but torch sees no CUDA device")
        props = torch.cuda.get_device_properties(device)
        env["device_name"] = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
        env["cuda"] = torch.version.cuda
        env["tf32"] = {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        }
    return env
