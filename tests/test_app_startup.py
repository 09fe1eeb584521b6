"""The app starts and serves its page without importing torch or sam2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.launch import REPO

SCRIPT = textwrap.dedent(
    """
    import json, sys, urllib.request
    from demo.config import AppConfig
    from tests.launch import free_port
    from demo.ui import build_app, launch_kwargs

    demo, _ = build_app(AppConfig(mevis_root="examples/data"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                quiet=True, **launch_kwargs())
    base = f"http://127.0.0.1:{port}"
    page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    config = json.loads(urllib.request.urlopen(base + "/config", timeout=30).read())
    demo.close()
    print(json.dumps({
        "page": len(page) > 1000,
        "title": config["title"],
        "components": len(config["components"]),
        "torch": "torch" in sys.modules,
        "sam2": "sam2" in sys.modules,
        "matplotlib": "matplotlib" in sys.modules,
    }))
    """
)


def test_page_serves_without_torch():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={"GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["page"] and result["title"].startswith("refine")
    assert result["components"] > 40
    assert result == {**result, "torch": False, "sam2": False, "matplotlib": False}


def test_cli_rejects_bad_arguments_with_a_clear_message():
    proc = subprocess.run(
        [sys.executable, "app.py", "--image-size", "100"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2
    assert "SAM2 image size 100" in proc.stderr and "multiple of 32" in proc.stderr
    assert "Traceback" not in proc.stderr
