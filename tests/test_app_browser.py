"""The app as a person uses it, in headless Chromium at 1366×768.

Most tests share one app process with the fake SAM2 (``--fake-sam2``: fast, and its masks
make the fusion decision flip when ρ moves); one runs SAM2 itself (random weights, tiny,
128-px input). Every test ends by checking the server log for tracebacks. With
REFINE_UPDATE_SCREENSHOT=1 the screenshots go to docs/ (the README's pictures), else to the
test's tmp folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from demo.config import EXAMPLES_ROOT
from tests.launch import CHROMIUM, CHROMIUM_ARGS, REPO, start_app, stop_app, wait_until_up

LONG = 180_000  # ms: a fresh 2-core CI machine loads SAM2 slowly
SHORT = 60_000
VIEWPORT = {"width": 1366, "height": 768}
IN_VIEW = (  # what must be visible together without scrolling
    "#example",
    "#expression",
    "#run-button",
    "#stop-button",
    "#status",
    "#area-ratio",
    "#vote",
    "#img-stage1",
    "#img-sam2",
    "#img-fused",
    "#frame",
)


def _shot(page: Page, name: str, tmp_path) -> None:
    folder = (
        os.path.join(REPO, "docs")
        if os.environ.get("REFINE_UPDATE_SCREENSHOT") == "1"
        else tmp_path
    )
    path = os.path.join(folder, f"app-{name}.png")
    page.screenshot(path=path)
    assert os.path.getsize(path) > 20_000


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


class App:
    def __init__(self, url: str, log: str) -> None:
        self.url, self.log = url, log

    def log_text(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture(scope="module")
def fake_app(tmp_path_factory):
    log = str(tmp_path_factory.mktemp("fake") / "app.log")
    proc, url = start_app(["--fake-sam2"], log_path=log)
    try:
        wait_until_up(url, proc, timeout=120)
        yield App(url, log)
    finally:
        stop_app(proc)


@pytest.fixture
def page(browser, fake_app):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(fake_app.url)
    expect(page.locator("#run-button")).to_be_visible(timeout=SHORT)
    yield page
    page.close()
    _no_traceback(fake_app)


def _no_traceback(app: App) -> None:
    log = app.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 200 :][:4000]


def _no_errors_shown(page: Page) -> None:
    """No red "Error" label on any component, no error toast, no internal error."""
    page.wait_for_timeout(700)
    labels = [e for e in page.get_by_text("Error", exact=True).all() if e.is_visible()]
    assert labels == [], "a component shows an Error label"
    assert page.locator(".toast-body.error").count() == 0
    assert page.get_by_text("Internal error").count() == 0


def _set_slider(page: Page, elem_id: str, value: float) -> None:
    """Set a slider once its range allows ``value`` (a case's frame count reaches the
    slider a moment after its overlays; filling before clamps the value)."""
    page.wait_for_function(
        "([id, v]) => Number(document.querySelector(`#${id} input[type=range]`).max) >= v",
        arg=[elem_id, value],
        timeout=SHORT,
    )
    page.locator(f"#{elem_id} input[type=range]").fill(str(value))


def _drag(page: Page, elem_id: str) -> None:
    """Drag a slider's thumb with the mouse from its left end to its right end."""
    box = page.locator(f"#{elem_id} input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, y, steps=4)
    page.mouse.up()


def _open_example(page: Page, label: str) -> None:
    page.locator("#example input").click()
    page.get_by_role("option", name=re.compile(re.escape(label))).click()
    expect(page.locator("#case-info")).to_contain_text("Expression", timeout=SHORT)
    expect(page.locator("#img-stage1 img")).to_be_visible(timeout=SHORT)


def _run(page: Page, runs: int = 1) -> None:
    page.locator("#run-button").click()
    expect(page.locator("#sam2-runs")).to_contain_text(
        f"SAM2 runs this session: {runs}", timeout=LONG
    )
    expect(page.locator("#img-fused img")).to_be_visible(timeout=SHORT)


def _touch_every_control(page: Page) -> None:
    """Click or drag every control of the page (what a curious person does first)."""
    for slider in ("frame", "area-ratio", "vote"):
        _drag(page, slider)
    page.locator("#expression input").click()
    page.keyboard.press("Escape")
    page.locator("#stop-button").click()
    page.locator("#run-button").click()
    page.wait_for_timeout(500)
    page.locator("#settings").get_by_text("Model and selection settings").click()
    _drag(page, "threshold")
    page.locator("#prompt").get_by_text("box").click()
    page.locator("#prompt").get_by_text("mask").click()
    page.locator("#size input").click()
    page.keyboard.press("Escape")
    page.locator("#device input").click()
    page.keyboard.press("Escape")
    page.locator("#reset").click()
    page.locator("#settings").get_by_text("Model and selection settings").click()
    for tab in ("Diagnostics", "Downloads", "Failure cases", "About", "Videos"):
        page.get_by_role("tab", name=tab).click()
        if tab == "Downloads":
            page.locator("#prepare").click()
        if tab == "Failure cases":
            page.locator("#rank-order").get_by_text("change from stage 1").click()
    page.get_by_role("tab", name="Upload").click()
    page.locator("#up-load").click()
    page.get_by_role("tab", name="Examples").click()


def _bad_upload(page: Page, tmp_path) -> None:
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip")
    npz = os.path.join(EXAMPLES_ROOT, "stage1", "birds.npz")
    page.get_by_role("tab", name="Upload").click()
    page.locator("#up-video input[type=file]").set_input_files(str(bad))
    page.locator("#up-stage1 input[type=file]").set_input_files(npz)
    page.wait_for_timeout(1000)
    page.locator("#up-load").click()
    expect(page.locator("#status")).to_contain_text("broken.zip: not a readable zip", timeout=SHORT)


def test_every_control_on_a_fresh_page_and_after_a_failed_upload(page, fake_app, tmp_path):
    expect(page.locator("#case-info")).not_to_contain_text("click an example above")
    _touch_every_control(page)
    _no_errors_shown(page)
    expect(page.locator("#img-stage1 img")).to_have_count(0)  # still no case
    _bad_upload(page, tmp_path)
    status = page.locator("#status").inner_text()
    assert "/tmp" not in status and "gradio" not in status  # no server paths
    _no_errors_shown(page)
    page.get_by_role("tab", name="Examples").click()
    _touch_every_control(page)
    _no_errors_shown(page)
    _no_traceback(fake_app)


def test_a_failed_upload_keeps_the_open_case_and_its_message(page, tmp_path):
    _open_example(page, "the two birds flying apart")
    _run(page)
    _bad_upload(page, tmp_path)
    page.get_by_role("tab", name="Examples").click()
    _set_slider(page, "frame", 4)  # moving on does not hide the message
    expect(page.locator("#frame input[type=number]")).to_have_value("4", timeout=SHORT)
    expect(page.locator("#status")).to_contain_text("not a readable zip")
    expect(page.locator("#case-info")).to_contain_text("the two birds flying apart")
    expect(page.locator("#img-fused img")).to_be_visible()
    _no_errors_shown(page)
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "failed-upload", tmp_path)


