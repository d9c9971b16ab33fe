"""The job store and runner, on real stages: queue order, failures in words, cancel, resume."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from localswap.jobs.recorder import Recorder, StopRequest
from localswap.jobs.runner import Runner
from localswap.jobs.snapshot import Snapshots
from localswap.jobs.store import JobStore
from localswap.jobs.submit import submit_quick_swap, submit_swap
from localswap.errors import UserError
from localswap.workspace import Workspace
from ui_helpers import (FAST_EXTRACT, TINY_TRAIN, check_playable_mp4, install_tiny_model,
                        wait_for, wait_job)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def ws_with_model(ws, tmp_path_factory, faceset_a, faceset_b) -> Workspace:
    install_tiny_model(ws.root / "models", tmp_path_factory.getbasetemp(), faceset_a, faceset_b)
    return ws


def test_store_is_wal_and_keeps_events_in_order(ws):
    store = JobStore(ws.db_path)
    a = store.add("swap", {"x": 1}, "first")
    b = store.add("quick_swap", {}, "second")
    store.add_events(a, [("loss", {"loss_a": 0.5, "loss_b": 0.6, "iteration": 1}),
                         ("log", {"text": "hello"}),
                         ("loss", {"loss_a": 0.4, "loss_b": 0.5, "iteration": 2})],
                     progress=0.5, info={"iteration": 2})
    assert sqlite3.connect(ws.db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [p["iteration"] for p in store.events(a, "loss")] == [1, 2]
    assert store.next_queued().id == a
    job = store.get(a)
    assert job.progress == 0.5 and job.info == {"iteration": 2} and job.params == {"x": 1}
    # A snapshot is shared by every reader until it is older than its ttl.
    snaps = Snapshots(store, ttl=60)
    first = snaps.get(a)
    store.add_events(a, [("loss", {"loss_a": 0.3, "loss_b": 0.4, "iteration": 3})])
    assert snaps.get(a) is first and len(first.losses) == 2
    assert len(Snapshots(store, ttl=0).get(a).losses) == 3
    assert store.mark_interrupted() == [] and store.get(b).status == "queued"


def test_recorder_bar_follows_a_stage_share_without_a_total(ws):
    # A training run that only a time budget ends reports total 0; its bar must still move.
    import multiprocessing
    store = JobStore(ws.db_path)
    job = store.add("swap", {}, "timed")
    rec = Recorder(store, job, "train", StopRequest(multiprocessing.get_context("spawn")))
    rec(5, 0, "loss A 0.1 B 0.1, 9 min left", fraction=0.25, iteration=5)
    rec.flush()
    assert store.get(job).progress == pytest.approx(0.25) and "fraction" not in store.get(job).info
    rec = Recorder(store, job, "convert", StopRequest(multiprocessing.get_context("spawn")))
    rec(10, 100, "frame 10")                # a stage without a share: done / total
    rec.flush()
    assert store.get(job).progress == pytest.approx(0.10)


def test_queue_order_failure_sentence_and_cancel_queued(ws_with_model, video_a,
                                                        video_no_face):
    ws = ws_with_model
    runner = Runner(ws)                     # not started yet: jobs only queue
    j1 = submit_quick_swap(runner, (str(video_a), "astronaut.mp4"), "tiny_model", True)
    j2 = submit_swap(runner, (str(video_no_face), "coffee.mp4"),
                     [(str(video_a), "astronaut.mp4")], True, {"extract": FAST_EXTRACT})
    j3 = submit_quick_swap(runner, (str(video_a), "again.mp4"), "tiny_model", True)
    j4 = submit_quick_swap(runner, (str(video_a), "last.mp4"), "tiny_model", True)
    assert runner.cancel(j3)
    runner.start()
    try:
        assert runner.wait_idle(240)
    finally:
        runner.stop()
    jobs = {j: runner.store.get(j) for j in (j1, j2, j3, j4)}
    assert [jobs[j].status for j in (j1, j2, j3, j4)] == ["done", "failed", "cancelled", "done"]
    assert jobs[j1].started < jobs[j2].started < jobs[j4].started
    assert jobs[j3].started is None
    # The failure is a sentence with something to try, not a traceback.
    assert "no usable face" in jobs[j2].error and "Traceback" not in jobs[j2].error
    # ... naming the video by the name the user gave it, not the name it is stored under.
    assert "Target video: coffee.mp4: no usable face found" in jobs[j2].error, jobs[j2].error
    assert jobs[j2].hint.startswith("Not enough faces")
    for j in (j1, j4):
        out = ws.root / jobs[j].result["output"]
        check_playable_mp4(out, frames=48)
    # A quick swap's video is named after the video the user gave, not after the job.
    assert jobs[j4].result["output"] == "outputs/last-swapped.mp4"
    # Uploads are stored under generated names, never the user's.
    assert not any("astronaut" in p.name for p in (ws.root / "uploads").iterdir())


def test_refusals_are_sentences(ws_with_model, video_a):
    runner = Runner(ws_with_model)
    with pytest.raises(UserError, match="Tick"):
        submit_quick_swap(runner, (str(video_a), "a.mp4"), "tiny_model", False)
    with pytest.raises(UserError, match="no model called"):
        submit_quick_swap(runner, (str(video_a), "a.mp4"), "nope", True)
    with pytest.raises(UserError, match="invalid name"):
        submit_quick_swap(runner, (str(video_a), "a.mp4"), "../etc", True)
    from localswap.jobs.uploads import UploadSettings
    with pytest.raises(UserError, match="limit is 0.01 minutes"):
        submit_quick_swap(runner, (str(video_a), "a.mp4"), "tiny_model", True,
                          limits=UploadSettings(max_minutes=0.01))
    assert runner.store.list() == []


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """10 s of the moving astronaut: long enough to cancel a conversion half way."""
    from localswap.bench import samples as mb
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 240)
    return mb.encode(tmp_path_factory.mktemp("long") / "long.mp4", frames, 24)


def test_cancel_during_conversion_leaves_no_partial_file(ws_with_model, long_video):
    ws = ws_with_model
    runner = Runner(ws).start()
    try:
        j = submit_quick_swap(runner, (str(long_video), "a.mp4"), "tiny_model", True,
                              {"convert": {"batch": 1}})
        wait_for(lambda: (job := runner.store.get(j)).stage == "quick_convert"
                 and job.progress > 0, 120, poll=0.05, what="conversion to start")
        assert runner.cancel(j)
        job = wait_job(runner.store, j)
    finally:
        runner.stop()
    assert job.status == "cancelled", (job.status, job.error)
    assert job.progress < 1.0                        # it really stopped half way
    assert list((ws.root / "outputs").iterdir()) == []


def _manifest(ws: Workspace, model: str) -> dict:
    import json
    return json.loads((ws.root / "models" / model / "manifest.json").read_text())


def _swap(runner, video_a, video_b, **train) -> int:
    return submit_swap(runner, (str(video_a), "astronaut.mp4"),
                       [(str(video_b), "hopper.mp4")], True,
                       {"train": {**TINY_TRAIN, **train}, "extract": FAST_EXTRACT})


def test_cancel_keeps_checkpoint_then_continue_and_convert_now(ws, video_a, video_b):
    runner = Runner(ws).start()
    try:
        j = _swap(runner, video_a, video_b, iterations=100_000, save_every=2,
                  preview_every=2)
        wait_for(lambda: runner.store.get(j).info.get("iteration", 0) >= 3, 180,
                 what="training to pass iteration 3")
        assert runner.cancel(j)
        job = wait_job(runner.store, j)
        assert job.status == "cancelled", job.error
        model = job.params["model"]
        saved = _manifest(ws, model)["iteration"]
        # The checkpoint on disk is the last iteration trained, saved on the way out.
        assert saved >= 3 and saved == job.info["iteration"]
        assert "train" not in job.timings and "output" not in job.result
        # Continue training the same job, then end it early with "Convert now".
        assert runner.continue_training(j, 100_000)
        wait_for(lambda: runner.store.get(j).info.get("iteration", 0) >= saved + 2, 180,
                 what="training to continue")
        assert runner.convert_now(j)
        job = wait_job(runner.store, j)
        assert job.status == "done", job.error
    finally:
        runner.stop()
    trained = _manifest(ws, model)["iteration"]
    assert saved + 2 <= trained < saved + 100_000
    assert list(job.timings) == ["extract_target", "extract_source", "train", "convert"]
    assert job.result["output"].endswith(f"-{trained}.mp4")
    # Named after the two people (source on target, as the command line names it) and the
    # output after the target video the user gave, with the iteration that rendered it.
    assert model == "hopper-on-astronaut"
    assert job.result["output"] == f"outputs/astronaut-swapped-{trained}.mp4"
    check_playable_mp4(ws.root / job.result["output"], frames=48)
    if job.result.get("evaluation"):     # the model card keeps the last render's scores
        kept = json.loads((ws.path("models", model) / "evaluation.json").read_text())
        assert kept["report"] == job.result["evaluation"] and kept["iteration"] == trained
    points = runner.store.events(j, "loss")
    assert points[-1]["iteration"] == trained
    assert sum("Finding faces in the target started" in e["text"]
               for e in runner.store.events(j, "log")) == 1


RUN_RUNNER = """
import sys, time
from localswap.jobs.recorder import Recorder, StopRequest
from localswap.jobs.runner import Runner
from localswap.workspace import Workspace
Runner(Workspace(sys.argv[1])).start()
time.sleep(600)
"""


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_restart_resumes_interrupted_job_from_checkpoint(ws, video_a, video_b):
    import signal
    import subprocess
    import sys
    # Queue the job, then let another process run it and kill that process mid-training.
    queued = Runner(ws)
    j = _swap(queued, video_a, video_b, iterations=24, save_every=2, preview_every=2)
    proc = subprocess.Popen([sys.executable, "-c", RUN_RUNNER, str(ws.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = queued.store
        wait_for(lambda: store.get(j).info.get("iteration", 0) >= 4, 180,
                 what="training in the other process to pass iteration 4")
        workers = _children(proc.pid)
        assert workers, "the stages run in a worker process"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The worker dies with its server: no orphan goes on writing to the job.
    wait_for(lambda: not any(_alive(pid) for pid in workers), 10, what="the worker to end")
    model = store.get(j).params["model"]
    checkpoint = _manifest(ws, model)["iteration"]
    assert 2 <= checkpoint < 24 and store.get(j).status == "running"
    killed_at = time.time()
    runner = Runner(ws).start()            # a restart over the same database
    try:
        job = wait_job(runner.store, j)
    finally:
        runner.stop()
    assert job.status == "done", job.error
    assert _manifest(ws, model)["iteration"] == 24
    log = [e["text"] for e in runner.store.events(j, "log")]
    assert any("app stopped while this job was running" in t for t in log)
    # Extraction was not repeated, and training went on from the checkpoint, not from 0.
    assert sum("Finding faces in the target started" in t for t in log) == 1
    after = [p["iteration"] for p in runner.store.events(j, "loss") if p["t"] > killed_at]
    assert after and min(after) > checkpoint
    check_playable_mp4(ws.root / job.result["output"], frames=48)


def test_downscale_before_processing(ws_with_model, video_a):
    runner = Runner(ws_with_model).start()
    try:
        j = submit_quick_swap(runner, (str(video_a), "a.mp4"), "tiny_model", True,
                              {"downscale": 320})
        job = wait_job(runner.store, j)
    finally:
        runner.stop()
    assert job.status == "done", job.error
    assert list(job.timings) == ["prepare", "quick_convert"]
    from localswap import media
    info = media.probe(ws_with_model.root / job.result["output"])
    assert (info.width, info.height) == (320, 240) and info.has_audio


def test_without_auto_resume_an_interrupted_job_waits_for_a_click(ws_with_model, video_a):
    queued = Runner(ws_with_model)
    j = submit_quick_swap(queued, (str(video_a), "a.mp4"), "tiny_model", True)
    queued.store.update(j, status="running", stage="quick_convert")   # as a dead process left it
    runner = Runner(ws_with_model, resume=False).start()
    try:
        time.sleep(1.5)
        job = runner.store.get(j)
        assert job.status == "interrupted" and runner.idle()
        assert any("Press Resume" in e["text"] for e in runner.store.events(j, "log"))
        assert runner.resume_job(j)
        job = wait_job(runner.store, j)
    finally:
        runner.stop()
    assert job.status == "done", job.error


def test_a_crashed_worker_fails_only_its_job_and_the_queue_goes_on(ws_with_model, video_a,
                                                                   video_b):
    """Stages run in a worker process: when it dies (here kill -9, as the OOM killer does),
    the job it ran fails with a sentence, a new worker runs the rest of the queue, and the
    failed job resumes from its checkpoint."""
    import os
    import signal
    ws = ws_with_model
    runner = Runner(ws).start()
    try:
        j1 = _swap(runner, video_a, video_b, iterations=40, save_every=2, preview_every=100)
        j2 = submit_quick_swap(runner, (str(video_a), "a.mp4"), "tiny_model", True)
        wait_for(lambda: runner.store.get(j1).info.get("iteration", 0) >= 4, 180,
                 what="training to pass iteration 4")
        first = runner.worker_pid
        assert first and first != os.getpid()
        os.kill(first, signal.SIGKILL)
        job = wait_job(runner.store, j1)
        assert job.status == "failed"
        assert "worker process was killed" in job.error and "Traceback" not in job.error
        assert "Resume" in job.hint
        assert wait_job(runner.store, j2).status == "done"        # the queue went on
        assert runner.worker_pid not in (None, first)
        checkpoint = _manifest(ws, job.params["model"])["iteration"]
        assert checkpoint >= 2
        assert runner.resume_job(j1)
        job = wait_job(runner.store, j1)
    finally:
        runner.stop()
    assert job.status == "done", job.error
    assert _manifest(ws, job.params["model"])["iteration"] == 40
    log = [e["text"] for e in runner.store.events(j1, "log")]
    assert sum("Finding faces in the target started" in t for t in log) == 1
