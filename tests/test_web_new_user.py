"""What a new user hit in the web app (issue 11), in a real browser (Debian chromium driven by
Playwright) against the real app: the Models library, source photos without a face, a
cancelled job's choices, the job's status line, plain labels, the System tab, launch.py's
lines and its exit."""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from localswap.errors import UserError
from localswap.jobs.submit import submit_swap
from ui_helpers import (FAST_EXTRACT, OUTPUT, TINY_TRAIN, InProcessApp, LaunchedApp,
                        install_tiny_model, launch_browser, needs_chromium, wait_for,
                        wait_job)

pytestmark = needs_chromium()


@pytest.fixture(scope="module")
def browser():
    with launch_browser() as b:
        yield b


def self_model(base: Path, faceset_a: Path) -> Path:
    """A second tiny model with the same target as the session's tiny model but another
    source (the astronaut herself): its thumbnail must not look like the other's."""
    from model_fixtures import one_torch_thread
    from localswap.settings import TrainSettings
    from localswap.train.trainer import train
    out = base / "astronaut_self"
    if not (out / "manifest.json").is_file():
        with one_torch_thread():
            train(faceset_a, faceset_a, out, TrainSettings(
                iterations=12, arch="localswap", resolution=64, width=8, batch=4,
                device="cpu", preview_every=6))
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory, faceset_a, faceset_b):
    """The app in this process (its runner and store at hand), with two library models: the
    tiny model (hopper on the astronaut, newer) and the astronaut on herself (older)."""
    root = tmp_path_factory.mktemp("newuser") / "ws"
    server = InProcessApp(root, poll=0.5)
    models = server.workspace.root / "models"
    install_tiny_model(models, tmp_path_factory.getbasetemp(), faceset_a, faceset_b)
    shutil.copytree(self_model(tmp_path_factory.getbasetemp(), faceset_a),
                    models / "astronaut self")
    day = time.time() - 86400
    os.utime(models / "astronaut self" / "model.safetensors", (day, day))
    yield server
    server.close()


def open_tab(browser, url: str, tab: str, height: int = 1400):
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(url)
    page.get_by_role("tab", name=tab).click()
    return page


# Every picture in a gallery: its shape against its box's (a picture letterboxed into a
# square tile leaves part of it empty), its tile against the gallery's visible area (a cut
# row), what is drawn on its corners (the block label once covered the first tile), and the
# caption: shown whole (not cut to "..."), inside the tile, not covered.
TILES_JS = """root => {
  const wrap = root.querySelector('.grid-wrap') || root;
  wrap.scrollIntoView();
  const W = wrap.getBoundingClientRect();
  return [...root.querySelectorAll('button.thumbnail-item')].map(tile => {
    const img = tile.querySelector('img'), cap = tile.querySelector('.caption-label');
    const r = img.getBoundingClientRect(), t = tile.getBoundingClientRect();
    const on = (x, y, el) => el.contains(document.elementFromPoint(x, y));
    const c = cap ? cap.getBoundingClientRect() : null;
    return {natural: img.naturalWidth / img.naturalHeight, box: r.width / r.height,
            inside: t.top >= W.top - 1 && t.bottom <= W.bottom + 1 && t.left >= W.left - 1
                    && t.right <= W.right + 1 && r.top >= t.top - 1 && r.bottom <= t.bottom + 1,
            corners: on(r.left + 4, r.top + 4, img) && on(r.right - 4, r.top + 4, img),
            caption: cap ? cap.innerText : '',
            captionShown: !!c && c.width > 0 && c.top >= t.top - 1 && c.bottom <= t.bottom + 1
                          && on((c.left + c.right) / 2, (c.top + c.bottom) / 2, cap)
                          && cap.scrollWidth <= cap.clientWidth + 1};   // not cut to "…"
  });
}"""

# Mean absolute difference of the top halves (the source faces) of two gallery pictures.
TOP_HALF_DIFF_JS = """root => {
  const imgs = [...root.querySelectorAll('button.thumbnail-item img')];
  const top = img => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    return g.getImageData(0, 0, c.width, Math.floor(c.height / 2)).data;
  };
  const a = top(imgs[0]), b = top(imgs[1]);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}"""


