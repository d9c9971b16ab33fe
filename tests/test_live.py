"""Live mode: a real video fed through Chromium's fake webcam into the Live tab's streaming
input; the frames shown per second and capture-to-display latency are measured in the page
(each fake-camera frame carries its number as a bar code in its top-left corner, outside the
face, so the page reads which camera frame each swapped frame came from)."""
from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from localswap.bench import samples as mb
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (fixture)
from ui_helpers import CHROMIUM, OUTPUT, InProcessApp, install_tiny_model, needs_chromium

FRAMES, FPS, BITS, CELL = 96, 24, 8, 24


def y4m_camera(path: Path, frames: list[np.ndarray]) -> Path:
    """A 640x480 y4m file that Chromium's fake webcam plays in a loop."""
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f",
                    "rawvideo", "-pix_fmt", "rgb24", "-s", "640x480", "-r", str(FPS), "-i", "-",
                    "-pix_fmt", "yuv420p", str(path)], input=np.stack(frames).tobytes(),
                   check=True)
    return path


def coded_camera(path: Path) -> Path:
    """640x480 y4m of the moving astronaut, frame k carrying k as BITS black/white cells."""
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], FRAMES,
                              size=(640, 480))
    for k, f in enumerate(frames):
        for i in range(BITS):
            f[0:CELL, i * CELL:(i + 1) * CELL] = 255 if (k >> i) & 1 else 0
    return y4m_camera(path, frames)


@contextlib.contextmanager
def live_page(base: Path, camera: Path, models_base: Path, faceset_a, faceset_b,
              height: int):
    """The app with the tiny model in its library, and Chromium with `camera` as its webcam
    on the Live tab, the model chosen and the webcam on: yields (app, page). The browser
    and the app close when the block ends."""
    from playwright.sync_api import sync_playwright
    app = InProcessApp(base / "ws")
    try:
        install_tiny_model(app.workspace.root / "models", models_base, faceset_a, faceset_b)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": height})
                page.goto(app.url)
                page.get_by_role("tab", name="Live").click()
                page.locator("#live-model input").click()
                page.get_by_role("option", name="tiny_model", exact=True).click()
                page.get_by_text("Click to Access Webcam").click()
                page.locator("#live-in video").wait_for(timeout=20_000)
                yield app, page
            finally:
                browser.close()
    finally:
        app.close()


def test_live_swap_of_a_frame(tiny_model):  # noqa: F811
    from localswap.convert.live import LiveSwap
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 12, size=(640, 480))
    with one_torch_thread():
        live = LiveSwap(tiny_model)
        outs = [live(f) for f in frames]
    changed = np.abs(outs[-1].astype(int) - frames[-1]).max(-1) > 24
    assert changed.mean() > 0.002 and live.stats()["fps"] > 0
    live.close()


# Runs in the page: every animation frame, read the code in the webcam preview (the camera
# frame shown now) and in the swapped image; log each new swapped frame with the camera
# frame number current at that moment.
MEASURE_JS = """async ([seconds, bits, cell]) => {
  const canvas = document.createElement('canvas'); canvas.width = bits * cell; canvas.height = cell;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  const read = (el, w) => {
    const scale = w / 640;
    g.drawImage(el, 0, 0, bits * cell * scale, cell * scale, 0, 0, bits * cell, cell);
    const d = g.getImageData(0, 0, bits * cell, cell).data; let k = 0;
    for (let i = 0; i < bits; i++) {
      const p = ((cell >> 1) * bits * cell + i * cell + (cell >> 1)) * 4;
      if (d[p] > 127) k |= 1 << i; }
    return k; };
  const video = document.querySelector('#live-in video');
  const log = []; let last = null; const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await new Promise(r => requestAnimationFrame(r));
    const img = document.querySelector('#live-out img');
    if (!img || !img.complete || !img.naturalWidth || img.src === last) continue;
    last = img.src;
    log.push([performance.now() - t0, read(video, video.videoWidth), read(img, img.naturalWidth)]);
  }
  return log; }"""


