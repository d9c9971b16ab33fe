"""The Models tab's exports in a real browser: what an export says sits next to its buttons,
a refusal names the setting on the page (not a CLI flag), and the download offered is always
the file of the last export asked for, never an older one."""
from __future__ import annotations

import zipfile

import pytest

from ui_helpers import InProcessApp, OUTPUT, install_tiny_model, launch_browser, needs_chromium

pytestmark = needs_chromium()


@pytest.fixture(scope="module")
def app(tmp_path_factory, faceset_a, faceset_b):
    served = InProcessApp(tmp_path_factory.mktemp("models-web") / "ws")
    install_tiny_model(served.workspace.root / "models", tmp_path_factory.getbasetemp(),
                       faceset_a, faceset_b)        # expression-guided: no .dfm from it
    import shutil
    models = served.workspace.root / "models"
    shutil.copytree(models / "tiny_model", models / "second")
    yield served
    served.close()


def choose(page, model: str) -> None:
    page.locator("#model-pick input").click()
    page.get_by_role("option", name=model, exact=True).click()
    page.locator("#model-details strong", has_text=model).first.wait_for(timeout=30_000)


def download(page, tmp_path, name: str):
    """Click the export's download and return the file the browser saved."""
    with page.expect_download(timeout=20_000) as got:
        page.locator("#export-download").click()
    path = tmp_path / got.value.suggested_filename
    got.value.save_as(path)
    return path


def test_export_notice_sits_by_its_buttons_and_the_download_follows(app, tmp_path):
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(app.url)
        page.get_by_role("tab", name="Models").click()
        choose(page, "tiny_model")
        page.get_by_text("Rename, export, delete").click()
        notice = page.locator("#export-notice")
        # the whole model, then the download is that zip
        page.get_by_role("button", name="Export as one file").click()
        notice.get_by_text("Exported").wait_for(timeout=60_000)
        full = download(page, tmp_path, "full")
        assert full.name == "tiny_model.zip"
        # .dfm of a guided model: refused next to the button, in the page's words, and the
        # zip's download is gone
        dfm = page.get_by_role("button", name="Export as DeepFaceLive .dfm")
        dfm.click()
        notice.get_by_text("Expression guide").wait_for(timeout=60_000)
        said = notice.inner_text()
        assert "--no-guide" not in said and "expression-guided" in said
        assert not page.locator("#export-download").is_visible()
        gap = notice.bounding_box()["y"] - (dfm.bounding_box()["y"] + dfm.bounding_box()["height"])
        assert 0 <= gap < 120, gap           # right under the buttons, not 500 px above
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "models-export-refused.png"), full_page=True)
        # for rendering: a smaller file, said so, and the download is that file
        page.get_by_role("button", name="Export for rendering (smaller)").click()
        notice.get_by_text("cannot continue training").wait_for(timeout=60_000)
        small = download(page, tmp_path, "small")
        assert small.name == "tiny_model-for-rendering.zip"
        assert small.stat().st_size < full.stat().st_size
        with zipfile.ZipFile(small) as zf:
            assert "optimizer.safetensors" not in zf.namelist()
        page.screenshot(path=str(OUTPUT / "models-export.png"), full_page=True)
        # another model chosen: the last export was not of it, so its link goes
        choose(page, "second")
        page.locator("#export-download").wait_for(state="hidden", timeout=20_000)
        assert notice.inner_text().strip() == ""
        # (a local app: the System tab says no public link is open)
        page.get_by_role("tab", name="System").click()
        page.locator("#system-info").get_by_text("Off: no public link").wait_for(
            timeout=30_000)
