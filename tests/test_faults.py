"""Faults a user meets on a real machine: a disk that fills up during training or conversion
(a real tmpfs of a few MB; root is needed to mount it), and a process killed while a queue of
jobs waits. Each test checks what is left on disk and in the job database afterwards."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localswap.bench import samples as mb
from disk import small_disk
from localswap.errors import DiskFullError
from localswap.jobs.runner import Runner
from localswap.jobs.submit import submit_quick_swap, submit_swap
from localswap.settings import ConvertSettings, TrainSettings
from localswap.train import checkpoint
from localswap.train.trainer import train
from localswap.workspace import Workspace
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (module fixture)
from ui_helpers import (FAST_EXTRACT, TINY_TRAIN, check_playable_mp4, install_tiny_model,
                        wait_for, wait_job)

ROOT = Path(__file__).resolve().parents[1]
# No preview grid until the end: the checkpoint is the only thing written mid-run, so the
# tests decide exactly which write meets the full disk.
TRAIN = {**TINY_TRAIN, "precision": "fp32", "device": "cpu", "save_minutes": 0.0,
         "preview_every": 1000, "save_every": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def one_thread_workers(monkeypatch):
    """Job workers are spawned processes: one torch thread each, as in this process (on a
    shared 2-core CPU a second thread mostly spin-waits; training ran 2-3x slower)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def disk(tmp_path):
    """A 24 MB tmpfs: room for a tiny model's checkpoint, its backup and a save in progress."""
    with small_disk(tmp_path / "disk", 24 * 1024) as d:
        if d is None:
            pytest.skip("mounting a tmpfs needs root")
        yield d


def fill(disk: Path, leave: int) -> Path:
    """Take all but `leave` bytes of `disk` with a file of real pages (not a sparse file)."""
    filler = disk / ".filler"
    st = os.statvfs(disk)
    todo = max(0, st.f_bavail * st.f_frsize - leave)
    with open(filler, "ab") as fh:
        while todo > 0:
            n = min(todo, 1 << 20)
            try:
                fh.write(b"\0" * n)
                fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
            todo -= n
    return filler


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(folder: Path) -> list[str]:
    """Temp files (AtomicFile and VideoWriter write hidden ones beside the target)."""
    return [str(p) for p in folder.rglob(".*") if p.name != ".filler"]


@pytest.fixture(scope="module")
def facesets(tmp_path_factory, faceset_a, faceset_b):
    """Private copies (the trainer caches decoded faces inside the faceset folder)."""
    root = tmp_path_factory.mktemp("faults")
    return shutil.copytree(faceset_b, root / "b"), shutil.copytree(faceset_a, root / "a")