def check_tiles(page, elem: str, count: int) -> list[dict]:
    page.locator(f"#{elem} button.thumbnail-item img").nth(count - 1).wait_for(timeout=30_000)
    wait_for(lambda: page.eval_on_selector(
        f"#{elem}", "r => [...r.querySelectorAll('img')].every(i => i.complete)"), 20,
        what="the thumbnails to load")
    tiles = page.eval_on_selector(f"#{elem}", TILES_JS)
    try:
        assert len(tiles) == count, tiles
        for t in tiles:
            assert abs(t["natural"] - t["box"]) < 0.03 * t["natural"], tiles   # not letterboxed
            assert t["inside"] and t["corners"], tiles                        # whole, uncovered
            assert t["caption"] and t["captionShown"], tiles
    except AssertionError:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"tiles-{elem}.png"), full_page=True)
        raise
    return tiles


def test_models_library_tiles_click_to_choose_and_the_choice_stays(app, browser):
    page = open_tab(browser, app.url, "Models")
    tiles = check_tiles(page, "model-gallery", 2)
    assert [t["caption"] for t in tiles] == ["tiny_model · 12 it", "astronaut self · 12 it"]
    # Two models with the same target and different sources do not look alike: the tiles
    # lead with the source face (the one each model gives).
    assert page.eval_on_selector("#model-gallery", TOP_HALF_DIFF_JS) > 15
    pick = page.locator("#model-pick input")
    assert pick.input_value() == "tiny_model"                     # the newest by default
    page.locator("#model-gallery").get_by_role("button", name="Thumbnail 2 of 2").click()
    wait_for(lambda: pick.input_value() == "astronaut self", 20, what="the click to choose")
    page.locator("#model-details").get_by_text("astronaut self").wait_for(timeout=20_000)
    # Another tab and back: still the model chosen, not the newest again.
    page.get_by_role("tab", name="Job").click()
    page.get_by_role("tab", name="Models").click()
    page.locator("#model-gallery button.thumbnail-item").first.wait_for(timeout=20_000)
    for _ in range(25):                  # the tab's refresh comes back within this: it stays
        assert pick.input_value() == "astronaut self"
        assert "astronaut self" in page.locator("#model-details").inner_text()
        time.sleep(0.2)
    page.close()


def open_group(page, elem_id: str) -> None:
    """Unfold one of Advanced mode's groups by its heading."""
    page.locator(f"#{elem_id} .label-wrap").first.click()


def test_advanced_mode_speaks_plainly(app, browser):
    page = open_tab(browser, app.url, "New swap", height=3000)
    page.locator("#mode").get_by_role("radio", name="Advanced").check()
    open_group(page, "adv-training")
    open_group(page, "adv-expert")
    page.get_by_text("Learning rate", exact=True).wait_for(timeout=20_000)
    labels = page.inner_text("body")
    for plain in ("Model architecture", "Learning rate", "Gradient clipping (0 = off)",
                  "Resolution (px)", "Stop at a plateau (0 = off)", "Batch size"):
        assert plain in labels, plain
    for jargon in ("Arch", "Lr", "Clip grad", "Plateau", "Resolution"):
        assert not page.get_by_text(jargon, exact=True).count(), jargon
    # "Chosen for you" reads as "auto", never as 0: no slider sits at 0 for the width.
    assert page.locator("#train-resolution input").input_value() == "auto"
    for elem, word in (("train-width", "auto"), ("train-batch", "auto"),
                       ("train-iterations", "Basic")):
        box = page.locator(f"#{elem} input:not([type=range]), #{elem} textarea")
        assert box.input_value() == "" and box.get_attribute("placeholder") == word, elem
        assert page.locator(f"#{elem} input[type=range]").count() == 0, elem
    page.close()


def test_advanced_mode_folds_into_groups_that_open(app, browser):
    """Advanced mode keeps open only what most swaps change (how long, how sharp, who, hands,
    glasses); the rest folds into four groups. Folded, the page fits well under the old
    6,200 px (all of it was about 6,500 px at this size), and a group opened shows its
    fields. Measured at 1280x900."""
    page = open_tab(browser, app.url, "New swap", height=900)
    page.locator("#mode").get_by_role("radio", name="Advanced").check()
    page.locator("#train-iterations").wait_for(timeout=20_000)
    for elem in ("train-iterations", "train-max-minutes", "train-resolution", "convert-faces",
                 "convert-occlusion", "convert-glasses"):
        assert page.locator(f"#{elem}").is_visible(), elem
    groups = {"adv-faces": "extract-face-type", "adv-training": "train-arch",
              "adv-rendering": "convert-color", "adv-expert": "train-lr"}
    for group, field in groups.items():
        assert page.locator(f"#{group}").is_visible(), group
        assert not page.locator(f"#{field}").is_visible(), field
    page.wait_for_timeout(500)                  # let the layout settle before measuring
    folded = page.evaluate("document.documentElement.scrollHeight")
    assert folded < 2500, folded
    for group, field in groups.items():
        open_group(page, group)
        page.locator(f"#{field}").wait_for(state="visible", timeout=10_000)
    page.locator("#convert-crf").wait_for(state="visible", timeout=10_000)
    page.wait_for_timeout(500)
    unfolded = page.evaluate("document.documentElement.scrollHeight")
    assert folded < 0.5 * unfolded, (folded, unfolded)
    open_group(page, "adv-expert")              # a second click folds it again
    page.locator("#train-lr").wait_for(state="hidden", timeout=10_000)
    page.close()