@needs_chromium()
def test_live_tab_streams_a_fake_webcam(tmp_path_factory, faceset_a, faceset_b):
    base = tmp_path_factory.mktemp("live")
    camera = coded_camera(base / "camera.y4m")
    with live_page(base, camera, tmp_path_factory.getbasetemp(), faceset_a, faceset_b,
                   height=1000) as (_, page):
        # the start button says what it does
        assert page.locator("#live-in button", has_text="Record").count() == 0
        page.locator("#live-in button", has_text="Start swapping").click()
        page.locator("#live-in button", has_text="Stop swapping").wait_for(timeout=20_000)
        page.locator("#live-out img").wait_for(timeout=30_000)
        time.sleep(2)                                    # warm-up: model load, first frames
        log = page.evaluate(MEASURE_JS, [8, BITS, CELL])
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "live.png"), full_page=True)
        stats = page.locator("#live-stats").inner_text()
        delay = page.locator("#live-delay")
        readout, shown_ms = delay.inner_text(), delay.get_attribute("data-ms")
        boxes = [page.locator(sel).bounding_box() for sel in ("#live-in video",
                                                              "#live-out img")]
    assert len(log) > 5, log
    span = (log[-1][0] - log[0][0]) / 1000
    fps = (len(log) - 1) / span
    lags = sorted(((cam - out) % FRAMES) * 1000 / FPS for _, cam, out in log)
    figures = {"shown_fps": round(fps, 1), "latency_median_ms": round(lags[len(lags) // 2]),
               "latency_p95_ms": round(lags[int(0.95 * (len(lags) - 1))]),
               "frames": len(log), "server": stats, "page_readout": readout,
               "boxes": boxes}
    (OUTPUT / "live_latency.json").write_text(json.dumps(figures, indent=1))
    print(figures)
    assert fps > 2, figures          # loose: the targets (10 fps, 250 ms) are in the doc
    # the page's own camera-to-screen readout agrees with the bar codes' (which count whole
    # camera frames of 42 ms, hence the slack)
    assert readout.startswith("Camera to screen:") and shown_ms is not None, readout
    assert 0 < int(shown_ms) < 3 * figures["latency_median_ms"] + 150, figures
    assert int(shown_ms) > figures["latency_median_ms"] / 3 - 150, figures
    # the webcam and the swapped frame show at the same size
    (cam, out) = boxes
    assert abs(cam["width"] - out["width"]) < 0.1 * cam["width"], boxes
    assert abs(cam["height"] - out["height"]) < 0.1 * cam["height"], boxes


@needs_chromium()
def test_live_offers_to_adapt_and_then_swaps_with_the_adapted_model(
        tmp_path_factory, faceset_a, faceset_b, monkeypatch):
    """The model learned the astronaut; Grace is in front of the camera: Live says so,
    records a few seconds with consent, adapts the model in a job and swaps with it."""
    from localswap.ui import live_panel
    from ui_helpers import wait_job
    monkeypatch.setattr(live_panel, "RECORD_SECONDS", 2.0)
    monkeypatch.setattr(live_panel, "ADAPT_OPTIONS", {"train": {"iterations": 2, "batch": 4},
                                                      "extract": {"size": 64}})
    base = tmp_path_factory.mktemp("live-adapt")
    camera = y4m_camera(base / "grace.y4m", mb.moving_frames(
        mb.grace_hopper(), mb.FACE_CENTRES["grace_hopper"], 48, size=(640, 480), zoom=0.8,
        seed=1))
    with live_page(base, camera, tmp_path_factory.getbasetemp(), faceset_a, faceset_b,
                   height=1100) as (app, page):
        page.locator("#live-in button", has_text="Start swapping").click()
        fit = page.locator("#live-fit")
        try:
            fit.get_by_text("Adapt it to this person").wait_for(timeout=60_000)
            page.locator("#live-adapt").click()
            fit.get_by_text("Tick").wait_for(timeout=10_000)      # consent first
            page.locator("#live-consent input[type=checkbox]").check()
            page.locator("#live-adapt").click()
            fit.get_by_text("is adapting tiny_model").wait_for(timeout=60_000)
            job = app.runner.store.list(limit=1)[0]
            assert job.params["adapt_from"] == "tiny_model" and not job.params["sources"]
            assert wait_job(app.runner.store, job.id, timeout=240).status == "done"
            fit.get_by_text("adapted to you").wait_for(timeout=60_000)
        finally:
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "live-adapt.png"), full_page=True)
    adapted = job.params["model"]
    assert (app.workspace.root / "models" / adapted / "manifest.json").is_file()