def test_stop_with_nothing_running_says_so(page):
    page.locator("#stop-button").click()
    expect(page.locator("#status")).to_have_text("Nothing is running.", timeout=SHORT)


def test_layout_shows_controls_and_results_together_at_1366x768(page, tmp_path):
    _shot(page, "fresh", tmp_path)
    _open_example(page, "the two birds flying apart")
    _run(page)
    for selector in IN_VIEW:
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], selector
    assert page.evaluate("window.scrollY") == 0
    expect(page.locator("#area-ratio")).to_contain_text("2/3")  # the default as a fraction
    expect(page.locator("#decision")).to_contain_text("ρ = 2/3")


def test_expression_list_keeps_the_frame_and_searches_sentences(page):
    _open_example(page, "the two birds flying apart")
    _set_slider(page, "frame", 5)
    expect(page.locator("#frame input[type=number]")).to_have_value("5", timeout=SHORT)
    box = page.locator("#expression input")
    box.click()  # open and close the list without a change
    page.keyboard.press("Escape")
    page.locator("#case-info").click()
    page.wait_for_timeout(1000)
    expect(page.locator("#frame input[type=number]")).to_have_value("5")
    box.click()
    box.fill("yellow")  # search by sentence
    page.get_by_role("option", name=re.compile("the yellow bird")).click()
    expect(page.locator("#case-info")).to_contain_text("Expression **1**".replace("**", ""))
    box.click()
    box.fill("the yel")  # typed text that is no expression, then leave the box
    page.locator("#case-info").click()
    expect(box).to_have_value(re.compile("^1: the yellow bird"), timeout=SHORT)
    expect(page.locator("#status")).not_to_contain_text("no expression")
    _no_errors_shown(page)


