"""Numbers on the job page that add up: the bar of a continued training, running time apart
from queue time, the quality check in the estimate, extraction counts that add up, and the
user's file names in every line a job shows (issue 28)."""
from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path

import pytest

from localswap.jobs import stages
from localswap.jobs.recorder import Recorder, StopRequest
from localswap.jobs.runner import Runner
from localswap.jobs.snapshot import Snapshots
from localswap.jobs.store import JobStore
from localswap.jobs.submit import submit_swap
from localswap.jobs.worker import Signals, Worker
from localswap.settings import ExtractSettings, TrainSettings
from localswap.ui.job_status import status_text, time_figures
from localswap.workspace import Workspace
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (a fixture)
from ui_helpers import FAST_EXTRACT, TINY_TRAIN

MP = multiprocessing.get_context("spawn")


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


def test_a_continued_training_bar_counts_this_run(ws, tiny_model, faceset_a, faceset_b):
    """The real trainer continues a 12-iteration model to 20: the bar, the ETA and the status
    line describe the 8 iterations of this run, not 0 to 20."""
    import shutil
    from localswap.train.trainer import train
    model = ws.root / "models" / "m"
    shutil.copytree(tiny_model, model)
    store = JobStore(ws.db_path)
    j = store.add("swap", {"train": {"iterations": 20}}, "continued")
    store.update(j, status="running", stage="train")
    rec = Recorder(store, j, "train", StopRequest(MP))
    shares = []

    def progress(done, total, message="", **info):
        rec(done, total, message, **info)
        rec.flush()
        if info.get("event") == "step":
            shares.append((done, store.get(j).progress, info.get("run_from")))
    with one_torch_thread():
        train(faceset_b, faceset_a, model, TrainSettings(
            iterations=20, arch="localswap", resolution=64, width=8, batch=4, device="cpu",
            preview_every=100), progress=progress)
    steps = [(done, share, start) for done, share, start in shares if done > 12]
    assert [d for d, _, _ in steps] == list(range(13, 21))
    for done, share, start in steps:
        assert start == 12 and share == pytest.approx((done - 12) / 8, abs=1e-6)
    # The status line, as at iteration 14 of this run.
    rec(14, 20, "loss", iteration=14, run_from=12, eta=30.0)
    rec.flush()
    text = status_text(Snapshots(store, ttl=0).get(j))
    assert "25 %" in text and "iteration 14 of 20 (this run: 2 of 8)" in text, text
    assert "75 %" not in text and "70 %" not in text


def test_elapsed_is_running_time_and_the_queue_is_apart(ws):
    store = JobStore(ws.db_path)
    j = store.add("swap", {}, "timed")
    time.sleep(0.4)                                   # waits in the queue
    store.update(j, status="running", started=time.time())
    time.sleep(0.3)
    store.update(j, status="done", finished=time.time())
    job = store.get(j)
    assert job.waited == pytest.approx(0.4, abs=0.15)
    assert job.running_seconds() == pytest.approx(0.3, abs=0.15)
    time.sleep(0.5)                                   # sits finished: counts nowhere
    assert store.get(j).running_seconds() == pytest.approx(0.3, abs=0.15)
    store.update(j, status="queued")                  # continue training
    time.sleep(0.2)
    store.update(j, status="running")
    time.sleep(0.2)
    store.add_events(j, [("log", {"text": "still running"})])
    # The app dies here and comes back much later: the job ran until its last event.
    time.sleep(0.6)
    assert store.mark_interrupted() == [j]
    job = store.get(j)
    assert job.status == "interrupted"
    assert job.running_seconds() == pytest.approx(0.5, abs=0.15)
    assert job.queued_seconds() == pytest.approx(0.6, abs=0.2)
    words = time_figures(job)
    assert len(words) == 1 and words[0].startswith("elapsed "), words   # under 1 s: no line
    # A job waiting behind another for a minute and a half: no elapsed time yet, the wait.
    k = store.add("swap", {}, "behind")
    waiting = store.get(k)
    assert time_figures(waiting, now=waiting.since + 90) == ["waited in the queue 1 min 30 s"]
    # A database from before these columns gets them (and its jobs keep their figures).
    import sqlite3
    db = sqlite3.connect(ws.root / "old.db")
    db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
               "title TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, stage TEXT NOT NULL "
               "DEFAULT '', params TEXT NOT NULL DEFAULT '{}', progress REAL NOT NULL DEFAULT "
               "0, message TEXT NOT NULL DEFAULT '', info TEXT NOT NULL DEFAULT '{}', timings "
               "TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '', hint TEXT NOT NULL "
               "DEFAULT '', result TEXT NOT NULL DEFAULT '{}', control TEXT NOT NULL DEFAULT "
               "'', created REAL NOT NULL, started REAL, finished REAL)")
    db.execute("INSERT INTO jobs (kind, status, created, started, finished) VALUES "
               "('swap', 'done', 1.0, 10.0, 70.0)")
    db.commit()
    db.close()
    old = JobStore(ws.root / "old.db").get(1)
    assert old.running_seconds() == 60.0 and old.queued_seconds() == 0.0