def test_disk_full_while_training_keeps_the_last_checkpoint(facesets, disk):
    src, tgt = facesets
    model = disk / "m"
    first = train(src, tgt, model, TrainSettings(**TRAIN, iterations=4))
    assert first.iteration == 4 and (model / "backup" / "manifest.json").is_file()
    saved = tree(model)

    # Room for the next model.safetensors but not the optimizer file: a save that fails
    # half way through must leave the whole previous checkpoint as it was.
    fill(disk, leave=(model / "model.safetensors").stat().st_size + (64 << 10))
    with pytest.raises(DiskFullError, match=r"disk full .*iteration 4\)"):
        train(src, tgt, model, TrainSettings(**TRAIN, iterations=8))
    assert tree(model) == saved

    # The command line, on a disk with no byte left: exit code 2 and one line, no traceback.
    fill(disk, leave=0)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TRAIN.items()]
    r = subprocess.run([sys.executable, "-m", "localswap", "train", "--source", str(src),
                        "--target", str(tgt), "--model", str(model), "--iterations", "8",
                        *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(errors) == 1 and errors[0].startswith("error: disk full"), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert tree(model) == saved

    # Intact and loadable as it is; once space is freed, training continues from it.
    loaded = checkpoint.load(model)
    assert not loaded.from_backup and not loaded.problems
    assert loaded.manifest["iteration"] == 4
    assert checkpoint.load(model / "backup").manifest["iteration"] in (2, 4)
    (disk / ".filler").unlink()
    more = train(src, tgt, model, TrainSettings(**TRAIN, iterations=8))
    assert (more.start_iteration, more.iteration) == (4, 8)
    assert checkpoint.load(model).manifest["iteration"] == 8 and not hidden(disk)


def test_disk_full_in_a_job_fails_in_words_then_resumes(tmp_path, video_a, video_b,
                                                      one_thread_workers):
    ws = Workspace(tmp_path / "ws")
    with small_disk(ws.root / "models", 24 * 1024) as models:
        if models is None:
            pytest.skip("mounting a tmpfs needs root")
        # Room for the first checkpoint (iteration 0: the weights, Adam has no moments yet)
        # and the next weights file, but not the next optimizer file (twice the weights).
        from localswap.train.models import build_model
        params = sum(p.numel() for p in build_model("localswap", 64, 8).parameters())
        filler = fill(models, leave=4 * params * 5 // 2)
        runner = Runner(ws).start()
        try:
            j = submit_swap(runner, (str(video_a), "astronaut.mp4"),
                            [(str(video_b), "hopper.mp4")], True,
                            {"model": "m", "extract": FAST_EXTRACT,
                             "train": {**TRAIN, "iterations": 4}})
            job = wait_job(runner.store, j)
            assert job.status == "failed" and job.stage == "train", (job.status, job.error)
            assert job.error.startswith("disk full") and "iteration 0" in job.error
            assert job.hint == "Free some disk space in the workspace, then resume the job."
            assert any(e["text"].startswith("Failed: disk full")
                       for e in runner.store.events(j, "log"))
            loaded = checkpoint.load(models / "m")
            assert loaded.manifest["iteration"] == 0 and not loaded.from_backup
            assert not hidden(models)
            # Free the space and resume: training goes on from the checkpoint, then renders.
            filler.unlink()
            assert runner.resume_job(j)
            job = wait_job(runner.store, j)
        finally:
            runner.stop()
        assert job.status == "done", job.error
        assert list(job.timings) == ["extract_target", "extract_source", "train", "convert"]
        assert checkpoint.load(models / "m").manifest["iteration"] == 4 and not hidden(models)
        check_playable_mp4(ws.root / job.result["output"], frames=48)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_disk_full_while_converting_leaves_no_file(tiny_model, video_a, disk,  # noqa: F811
                                                  tmp_path):
    from localswap import media
    from localswap.convert.render import convert
    photo = tmp_path / "astronaut.png"
    media.write_image(photo, mb.astronaut())
    inputs = {p: sha(p) for p in (video_a, photo)}
    s = ConvertSettings(device="cpu")
    filler = fill(disk, leave=32 << 10)      # the encoder gets a little way, then fails
    with pytest.raises(DiskFullError, match="disk full"):
        convert(video_a, tiny_model, disk / "out.mp4", s)
    with pytest.raises(DiskFullError, match="disk full"):
        convert(photo, tiny_model, disk / "out.png", s)
    assert [p.name for p in disk.iterdir()] == [".filler"]         # no file, no temp file
    filler.unlink()
    result = convert(video_a, tiny_model, disk / "out.mp4", s)
    assert result.faces > 0
    check_playable_mp4(disk / "out.mp4", frames=48)
    convert(photo, tiny_model, disk / "out.png", s)
    assert sorted(p.name for p in disk.iterdir()) == ["out.mp4", "out.png"]
    assert {p: sha(p) for p in inputs} == inputs


RUN_RUNNER = """
import sys, time
from localswap.jobs.runner import Runner
from localswap.workspace import Workspace
Runner(Workspace(sys.argv[1])).start()
time.sleep(600)
"""
JOBS = 20


def test_twenty_queued_jobs_run_in_order_across_a_kill(tmp_path, tmp_path_factory, faceset_a,
                                                       faceset_b, one_thread_workers):
    ws = Workspace(tmp_path / "ws")
    install_tiny_model(ws.root / "models", tmp_path_factory.getbasetemp(), faceset_a,
                       faceset_b)
    short, long = (mb.encode(tmp_path / f"clip{n}.mp4", mb.moving_frames(
        mb.astronaut(), mb.FACE_CENTRES["astronaut"], n, size=(240, 180)), 24) for n in (6, 48))
    queued = Runner(ws)                      # not started: the jobs only queue
    ids = [submit_quick_swap(queued, (str(long if i == 2 else short), f"clip{i}.mp4"),
                             "tiny_model", True) for i in range(JOBS)]
    store, outputs = queued.store, ws.root / "outputs"

    def temp_files() -> list[str]:
        return sorted(p.name for p in outputs.iterdir() if p.name.startswith("."))

    # Another process runs the queue and is killed (SIGKILL) once two jobs are done and the
    # third, a longer clip, is being rendered (its encoder's temp file is there).
    proc = subprocess.Popen([sys.executable, "-c", RUN_RUNNER, str(ws.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(store.list(statuses=("done",))) >= 2 and temp_files(), 90,
                 poll=0.05, what="the third job to render in the other process")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {j: store.get(j) for j in ids}
    assert [before[j].status for j in ids] == ["done"] * 2 + ["running"] + ["queued"] * 17
    assert temp_files()                      # the killed render's file, never renamed

    killed_at = time.time()
    runner = Runner(ws).start()              # the restart, over the same database
    try:
        assert runner.wait_idle(120)
    finally:
        runner.stop()
    rows = sqlite3.connect(ws.db_path).execute(
        "SELECT id, status, started, finished FROM jobs ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ids and all(r[1] == "done" for r in rows), rows
    # In submission order, one at a time: each started after the one before it finished.
    for (_, _, s0, f0), (_, _, s1, f1) in zip(rows, rows[1:]):
        assert s0 <= f0 <= s1 <= f1
    # None ran twice: the two done before the kill were left alone, every job rendered
    # once, and only the one the kill caught started again (and said so).
    for j, (_, _, started, finished) in zip(ids, rows):
        log = [e["text"] for e in store.events(j, "log")]
        assert sum(t.startswith("Rendering the video finished") for t in log) == 1, log
        starts = sum(t.startswith("Rendering the video started") for t in log)
        if before[j].status == "done":
            assert (started, finished) == (before[j].started, before[j].finished)
            assert finished < killed_at and starts == 1
        elif before[j].status == "running":
            assert starts == 2 and any("app stopped while" in t for t in log)
            assert started == before[j].started and finished > killed_at
        else:
            assert starts == 1 and started > killed_at
    # One finished video per job, and the killed render's temp file is gone.
    assert sorted(p.name for p in outputs.iterdir()) == sorted(
        Path(store.get(j).result["output"]).name for j in ids)
    check_playable_mp4(ws.root / store.get(ids[2]).result["output"], frames=48)
