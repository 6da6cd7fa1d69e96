"""The app end to end in a real browser: Debian's Chromium driven headless by Playwright for Python.

Never a browser download: where Chromium or Playwright is missing the tests skip and say how to install them.
One app (the tiny denoiser, 64x64 pictures) serves every test of this module.
"""

from __future__ import annotations

import io
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tunify.cli import main

INSTALL = (
    "install it with: apt-get install -y chromium && pip install playwright (never `playwright install`)"
)
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
sync_api = pytest.importorskip("playwright.sync_api", reason=f"Playwright for Python is missing; {INSTALL}")
pytest.importorskip("gradio", reason="gradio is missing: pip install 'tunify[app]'")
if CHROMIUM is None:
    pytest.skip(f"Chromium is not installed; {INSTALL}", allow_module_level=True)

TIMEOUT_MS = 30_000
RADIUS = 3  # receptive-field radius of the tiny DnCNN in conftest.py: three 3x3 convolutions
pytestmark = pytest.mark.browser  # a real browser and a server (CI installs Chromium)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """The settings of every preview the server computes (the painted mask is read from here)."""

    def __init__(self) -> None:
        self.masks: list[torch.Tensor | None] = []


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Iterator[tuple[str, Recorder]]:
    from tunify.app import session
    from tunify.app.serve import launch

    recorder = Recorder()
    preview = session.Tuner.preview

    def recording(
        self: session.Tuner, picture: session.Picture, settings: session.Settings
    ) -> session.Result:
        recorder.masks.append(settings.mask)
        return preview(self, picture, settings)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(session.Tuner, "preview", recording)
        app, url = launch(str(model_dir), port=free_port(), block=False)
        try:
            yield url, recorder
        finally:
            app.close()


@pytest.fixture(scope="module")
def page(served: tuple[str, Recorder]) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(served[0])
        page.wait_for_selector("#omega0 input[type=range]")
        yield page
        browser.close()


def after_image(page: sync_api.Page, previous: str | None = None) -> tuple[str, np.ndarray]:
    """The 'after' side of the before/after comparison (waits until it differs from ``previous``)."""
    page.wait_for_function(
        "prev => { const im = document.querySelectorAll('#compare img'); "
        "return im.length == 2 && im[1].src && im[1].src != prev; }",
        arg=previous or "",
    )
    src = page.locator("#compare img").nth(1).get_attribute("src")
    body = page.request.get(src).body()
    return src, np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)


def upload(page: sync_api.Page, path: Path) -> None:
    """Open a file in the page (clearing the one shown before, which hides the file input)."""
    clear = page.locator("#upload button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.set_input_files("#upload input[type=file]", str(path))


def toast(page: sync_api.Page, text: str) -> None:
    """Wait for an error message in the page, then close it (toasts cover the buttons beneath them)."""
    page.get_by_text(text).first.wait_for()
    closers = page.locator(".toast-close")
    for i in range(closers.count()):
        closers.nth(i).click()


def test_tune_paint_and_download(
    page: sync_api.Page, served: tuple[str, Recorder], model_dir: Path, image_path: Path, tmp_path: Path
) -> None:
    recorder = served[1]
    assert "tunify" in page.title()
    upload(page, image_path)
    src, first = after_image(page)
    assert first.shape == (64, 64, 3)

    page.locator("#omega0 input[type=range]").fill("0.8")  # ω = (0.2, 0.8)
    src, moved = after_image(page, src)
    assert np.abs(moved - first).max() > 2
    reference = tmp_path / "apply.png"
    assert (
        main(
            ["apply", str(image_path), "--omega", "0.2,0.8", "--model", str(model_dir), "-o", str(reference)]
        )
        == 0
    )
    assert np.abs(moved - np.asarray(Image.open(reference).convert("RGB")).astype(int)).max() <= 1

    canvas = page.locator("#editor canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.35, steps=4)
    page.mouse.up()
    src, painted = after_image(page, src)
    mask = recorder.masks[-1]
    assert mask is not None and 0 < mask.sum() < mask.numel() / 2
    reach = torch.nn.functional.max_pool2d(mask[None, None], 2 * RADIUS + 1, 1, RADIUS)[0, 0].numpy() > 0
    changed = np.abs(painted - moved).max(axis=2) > 1
    assert changed.any() and not changed[~reach].any()  # only the region, plus the receptive field

    page.click("#export")
    link = page.locator("#download a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    saved = tmp_path / "download.png"
    info.value.save_as(saved)
    with Image.open(saved) as im:
        assert im.text["omega"] == "0.2,0.8" and im.text["omega_region"] == "0,1"
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - painted).max() <= 1
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)


def test_bad_input_shows_an_error_and_the_server_keeps_serving(
    page: sync_api.Page, tmp_path: Path, image_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    upload(page, text)
    toast(page, "notes.png is not an image")
    page.fill("#typed textarea, #typed input", "1.5,-0.5")
    page.press("#typed textarea, #typed input", "Enter")
    toast(page, "typed ω values must lie in [0, 1]")  # the field, not the command line's --omega
    page.fill("#model textarea, #model input", str(tmp_path / "no-model"))
    page.click("#load")
    toast(page, "cannot load the model")
    shown = page.locator("#compare img")
    upload(page, image_path)  # still serving
    after_image(page, shown.nth(1).get_attribute("src") if shown.count() == 2 else None)


def test_a_three_entry_model_loaded_in_the_page_keeps_its_sliders_summing_to_one(
    page: sync_api.Page, mix_dir: Path
) -> None:
    page.fill("#model textarea, #model input", str(mix_dir))
    page.click("#load")
    page.get_by_text("ω3: udnie").first.wait_for()
    page.locator("#omega0 input[type=range]").fill("0.7")
    numbers = [page.locator(f"#omega{i} input[type=number]") for i in range(3)]
    page.wait_for_function("() => document.querySelector('#omega1 input[type=number]').value == '0.15'")
    assert [float(n.input_value()) for n in numbers] == [0.7, 0.15, 0.15]
