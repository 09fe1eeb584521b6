"""``scripts/gpu_check.py``: its CPU smoke runs every part, a spent budget skips every step,
and the fidelity comparison counts what it says. (The GPU figures are the script's
business; nothing here needs a GPU.)"""

import json
import os
import subprocess
import sys

import numpy as np

from refine.gpu_check_sam2 import compare

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "gpu_check.py")
PARTS = {"fidelity", "speed", "memory", "paths"}


def _check(out, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    with open(out / "gpu_check.json", encoding="utf-8") as f:
        return proc, json.load(f)


def test_smoke_runs_every_part_on_cpu(tmp_path):
    proc, report = _check(tmp_path, "--budget-s", "900", "--port", "0", timeout=600)
    steps = {(s["part"], s["name"]): s for s in report["steps"]}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [s for s in steps.values() if s["status"] != "ok"] == []
    assert {part for part, _ in steps} == PARTS
    results = {name: s["result"] for (_, name), s in steps.items()}

    bf16 = results["tiny bf16 autocast vs fp32"]
    assert 0 < bf16["iou_min"] <= bf16["iou_mean"] <= 1
    assert set(bf16["iou_per_expression"]) == {"0", "1"}
    # on the smoke's CPU "device vs cpu" compares the CPU with itself: bitwise equal
    same = results["tiny fp32 cpu vs fp32 cpu, T=3"]
    assert same["masks_identical"] and same["decisions_identical"] and same["iou_min"] == 1
    speed = results["tiny seed schedule vs lockstep, E=2 T=4 at 64"]
    assert speed["masks_identical"] and speed["ours"]["encoder_calls"] == 4
    offloaded = results["tiny 12 frames 64², cache 0.5 MB offloaded to host"]
    assert offloaded["masks_identical_to_other_mode"] is True
    assert 0 < offloaded["cache"]["held_mb"] <= 0.5 and offloaded["cache_counts"]["evictions"] > 0
    oom = results["app out of memory (injected), then the session runs on cpu"]
    assert "SAM2 ran out of memory on birds/0" in oom["message"]
    assert oom["then_on_cpu"].startswith("Fusion:")
    assert results["refine run --device cpu --workers 2"]["pngs"] == 48
    md = (tmp_path / "gpu_check.md").read_text()
    assert f"Steps: {len(steps)} ok, 0 failed, 0 timed out, 0 skipped." in md


def test_a_spent_budget_skips_every_step_and_still_reports(tmp_path):
    proc, report = _check(tmp_path, "--budget-s", "0", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["steps"] and all(s["status"] == "skipped" for s in report["steps"])
    assert {s["part"] for s in report["steps"]} == PARTS
    assert "skipped: 0 s left in this part" in report["steps"][0]["summary"]
    assert not (tmp_path / "app.log").exists()  # no app was started


def test_compare_gives_per_expression_iou_and_decision_changes():
    ref = np.zeros((2, 4, 4), bool)
    ref[:, :2] = True  # 8 pixels per frame
    test = ref.copy()
    test[1, 2] = True  # frame 1: union 12, intersection 8
    r = compare({"a": (ref, False), "b": (ref, True)}, {"a": (ref, False), "b": (test, False)})
    assert r["iou_per_expression"] == {"a": 1.0, "b": (1 + 8 / 12) / 2}
    assert r["iou_min"] == (1 + 8 / 12) / 2 and r["iou_worst_frame"] == 8 / 12
    assert not r["masks_identical"]
    assert not r["decisions_identical"] and r["decisions_differ"] == ["b"]
