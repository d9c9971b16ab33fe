"""The job page's numbers in a real browser (Debian chromium driven by Playwright) against the
real app and worker (issue 28): a finished swap continued for more iterations shows this run's
share and iterations, elapsed is the running time with the queue apart, and the preview's
label covers nothing."""
from __future__ import annotations

import re
import time

import pytest

from localswap.jobs.runner import Runner
from localswap.jobs.submit import submit_swap
from localswap.workspace import Workspace
from ui_helpers import (FAST_EXTRACT, OUTPUT, TINY_TRAIN, InProcessApp, launch_browser,
                        needs_chromium, wait_for, wait_job)

pytestmark = needs_chromium()
QUEUED_FOR = 4.0        # seconds the job waits before the app (and its worker) starts


def seconds(text: str) -> float:
    """duration_text back to seconds: '4.2 s', '42 s', '3 min 05 s', '1 h 02 min'."""
    m = re.fullmatch(r"(?:(\d+) h )?(?:(\d+) min ?)?(?:([\d.]+) s)?", text.strip())
    assert m and any(m.groups()), text
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mins + s


def figures(status: str) -> dict:
    out = {}
    for key, pattern in (("elapsed", r"elapsed ([\dhmins. ]+?)(?: ·|\n|$)"),
                         ("waited", r"waited in the queue ([\dhmins. ]+?)(?: ·|\n|$)")):
        m = re.search(pattern, status)
        if m:
            out[key] = seconds(m.group(1))
    m = re.search(r"(\d+) % · iteration (\d+) of (\d+)(?: \(this run: (\d+) of (\d+)\))?",
                  status)
    if m:
        out["bar"] = tuple(int(g) if g else None for g in m.groups())
    return out


def test_the_peoples_captions_are_shown_whole(tmp_path, browser, video_two_faces):
    """'Person 1 · 24 frames' under each person found, not 'Person 1 · …'."""
    from test_web_new_user import check_tiles
    app = InProcessApp(tmp_path / "ws")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(app.url)
        page.locator("#target-file input[type=file]").set_input_files(str(video_two_faces))
        tiles = check_tiles(page, "target-people", 2)
        assert all(re.fullmatch(r"Person \d · \d+ frames", t["caption"]) for t in tiles), tiles
        # The gallery's label sits above the pictures (it covered the first one's top).
        label = page.locator('#target-people label[data-testid="block-label"]').bounding_box()
        first = page.locator("#target-people button.thumbnail-item").first.bounding_box()
        assert label["y"] + label["height"] <= first["y"] + 1, (label, first)
        page.locator("#target-people").screenshot(path=str(OUTPUT / "people-captions.png"))
        page.close()
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    with launch_browser() as b:
        yield b


def test_continue_training_shows_this_runs_numbers_and_elapsed_leaves_out_the_queue(
        tmp_path, browser, video_a, video_b):
    ws = Workspace(tmp_path / "ws")
    waiting = Runner(ws)                 # not started: the job waits in the queue
    j = submit_swap(waiting, (str(video_a), "astronaut.mp4"), [(str(video_b), "hopper.mp4")],
                    True, {"train": {**TINY_TRAIN, "iterations": 30, "preview_every": 10},
                           "extract": FAST_EXTRACT})
    time.sleep(QUEUED_FOR)
    app = InProcessApp(ws.root, poll=0.5)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(app.url)
        page.get_by_role("tab", name="Job").click()
        status = page.locator("#job-status")
        status.get_by_text("finished", exact=True).wait_for(timeout=300_000)
        job = app.runner.store.get(j)
        shown = figures(status.inner_text())
        # The time in the queue is its own figure; elapsed is the running time alone.
        assert shown["waited"] >= QUEUED_FOR, status.inner_text()
        wall = job.finished - job.created
        assert shown["elapsed"] == pytest.approx(job.running_seconds(), abs=1.5)
        assert shown["elapsed"] + shown["waited"] == pytest.approx(wall, abs=2.5)
        assert shown["elapsed"] <= wall - QUEUED_FOR + 1.0
        # The preview's label sits above the grid, not over its row labels ("A").
        page.locator("#preview img").wait_for(timeout=30_000)
        grid = page.locator("#preview img").bounding_box()
        for over in ('#preview label[data-testid="block-label"]',
                     "#preview .icon-button-wrapper"):
            box = page.locator(over).first.bounding_box()
            assert box and box["y"] + box["height"] <= grid["y"] + 1, (over, box, grid)
        page.locator("#preview").screenshot(path=str(OUTPUT / "job-preview-label.png"))
        # Idle between the two runs: that time counts nowhere.
        time.sleep(3)
        page.get_by_label("More iterations").fill("40")
        page.locator("#job-continue").click()
        samples = []

        def sample():
            text = status.inner_text()
            if "Training" in text and "running" in text:
                got = figures(text).get("bar")
                if got:
                    samples.append(got)
                    if len(samples) == 3:       # to look at: the status while it runs
                        status.screenshot(path=str(OUTPUT / "job-continued-status.png"))
            return app.runner.store.get(j).status == "done"
        wait_for(sample, 300, poll=0.2, what="the continued run to finish")
        assert samples, "no training figures seen during the continued run"
        for pct, it, target, this, added in samples:
            # 'iteration 35 of 70 (this run: 5 of 40)' and the bar at 5 of 40, not 35 of 70
            assert (target, added, this) == (70, 40, it - 30), samples
            assert abs(pct - 100 * this / 40) <= 1, samples
        job = wait_job(app.runner.store, j)
        status.get_by_text("finished", exact=True).wait_for(timeout=30_000)
        shown = figures(status.inner_text())
        assert shown["elapsed"] == pytest.approx(job.running_seconds(), abs=1.5)
        assert shown["elapsed"] <= job.finished - job.started - 3 + 1.0
        page.close()
    finally:
        app.close()
