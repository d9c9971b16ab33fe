"""The job store and runner, on real stages: queue order, failures in words, cancel, resume."""
from __future__ import annotations

import sqlite3
import time

import pytest

from localswap.jobs.runner import Runner
from localswap.jobs.snapshot import Snapshots
from localswap.jobs.store import JobStore
from localswap.jobs.submit import submit_quick_swap, submit_swap
from localswap.errors import UserError
from localswap.workspace import Workspace
from ui_helpers import (FAST_EXTRACT, check_playable_mp4, install_tiny_model, wait_for,
                        wait_job)


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
    assert jobs[j2].hint.startswith("Not enough faces")
    for j in (j1, j4):
        out = ws.root / jobs[j].result["output"]
        check_playable_mp4(out, frames=48)
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


def test_cancel_during_conversion_leaves_no_partial_file(ws_with_model, video_a):
    ws = ws_with_model
    runner = Runner(ws).start()
    try:
        j = submit_quick_swap(runner, (str(video_a), "a.mp4"), "tiny_model", True,
                              {"convert": {"batch": 1}})
        wait_for(lambda: (job := runner.store.get(j)).stage == "quick_convert"
                 and job.progress > 0, 120, poll=0.05, what="conversion to start")
        assert runner.cancel(j)
        job = wait_job(runner.store, j)
    finally:
        runner.stop()
    assert job.status == "cancelled", (job.status, job.error)
    assert list((ws.root / "outputs").iterdir()) == []
