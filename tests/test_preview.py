"""Frame preview: the render's pixels for one frame, cached so a settings change is cheap, and
`/preview_frame` through the real API (with its latency at 720p: docs/benchmarks.md)."""
from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pytest

from localswap.bench import samples as mb
from model_fixtures import one_torch_thread, tiny_model, tiny_plain_model  # noqa: F401  (fixtures)
from ui_helpers import OUTPUT, InProcessApp, install_tiny_model, wait_for


@pytest.mark.parametrize("which, bound", [("tiny_plain_model", 6), ("tiny_model", 8)])
def test_preview_matches_the_render(which, bound, request, video_a, tmp_path):
    from localswap import media
    from localswap.convert.render import convert
    from localswap.convert.preview import FramePreview
    from localswap.settings import ConvertSettings
    model = request.getfixturevalue(which)
    s = ConvertSettings(smooth=0.0, device="cpu", end=0.5)
    with one_torch_thread():
        convert(video_a, model, tmp_path / "out.mp4", s)
        original, swapped = FramePreview()(video_a, model, 5, s)
    rendered = next(f for i, _, f in media.read_frames(tmp_path / "out.mp4") if i == 5)
    changed = np.abs(swapped.astype(int) - original).max(-1) > 24
    assert changed.mean() > 0.01, "the preview shows no swapped face"
    # Same frame, same code path; between them H.264 (crf 18) and the landmarks: the preview
    # detects on the still frame, the render follows the video's tracker. Measured at crf 0 the
    # difference is 3.2 levels for a plain model and 4.7 for an expression-guided one, whose
    # lines and hidden eyes and mouth follow the landmarks too (4.0 / 5.1-6.1 at crf 18).
    assert np.abs(swapped.astype(int) - rendered)[changed].mean() < bound


def test_a_settings_change_reuses_frame_faces_and_model(tiny_model, video_a,  # noqa: F811
                                                        monkeypatch):
    from localswap.convert import preview
    from localswap.settings import ConvertSettings
    p = preview.FramePreview()
    calls = {"model": 0, "decode": 0}
    real_model, real_read = preview.run_model, preview.media.read_frames

    def count(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped
    monkeypatch.setattr(preview, "run_model", count("model", real_model))
    monkeypatch.setattr(preview.media, "read_frames", count("decode", real_read))
    with one_torch_thread():
        _, first = p(video_a, tiny_model, 3, ConvertSettings())
        # one decode of the frame, one of the frames before it the hand tracker follows
        assert calls == {"model": 1, "decode": 2}
        _, again = p(video_a, tiny_model, 3, ConvertSettings(color="none", erode=0, blur=4))
    assert calls == {"model": 1, "decode": 2}
    assert not np.array_equal(first, again)
    with pytest.raises(Exception, match="outside the video"):
        p(video_a, tiny_model, 10_000, ConvertSettings())


@pytest.fixture(scope="module")
def server(tmp_path_factory, faceset_a, faceset_b):
    app = InProcessApp(tmp_path_factory.mktemp("preview") / "ws")
    install_tiny_model(app.workspace.root / "models", tmp_path_factory.getbasetemp(),
                       faceset_a, faceset_b)
    yield app
    app.close()


def test_preview_frame_api_latency_at_720p(server, media_dir):
    """The benchmark: median and p95 per settings change through gradio_client, 64 px model,
    1280x720 frame (figures go to tests/_output/preview_latency.json)."""
    from gradio_client import Client, handle_file

    from localswap import media
    clip = handle_file(str(mb.clip_720p(media_dir, 24)))
    client = Client(server.url, verbose=False,
                    download_files=str(server.workspace.root.parent / "downloads"))
    first = time.perf_counter()
    path = client.predict("tiny_model", 12, {}, clip, api_name="/preview_frame")
    first = time.perf_counter() - first
    assert media.read_image(path).shape == (720, 1280, 3)
    changes = [{"color": c, "erode": e, "blur": b, "mask": m}
               for c in ("rct", "lct", "hist", "none") for e, b in ((0, 8), (6, 20))
               for m in ("hull", "both")]
    times = []
    for settings in changes:
        t0 = time.perf_counter()
        client.predict("tiny_model", 12, settings, clip, api_name="/preview_frame")
        times.append(time.perf_counter() - t0)
    times.sort()
    figures = {"first_call_s": round(first, 3), "calls": len(times),
               "median_ms": round(1000 * statistics.median(times)),
               "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))])}
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "preview_latency.json").write_text(json.dumps(figures, indent=1))
    print(figures)
    # Loose bounds for a busy shared test machine; the targets (300/600 ms) are in the doc.
    assert figures["median_ms"] < 1500 and figures["p95_ms"] < 3000, figures


def test_quick_swap_preview_in_the_browser(server, video_a):
    """Models -> Quick swap: the frame preview shows a swapped frame, follows a settings
    change, and "Render with these settings" queues a render with exactly them."""
    from pathlib import Path
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(server.url)
        page.get_by_role("tab", name="Models").click()
        page.locator("#model-details").get_by_text("tiny_model").wait_for(timeout=30_000)
        page.locator("#quick-video input[type=file]").set_input_files(str(video_a))
        # the upload's own round trip: 30 s ran out in CI with the other workers busy
        page.locator("#quick-video").get_by_text(video_a.name).wait_for(timeout=90_000)
        page.locator("text=Try before you render >> visible=true").first.click()
        page.locator("#quick-preview-show").click()
        swapped = page.locator("#quick-preview-swapped img")
        try:    # the first frame loads the model and the detector; the fit check runs too
            swapped.wait_for(timeout=90_000)
        finally:
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "frame-preview-wait.png"), full_page=True)
        first = swapped.get_attribute("src")
        assert page.locator("#quick-preview-erode textarea, #quick-preview-erode input"
                            ).first.input_value() == ""          # empty = auto, not 0
        page.locator("#quick-preview-color input").click()
        page.get_by_role("option", name="none", exact=True).click()
        wait_for(lambda: swapped.get_attribute("src") != first, 30, what="a new preview")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "frame-preview.png"), full_page=True)
        page.locator("#quick-consent input[type=checkbox]").check()
        page.locator("#quick-preview-render").click()
        job = wait_for(lambda: next(iter(server.runner.store.list(limit=1)), None), 30,
                       what="the queued render")
        assert job.kind == "quick_swap" and job.params["convert"]["color"] == "none"
        assert "erode" not in job.params["convert"]                # auto stays auto
        browser.close()


def test_preview_swaps_only_the_chosen_person(tiny_model, video_two_faces):  # noqa: F811
    """person=N (and a {person: model} map) as the render does: the other face stays as it
    was. In the two-faces clip person 1 is the large astronaut, person 2 the inset."""
    from localswap.convert.preview import FramePreview
    from localswap.settings import ConvertSettings
    p = FramePreview()
    with one_torch_thread():
        original, everyone = p(video_two_faces, tiny_model, 4, ConvertSettings())
        _, inset_only = p(video_two_faces, {2: tiny_model}, 4, ConvertSettings())
        _, main_only = p(video_two_faces, tiny_model, 4, ConvertSettings(person=1))
    def changed(img):
        return np.abs(img.astype(int) - original).max(-1) > 24
    main, inset = changed(main_only), changed(inset_only)
    assert changed(everyone).any() and main.any() and inset.any()
    assert not (main & inset).any()                   # two different faces
    ys, xs = np.nonzero(inset)
    assert ys.ptp() < 150 and xs.ptp() < 150          # inside the 150 px inset

