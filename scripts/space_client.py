"""The client half of scripts/space_check.sh: drives a running app through gradio_client.

    python scripts/space_client.py URL [--hub-blocked]

Waits for the page, opens the bundled example birds/0, and runs SAM2 with random weights
(tiny; the server's $REFINE_APP_IMAGE_SIZE keeps it small): the stage-1, SAM2 and fused
overlays and the fusion decision must come back. With ``--hub-blocked`` (the server's
HF_ENDPOINT points at a closed port) it first asks for the real checkpoint, which must fail
at once with a one-line message naming the model, after which the session must still work.
Prints each step's time; exits non-zero on the first failed check.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from gradio_client import Client
from gradio_client.exceptions import AppError

from demo.render import FRAME_OUTPUTS, VIEW_OUTPUTS

VIEW = [name for name in VIEW_OUTPUTS if name != "session"]  # State is not sent to clients
CONTROLS = ("tiny", "cpu", "random", "mask", 0.275, "sam2")
START_TIMEOUT_S = 300


def step(label: str, fn: Callable[[], object]) -> object:
    """Run ``fn`` and print how long it took, in space_check.sh's format."""
    t0 = time.monotonic()
    print(f"-- {label}", flush=True)
    result = fn()
    print(f"-- {label:<56} {time.monotonic() - t0:7.1f} s", flush=True)
    return result


def wait_for_page(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as err:
            if time.monotonic() > deadline:
                raise SystemExit(f"the app did not answer at {url} in {START_TIMEOUT_S} s") from err
        time.sleep(1)


def view(result: tuple) -> dict:
    if len(result) != len(VIEW):
        raise SystemExit(f"/run returned {len(result)} outputs, expected {len(VIEW)}")
    return dict(zip(VIEW, result, strict=True))


def check_hub_blocked(client: Client) -> None:
    """The real checkpoint with the hub unreachable: a one-line message naming the model in
    the status area (or as an error), at once."""
    try:
        out = view(
            client.predict(
                "0",
                "tiny",
                "cpu",
                "checkpoint",
                "mask",
                0.275,
                "sam2",
                2 / 3,
                0.5,
                6,
                api_name="/run",
            )
        )
        message = html.unescape(str(out["status"]))
    except AppError as err:
        message = str(err)
    print(f"   message: {message}")
    if "facebook/sam2.1-hiera-tiny" not in message or "\n" in message.strip():
        raise SystemExit("the hub-unreachable message is not one line naming the model")


def check_run(client: Client) -> None:
    out = view(client.predict("0", *CONTROLS, 2 / 3, 0.5, 6, api_name="/run"))
    missing = [k for k in FRAME_OUTPUTS if not (out[k] and os.path.isfile(out[k]))]
    if missing:
        raise SystemExit(f"overlays missing from /run: {missing}")
    fusion = [line for line in out["decision"].splitlines() if "Fusion:" in line]
    if not fusion:
        raise SystemExit(f"no fusion decision in /run: {out['decision']!r}")
    print(f"   overlays: {', '.join(FRAME_OUTPUTS)}; decision: {fusion[0]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--hub-blocked", action="store_true")
    args = p.parse_args(argv)
    step("page answers", lambda: wait_for_page(args.url))
    client = step("gradio_client connects", lambda: Client(args.url, verbose=False))
    opened = step(
        "open example birds/0",
        lambda: view(client.predict("birds/0", *CONTROLS, api_name="/open_example")),
    )
    print(f"   case: {opened['case_info'].splitlines()[0]}")
    if args.hub_blocked:
        step("Run, real checkpoint, model hub unreachable", lambda: check_hub_blocked(client))
    step("Run SAM2 (random weights, tiny): 3 overlays + decision", lambda: check_run(client))
    return 0


if __name__ == "__main__":
    sys.exit(main())