def test_the_estimate_has_the_quality_check_and_the_total_includes_it(ws, video_a, video_b):
    from localswap.swap import speeds
    from localswap.swap.estimate import estimate_swap
    runner = Runner(ws)                     # not started
    runner.store.add("swap", {}, "waiting")  # a job ahead: the estimate measures nothing now
    options = {"train": {**TINY_TRAIN, "iterations": 30, "device": "cpu"},
               "extract": FAST_EXTRACT, "convert": {"device": "cpu"}}
    speeds.record_judge(ws, video_a, 11.0)           # a check of this size took 11 s here
    est = estimate_swap(ws.root, str(video_a), [str(video_b)], options, idle=runner.idle(),
                        past_speeds=runner.store.stage_speeds)
    stages_ = dict(est.stages)
    assert stages_["judge"] == pytest.approx(11.0, rel=0.01)
    assert est.total == pytest.approx(sum(stages_.values())) and est.total > stages_["judge"]
    assert est.bases["judge"] == "measured on earlier runs here"
    # The faces it reads: the source's and two per sampled frame (48 frames: 40 sampled).
    assert speeds.judge_faces(48) == speeds.JUDGE_SOURCE_FACES + 2 * speeds.JUDGE_FRAMES
    assert speeds.judge_faces(10) == speeds.JUDGE_SOURCE_FACES + 20
    from localswap.ui.new_swap import estimate_text
    from types import SimpleNamespace
    text = estimate_text(SimpleNamespace(runner=runner), str(video_a), [str(video_b)], options)
    assert "Checking the quality: ~11 s" in text, text


def test_a_past_jobs_render_speed_leaves_its_quality_check_out(ws):
    store = JobStore(ws.db_path)
    j = store.add("swap", {"frames": 48}, "past")
    store.update(j, status="done", timings={"convert": 22.0},
                 result={"evaluation": {"seconds": 11.0}})
    assert store.stage_speeds()["convert"] == pytest.approx(48 / 11.0)


def _counts_add_up(s) -> None:
    assert s.faces_kept + s.frames_skipped + sum(s.rejected.values()) == s.frames_read, \
        s.report()


def test_extraction_counts_add_up_to_the_frames_read(video_two_faces, video_a, tmp_path):
    from localswap.errors import NoFacesError
    from localswap.faces.extract import extract
    from localswap.bench import samples as mb
    import cv2
    # Two faces in every frame: the main person kept, the other face counted apart.
    s = extract([video_two_faces], tmp_path / "two", ExtractSettings(size=64))
    _counts_add_up(s)
    assert s.other_faces >= 20 and not s.rejected.get("other_person")
    # A blurred source: every frame read has its one reason.
    frames = [cv2.GaussianBlur(f, (0, 0), 4) for f in
              mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 12)]
    blurred = mb.encode(tmp_path / "blurred.mp4", frames)
    with pytest.raises(NoFacesError) as err:
        extract([blurred], tmp_path / "fs", ExtractSettings(size=64))
    counts = dict((k, int(v)) for k, v in re.findall(r"([a-z ]+?) (\d+)(?:,|\))",
                                                     str(err.value).split("rejected: ")[1]))
    assert sum(counts.values()) == 12, str(err.value)
    # Both people too small (the front one) or someone else (the inset): one reason a frame,
    # the 24 frames read and no more (the 102 + 104 in a 104-frame clip).
    with pytest.raises(NoFacesError) as err:
        extract([video_two_faces], tmp_path / "small", ExtractSettings(size=64, min_face=400))
    counts = dict((k.strip(), int(v)) for k, v in re.findall(
        r"([a-z ]+?) (\d+)(?:,|\))", str(err.value).split("rejected: ")[1]))
    assert sum(counts.values()) == 24 and counts.get("too small") == 24, str(err.value)
    # The job's log line says it in words, the counts adding up.
    s = extract([video_a], tmp_path / "a", ExtractSettings(size=64, every=4, role="source"))
    line = stages.faces_line("Source", s, "source")
    kept, read = (int(n) for n in re.search(r"kept (\d+) faces? from (\d+) frames", line)
                  .groups())
    left = re.search(r"(\d+) frames? left out: (.*?)(;|\()", line)
    assert kept + (int(left.group(1)) if left else 0) == read, line