def test_system_tab_says_why_there_is_no_gpu_once(app, browser):
    from localswap import gpu
    page = open_tab(browser, app.url, "System")
    info = page.locator("#system-info")
    info.get_by_text("Versions").wait_for(timeout=30_000)
    text = info.inner_text()
    assert not re.search(r"\([^()]*\(", text), text                 # no brackets in brackets
    probe = gpu.probe()
    if not probe.devices and probe.error:
        assert text.count(probe.error) == 1, text                  # said once, not per section
    page.close()


def test_a_source_photo_without_a_face_is_refused_at_upload(app, browser, video_a, tmp_path):
    from localswap import media
    from localswap.bench import samples
    coffee, face = tmp_path / "coffee.jpg", tmp_path / "astronaut.jpg"
    media.write_image(coffee, samples.no_face())
    media.write_image(face, samples.astronaut())
    # The server refuses it before any work: nothing is queued, nothing stored.
    before = len(app.runner.store.list())
    with pytest.raises(UserError, match="coffee.jpg: no usable face"):
        submit_swap(app.runner, (str(video_a), "astronaut.mp4"),
                    [(str(face), "astronaut.jpg"), (str(coffee), "coffee.jpg")], True)
    assert len(app.runner.store.list()) == before
    assert not list((app.workspace.root / "uploads").glob("*.jpg"))
    # The page says so at upload, next to the photo that has a face.
    page = open_tab(browser, app.url, "New swap")
    page.locator("#target-file input[type=file]").set_input_files(str(video_a))
    page.locator("#source-files input[type=file]").set_input_files([str(face), str(coffee)])
    check = page.locator("#upload-check")
    check.get_by_text("coffee.jpg").wait_for(timeout=60_000)
    text = check.inner_text()
    assert "✓ Source: astronaut.jpg" in text, text
    assert "⚠️ Source: coffee.jpg: no usable face" in text, text
    page.locator("#consent input[type=checkbox]").check()
    page.locator("#start").click()
    page.locator("#start-message").get_by_text("no usable face").wait_for(timeout=60_000)
    assert len(app.runner.store.list()) == before
    page.close()


def test_a_failure_resume_cannot_fix_offers_no_resume(app, browser, video_a, video_no_face):
    j = submit_swap(app.runner, (str(video_no_face), "coffee.mp4"),
                    [(str(video_a), "astronaut.mp4")], True, {"extract": FAST_EXTRACT})
    job = wait_job(app.runner.store, j)
    assert job.status == "failed" and "no usable face" in job.error, job.error
    assert not app.runner.resume_job(j)                # refused on the server too
    page = open_tab(browser, app.url, "Job")
    page.locator("#job-error").get_by_text("no usable face").wait_for(timeout=30_000)
    assert "start a new swap" in page.locator("#job-error").inner_text()
    assert not page.locator("#job-resume").is_visible()
    page.close()


def test_progress_bar_is_empty_at_0_and_fills_with_progress(app, browser):
    # The bar's drawing, for jobs the store says are running at 0 % and at 40 % (rows
    # written here: a real stage stays at 0 % for well under a poll).
    from localswap.jobs.store import FAILED, RUNNING
    store = app.runner.store
    widths = {}
    for share in (0.0, 0.4):
        with store._tx() as db:          # running from the start: the worker never takes it
            j = db.execute("INSERT INTO jobs (kind, title, status, stage, params, progress, "
                           "created, started) VALUES ('swap', ?, ?, 'extract_target', ?, ?, "
                           "?, ?)", (f"bar {share}", RUNNING, '{"model": "bar"}', share,
                                     time.time(), time.time())).lastrowid
        try:
            page = open_tab(browser, app.url, "Job")
            page.locator("#job-status").get_by_text(f"bar {share}").wait_for(timeout=30_000)
            track = page.locator("#job-status .job-progress").bounding_box()
            done = page.locator("#job-status .job-progress-done").bounding_box()
            widths[share] = (done["width"] if done else 0.0) / track["width"]
            page.close()
        finally:
            store.update(j, status=FAILED, finished=time.time())
    assert widths[0.0] < 0.01 and abs(widths[0.4] - 0.4) < 0.02, widths


