"""End to end in headless Chromium: open an example, run, move ρ, check the re-fusion.

Two app processes on 127.0.0.1: one with SAM2 itself (random weights, tiny, 128 px input)
and one with the fake SAM2 (``--fake-sam2``), whose masks make the fusion decision flip when
ρ moves (random-weight SAM2 masks cover the whole frame, so they never trigger the union).
The first also saves a screenshot: to the test's tmp folder, or to docs/screenshot.png
(the README's picture) when REFINE_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.launch import CHROMIUM, CHROMIUM_ARGS, REPO, start_app, stop_app, wait_until_up

LONG = 180_000  # ms: a fresh 2-core CI machine loads SAM2 slowly
SHORT = 60_000
DOCS_SCREENSHOT = os.path.join(REPO, "docs", "screenshot.png")


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture
def app(tmp_path, request):
    proc, url = start_app(request.param, log_path=str(tmp_path / "app.log"))
    try:
        wait_until_up(url, proc, timeout=120)
        yield url
    finally:
        stop_app(proc)


def _open_birds(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#run-button")).to_be_visible(timeout=SHORT)
    page.get_by_text("the two birds flying apart").first.click()
    expect(page.locator("#case-info")).to_contain_text("Expression 0", timeout=SHORT)
    expect(page.locator("#img-stage1 img")).to_be_visible(timeout=SHORT)


def _run(page: Page) -> None:
    page.locator("#run-button").click()
    expect(page.locator("#sam2-runs")).to_contain_text("SAM2 runs this session: 1", timeout=LONG)
    expect(page.locator("#img-fused img")).to_be_visible(timeout=SHORT)


def _set_slider(page: Page, elem_id: str, value: float) -> None:
    page.locator(f"#{elem_id} input[type=range]").fill(str(value))


@pytest.mark.parametrize(
    "app", [["--random-weights", "--model-size", "tiny", "--image-size", "128"]], indirect=True
)
def test_random_weight_sam2_run_and_live_fusion(browser, app, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    _open_birds(page, app)
    expect(page.locator("#random-banner")).to_contain_text("RANDOM WEIGHTS", timeout=SHORT)
    _run(page)
    expect(page.locator("#decision")).to_contain_text("Fusion: SAM2 only", timeout=SHORT)
    expect(page.locator("#decision")).to_contain_text("ρ = 2/3")
    expect(page.locator("#vid-fused video")).to_have_attribute(
        "src", re.compile(r"\.mp4"), timeout=LONG
    )
    _set_slider(page, "area-ratio", 0.2)
    expect(page.locator("#decision")).to_contain_text("ρ = 1/5", timeout=SHORT)
    _set_slider(page, "frame", 5)
    expect(page.locator("#frame input[type=number]")).to_have_value("5", timeout=SHORT)
    expect(page.locator("#sam2-runs")).to_contain_text("SAM2 runs this session: 1")
    page.wait_for_timeout(1500)  # let the videos and plots settle before the screenshot
    shot = str(tmp_path / "screenshot.png")
    if os.environ.get("REFINE_UPDATE_SCREENSHOT") == "1":
        shot = DOCS_SCREENSHOT
    page.screenshot(path=shot, full_page=True)
    assert os.path.getsize(shot) > 50_000
    page.close()


@pytest.mark.parametrize("app", [["--fake-sam2"]], indirect=True)
def test_rho_flips_the_fused_overlay_without_a_new_sam2_run(browser, app):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    _open_birds(page, app)
    _set_slider(page, "frame", 6)
    expect(page.locator("#frame input[type=number]")).to_have_value("6", timeout=SHORT)
    _run(page)
    expect(page.locator("#decision")).to_contain_text("Fusion: union of SAM2 and stage 1")
    fused = page.locator("#img-fused img")
    union_src = fused.get_attribute("src")
    _set_slider(page, "area-ratio", 0)
    expect(page.locator("#decision")).to_contain_text("Fusion: SAM2 only", timeout=SHORT)
    expect(fused).not_to_have_attribute("src", union_src, timeout=SHORT)
    _set_slider(page, "area-ratio", 0.9)
    expect(page.locator("#decision")).to_contain_text("Fusion: union", timeout=SHORT)
    expect(fused).to_have_attribute("src", union_src, timeout=SHORT)  # same image again
    expect(page.locator("#sam2-runs")).to_contain_text("SAM2 runs this session: 1")
    # failure cases: rank the examples, then a click on a row opens that case
    page.get_by_role("tab", name="Failure cases").click()
    page.locator("#rank-button").click()
    table = page.locator("#rank-table")
    expect(table).to_contain_text("the ball that jumps over the fence", timeout=LONG)
    expect(page.locator("#sam2-runs")).to_contain_text("SAM2 runs this session: 3")
    table.get_by_text("the blue ball").click()
    expect(page.locator("#case-info")).to_contain_text("“the blue ball”", timeout=SHORT)
    expect(page.locator("#decision")).to_contain_text("Fusion: SAM2 only", timeout=SHORT)
    page.close()