class SeenStore(JobStore):
    """The real store, keeping every message a job row was given (the job page's line)."""

    def __init__(self, path):
        super().__init__(path)
        self.seen: list[str] = []

    def update(self, job_id, **values):
        self.seen += [values[k] for k in ("message", "error") if values.get(k)]
        super().update(job_id, **values)

    def add_events(self, job_id, events, **values):
        self.seen += [d["text"] for k, d in events if k == "log"]
        self.seen += [values["message"]] if values.get("message") else []
        super().add_events(job_id, events, **values)


def test_a_jobs_lines_name_the_users_files_not_the_stored_ones(ws, video_a, video_no_face):
    """Downscaled, extracted, then failing on a source with no face: every progress line, log
    line and the error name 'my holiday.mp4' and 'beach.mp4', never the stored names."""
    runner = Runner(ws)
    j = submit_swap(runner, (str(video_a), "my holiday.mp4"), [(str(video_no_face),
                                                                 "beach.mp4")], True,
                    {"train": TINY_TRAIN, "extract": FAST_EXTRACT, "downscale": 320})
    job = runner.store.get(j)
    stored = [Path(job.params["target"]).name, Path(job.params["sources"][0]).name]
    assert stored[0] != "my holiday.mp4" and stored[1] != "beach.mp4"
    worker = Worker(ws, False, "cpu", Signals(MP))
    worker.store = SeenStore(ws.db_path)
    worker._run(job)
    job = worker.store.get(j)
    assert job.status == "failed" and "beach.mp4" in job.error, job.error
    seen = worker.store.seen
    # (a stage's last progress line always reaches the page; others at most once a second)
    assert "beach.mp4 ready" in seen, seen                         # downscaling's last
    assert any(line.startswith("my holiday.mp4: ") and "face" in line for line in seen), seen
    stored += [Path(p).name for p in (job.result.get("target"), *job.result.get("sources", []))
               if p]
    for line in seen:
        for name in stored:
            assert Path(name).stem not in line, (name, line)


def test_the_loss_shown_is_the_plotted_one_and_a_young_curve_is_redrawn_at_once(ws):
    """The first chart read 0.937-0.941 while the status said 0.577: the curve was held for
    10 s after its first drawing, and the status showed the last step's loss, not the plotted
    mean."""
    import pandas as pd
    from localswap.ui.context import Context
    from localswap.ui.job_view import ORDER, refresh
    store = JobStore(ws.db_path)
    j = store.add("swap", {"train": {"iterations": 100}}, "young curve")
    store.update(j, status="running", stage="train")
    rec = Recorder(store, j, "train", StopRequest(MP))
    rec(0, 100, "training from iteration 0", iteration=0)     # as the trainer starts
    rec(1, 100, "loss A 0.9000 B 0.8000", iteration=1, loss_a=0.9, loss_b=0.8)
    rec(2, 100, "loss A 0.7000 B 0.6000", iteration=2, loss_a=0.7, loss_b=0.6)
    rec.flush()
    job = store.get(j)
    point = store.events(j, "loss")[-1]
    assert (point["loss_a"], point["loss_b"]) == pytest.approx((0.8, 0.7))
    assert job.message == "loss A 0.8000 B 0.7000"
    assert (job.info["loss_a"], job.info["loss_b"]) == pytest.approx((0.8, 0.7))
    ctx = Context(ws, Runner(ws), Snapshots(store, ttl=0))
    first = refresh(ctx, j, {})
    plot = ORDER.index("plot")
    assert isinstance(first[plot], dict) and len(first[plot]["value"]) == 2   # A and B
    rec(3, 100, "loss A 0.5000 B 0.4000", iteration=3, loss_a=0.5, loss_b=0.4)
    rec.flush()
    again = refresh(ctx, j, first[-1])              # a second later, not 10
    assert isinstance(again[plot], pd.DataFrame), again[plot]
    assert again[plot]["loss"].min() == pytest.approx(0.4)
    assert "loss A 0.5000 B 0.4000" in again[ORDER.index("status")]