def test_cancelled_job_renders_so_far_and_its_model_is_marked(app, browser, video_a, video_b):
    """Basic's iteration count (no target given) shows as 'of 6,300'; Cancel keeps the model,
    marked unfinished in the library; 'Render with what is trained so far' renders it; the
    finished job says so; the timelapse tiles show whole."""
    import torch
    from localswap.train.budget import basic_iterations
    basic = basic_iterations("cuda" if torch.cuda.is_available() else "cpu")
    j = submit_swap(app.runner, (str(video_a), "astronaut.mp4"), [(str(video_b), "hopper.mp4")],
                    True, {"train": {**TINY_TRAIN, "preview_every": 2, "save_every": 2},
                           "extract": FAST_EXTRACT})
    page = open_tab(browser, app.url, "Job")
    status = page.locator("#job-status")
    wait_for(lambda: re.search(rf"iteration ([3-9]|\d\d+) of {basic:,}", status.inner_text()),
             240, what=f"training past iteration 3 of {basic:,}")
    page.locator("#job-cancel").click()
    status.get_by_text("cancelled", exact=True).wait_for(timeout=120_000)
    assert "stopped in stage 3 of 4" in status.inner_text()
    assert page.locator("#job-continue").is_visible()
    render = page.get_by_role("button", name="Render with what is trained so far")
    render.wait_for(timeout=20_000)
    job = app.runner.store.get(j)
    model, trained = job.params["model"], job.info["iteration"]
    # The library keeps it, marked, sized, deletable.
    page.get_by_role("tab", name="Models").click()
    tiles = check_tiles(page, "model-gallery", 3)
    mine = next(t for t in tiles if t["caption"].startswith(model))
    assert mine["caption"] == f"{model} · {trained:,} of {basic:,} it · unfinished"
    page.locator("#model-gallery").get_by_role(
        "button", name=f"Thumbnail {tiles.index(mine) + 1} of 3").click()
    details = page.locator("#model-details")
    details.get_by_text("Unfinished").wait_for(timeout=20_000)
    assert re.search(rf"cancelled at iteration {trained:,} of {basic:,}.*\d+ MB",
                     details.inner_text(), re.S), details.inner_text()
    # Render it as it is.
    page.get_by_role("tab", name="Job").click()
    render.click()
    page.locator("#result-video video").wait_for(timeout=240_000)
    status.get_by_text("finished", exact=True).wait_for(timeout=60_000)
    text = status.inner_text()
    assert "all 4 stages done" in text and "stage 4 of 4" not in text, text
    assert f"iteration {trained:,} of {trained:,}" in text, text
    job = app.runner.store.get(j)
    assert job.status == "done" and job.result["output"].endswith(f"-{trained}.mp4")
    # The timelapse: whole square tiles; a click shows that iteration's whole grid.
    shown = len(app.app.localswap.snapshots.get(j).previews)
    assert shown >= 2
    tiles = check_tiles(page, "timelapse", shown)
    assert all(t["caption"].startswith("iteration ") for t in tiles)
    page.locator("#timelapse").get_by_role("button", name=re.compile("Thumbnail 1 of")).click()
    page.locator("#preview").get_by_text("Preview at iteration").wait_for(timeout=20_000)
    page.close()


def test_launch_names_its_own_flag_and_stops_cleanly(tmp_path):
    app = LaunchedApp(workspace=tmp_path / "ws")
    try:
        out = app.output()
        assert "share=True" not in out and "launch()" not in out, out
        assert "--share" in out, out
    finally:
        app.close()              # SIGTERM, as kill, systemd and docker stop send
    time.sleep(1)                # the resource tracker reports after the app has gone
    out = app.output()
    assert app.proc.returncode == 0, out
    assert "leaked semaphore" not in out, out


def pick_job(page, job_id: int) -> None:
    page.locator("#job-select input").click()
    page.get_by_role("option", name=re.compile(rf"^#{job_id} ")).click()
    page.locator("#job-status").get_by_text(re.compile(r".")).first.wait_for(timeout=10_000)