def test_rho_flips_the_fused_overlay_without_a_new_sam2_run(page):
    _open_example(page, "the two birds flying apart")
    _set_slider(page, "frame", 6)
    expect(page.locator("#frame input[type=number]")).to_have_value("6", timeout=SHORT)
    _run(page)
    expect(page.locator("#decision")).to_contain_text("Fusion: union of SAM2 and stage 1")
    fused = page.locator("#img-fused img")
    union_src = fused.get_attribute("src")
    _set_slider(page, "area-ratio", 0)
    expect(page.locator("#decision")).to_contain_text("Fusion: SAM2 only", timeout=SHORT)
    expect(fused).not_to_have_attribute("src", union_src, timeout=SHORT)
    _set_slider(page, "area-ratio", 1)
    expect(page.locator("#decision")).to_contain_text("under ρ = 1 ×", timeout=SHORT)
    expect(page.locator("#decision")).to_contain_text("Fusion: union", timeout=SHORT)
    expect(page.locator("#sam2-runs")).to_contain_text("SAM2 runs this session: 1")


def test_a_sorted_failure_table_opens_the_clicked_row(page):
    """Bug: after a column sort, a click opened the case of the row at that index in the
    server's order."""
    _open_example(page, "the two birds flying apart")
    page.get_by_role("tab", name="Failure cases").click()
    page.locator("#rank-button").click()
    table = page.locator("#rank-table")
    expect(table).to_contain_text("the ball that jumps over the fence", timeout=LONG)
    widths = page.evaluate(
        "() => { const t = document.querySelector('#rank-table .table-wrap')"
        " || document.querySelector('#rank-table');"
        " return [t.scrollWidth, t.clientWidth]; }"
    )
    assert widths[0] <= widths[1], f"the table's columns overflow: {widths}"  # none cut off
    rows = table.locator(".virtual-row")  # the rows as shown (Gradio's virtual table)
    first_sentence = rows.first.locator("[role=gridcell]").nth(3)
    before = first_sentence.inner_text()
    header = table.locator("thead th", has_text="sentence")
    header.hover()
    header.locator("button.cell-menu-button").click(force=True)
    page.get_by_text("Sort descending").first.click()  # sentences Z→A
    expect(first_sentence).not_to_have_text(before, timeout=SHORT)
    row = rows.first
    video, sentence = (row.locator("[role=gridcell]").nth(i).inner_text() for i in (1, 3))
    row.locator("[role=gridcell]").nth(3).click()
    expect(page.locator("#case-info")).to_contain_text(f"“{sentence.strip()}”", timeout=SHORT)
    expect(page.locator("#case-info")).to_contain_text(video.strip())
    _no_errors_shown(page)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_png_mask_upload_with_meta_expressions_shows_the_sentences(page, tmp_path):
    frames = tmp_path / "clip.zip"
    masks = tmp_path / "masks.zip"
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    with zipfile.ZipFile(frames, "w") as zf, zipfile.ZipFile(masks, "w") as zm:
        for t in range(3):
            zf.writestr(f"{t:05d}.png", _png(rgb))
            zm.writestr(f"7/{t:05d}.png", _png(mask))
        meta = {"videos": {"clip": {"expressions": {"7": {"exp": "the square in the middle"}}}}}
        zm.writestr("meta_expressions.json", json.dumps(meta))
    page.get_by_role("tab", name="Upload").click()
    page.locator("#up-video input[type=file]").set_input_files(str(frames))
    page.locator("#up-stage1 input[type=file]").set_input_files(str(masks))
    page.wait_for_timeout(1000)
    page.locator("#up-load").click()
    expect(page.locator("#case-info")).to_contain_text("“the square in the middle”", timeout=SHORT)
    expect(page.locator("#case-info")).to_contain_text("1 expression ·")
    _no_errors_shown(page)


@pytest.fixture
def sam2_app(tmp_path):
    log = str(tmp_path / "app.log")
    proc, url = start_app(["--random-weights", "--image-size", "128"], log_path=log)
    try:
        wait_until_up(url, proc, timeout=120)
        yield App(url, log)
    finally:
        stop_app(proc)


def test_random_weight_sam2_run_defaults_to_tiny(browser, sam2_app, tmp_path):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(sam2_app.url)
    expect(page.locator("#random-banner")).to_contain_text("RANDOM WEIGHTS", timeout=SHORT)
    _open_example(page, "the two birds flying apart")
    _run(page)
    expect(page.locator("#status")).to_contain_text(
        "SAM2.1 tiny"
    )  # the default without a checkpoint
    expect(page.locator("#decision")).to_contain_text("Fusion: SAM2 only", timeout=SHORT)
    expect(page.locator("#vid-fused video")).to_have_attribute(
        "src", re.compile(r"\.mp4"), timeout=LONG
    )
    _set_slider(page, "frame", 5)
    expect(page.locator("#frame input[type=number]")).to_have_value("5", timeout=SHORT)
    page.wait_for_timeout(1500)  # let the videos settle before the screenshot
    _shot(page, "after-run", tmp_path)
    _no_errors_shown(page)
    page.close()
    _no_traceback(sam2_app)