def test_the_job_page_never_shows_another_jobs_files(app, browser, video_a, video_b,
                                                      video_no_face):
    """Issue 28: after switching jobs, every download, button, slider and picture belongs to
    the job shown. Five kinds: a finished swap, a swap failed at stage 1, a quick swap, a swap
    cancelled in the queue, and a model adapted to another person."""
    from localswap.jobs.submit import submit_adapt, submit_quick_swap
    quick = submit_quick_swap(app.runner, (str(video_a), "quick.mp4"), "tiny_model", True)
    failed = submit_swap(app.runner, (str(video_no_face), "coffee.mp4"),
                         [(str(video_b), "hopper.mp4")], True, {"extract": FAST_EXTRACT})
    swap = submit_swap(app.runner, (str(video_a), "astronaut.mp4"),
                       [(str(video_b), "hopper.mp4")], True,
                       {"train": {**TINY_TRAIN, "iterations": 12, "preview_every": 6},
                        "extract": FAST_EXTRACT})
    cancelled = submit_swap(app.runner, (str(video_b), "later.mp4"),
                            [(str(video_a), "astronaut.mp4")], True, {"extract": FAST_EXTRACT})
    assert app.runner.cancel(cancelled)            # still waiting behind the others
    adapted = submit_adapt(app.runner, (str(video_b), "hopper-new.mp4"), "tiny_model", True,
                           {"train": {"iterations": 2, "batch": 4}, "extract": FAST_EXTRACT})
    for j, status in ((quick, "done"), (failed, "failed"), (swap, "done"),
                      (cancelled, "cancelled"), (adapted, "done")):
        assert wait_job(app.runner.store, j, timeout=300).status == status
    page = open_tab(browser, app.url, "Job", height=2400)
    pick_job(page, swap)
    # the finished swap: make its timelapse and before/after clip, preview a later frame
    page.locator("#job-timelapse").click()
    page.locator("#job-timelapse-download").wait_for(timeout=60_000)
    page.locator("#job-compare").click()
    page.locator("#job-compare-download").wait_for(timeout=120_000)
    page.locator("text=Try before you render >> visible=true").first.click()
    page.locator("#job-preview-show").click()
    page.locator("#job-preview-swapped img").wait_for(timeout=60_000)
    try:
        # the failed job made nothing: none of that shows, and no button offers to make it
        pick_job(page, failed)
        page.locator("#job-error").get_by_text("no usable face").wait_for(timeout=30_000)
        wait_for(lambda: not page.locator("#job-timelapse-download").is_visible(), 20,
                 what="the other job's timelapse to go")
        for elem in ("job-compare-download", "job-timelapse", "job-compare", "download"):
            assert not page.locator(f"#{elem}").is_visible(), elem
        assert page.locator("#job-preview-swapped img").count() == 0
        # the quick swap has a render (a before/after can be made) but no previews
        pick_job(page, quick)
        page.locator("#job-compare").wait_for(timeout=30_000)
        for elem in ("job-compare-download", "job-timelapse", "job-timelapse-download"):
            assert not page.locator(f"#{elem}").is_visible(), elem
        assert page.locator("#job-preview-swapped img").count() == 0
        frame = page.locator("#job-preview-frame input[type=number]")
        assert frame.input_value() == "0"
        assert page.locator("#download").is_visible()      # its own render
        # cancelled before it started: nothing of its own, and nothing of the others
        pick_job(page, cancelled)
        wait_for(lambda: not page.locator("#download").is_visible(), 20,
                 what="the quick swap's render to go")
        for elem in ("job-compare-download", "job-timelapse", "job-timelapse-download",
                     "job-compare"):
            assert not page.locator(f"#{elem}").is_visible(), elem
        assert page.locator("#job-preview-swapped img").count() == 0
        # the adapted model's job: its own render and previews, none of the swap's files,
        # and the frame preview back at its first frame
        pick_job(page, adapted)
        page.locator("#download").wait_for(timeout=30_000)
        for elem in ("job-compare-download", "job-timelapse-download"):
            assert not page.locator(f"#{elem}").is_visible(), elem
        assert page.locator("#job-preview-swapped img").count() == 0
        assert page.locator("#job-preview-frame input[type=number]").input_value() == "0"
    finally:
        page.screenshot(path=str(OUTPUT / "job-switch.png"), full_page=True)
        page.close()
