"""The worker process: runs queued jobs one at a time, in submission order, away from the web
server.

Stages run in their own process so that the server's threads (every poll of every tab and API
client) never hold the GIL the training loop needs, and so that a crash in native code (a
decoder, a driver, the kernel's OOM killer) ends the worker, not the app: the runner starts a
new worker and the job can resume from its last checkpoint. The worker and the runner share
only the SQLite database and the few signals in `Signals`.

A swap job runs its stages in order (prepare -> extract target -> extract source -> train ->
convert); a quick swap is a convert with a model from the library. A stage that finished is
recorded in the job's timings and skipped when the job runs again, so a job that was
interrupted resumes at the stage it was in, and training resumes from the model dir's last
checkpoint.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
import traceback

from localswap import gpu
from localswap.errors import UserError
from localswap.jobs import stages
from localswap.jobs.recorder import Recorder, Stopped, StopRequest
from localswap.jobs.store import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, Job, \
    JobStore
from localswap.progress import duration_text
from localswap.workspace import Workspace

log = logging.getLogger("localswap.jobs")
KEEP_INFO = ("iteration", "iterations", "loss_a", "loss_b", "faces_target", "faces_source")


class Signals:
    """Shared by the runner (in the server) and the worker process."""

    def __init__(self, mp):
        self.wake = mp.Event()          # a job was queued
        self.stopping = mp.Event()      # the app is shutting down
        self.stop = StopRequest(mp)     # the running stage should stop
        self.current = mp.Value("q", 0, lock=False)   # id of the running job, 0 for none
        self.lock = mp.Lock()           # guards current + stop together


def main(root: str, resume: bool, device: str, signals: Signals, parent: int) -> None:
    """Entry point of the worker process."""
    _die_with(parent)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    Worker(Workspace(root), resume, device, signals).loop()


def _die_with(parent: int) -> None:
    """End this process when the server dies, even by kill -9, so no orphan keeps writing
    to a job that a restarted server is about to resume."""
    try:    # Linux: the kernel sends SIGKILL when the parent goes
        if ctypes.CDLL(None, use_errno=True).prctl(1, 9) != 0:    # PR_SET_PDEATHSIG, SIGKILL
            raise OSError
    except (OSError, AttributeError):
        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


class Worker:
    def __init__(self, workspace: Workspace, resume: bool, device: str, signals: Signals):
        self.workspace, self.resume, self.device = workspace, resume, device
        self.signals = signals
        self.store = JobStore(workspace.db_path)

    def loop(self) -> None:
        s = self.signals
        while not s.stopping.is_set():
            job = self.store.next_queued()
            if job is None:
                s.wake.wait(1.0)
                s.wake.clear()
                continue
            with s.lock:
                s.current.value = job.id
                s.stop.clear()
            try:
                self._run(job)
            except Exception:  # a bug in the worker itself must not end the loop
                log.exception("job %s: runner error", job.id)
                self.store.update(job.id, status=FAILED, finished=time.time(),
                                  error="The job runner hit an internal error.",
                                  hint="See the server log; the job can be resumed.")
            finally:
                with s.lock:
                    s.current.value = 0

    def _run(self, job: Job) -> None:
        stop = self.signals.stop
        self.store.update(job.id, status=RUNNING, started=job.started or time.time(),
                          error="", hint="")
        timings = dict(job.timings)
        plan = stages.PLANS[job.kind](job)
        for stage in plan:
            if stage in timings:
                continue
            job = self.store.get(job.id)
            if job.control == "cancel":
                return self._finish(job, CANCELLED, "Cancelled. The last checkpoint is kept.")
            info = {k: v for k, v in job.info.items() if k in KEEP_INFO}
            if stage == "train":     # a continued model's run starts where it stopped
                info["run_from"] = int(info.get("iteration") or 0)
            rec = Recorder(self.store, job.id, stage, stop,
                           raise_on_stop=stage not in stages.STOPPABLE, info=info,
                           names=stages.job_names(job))
            self.store.update(job.id, stage=stage, progress=0.0,
                              message=stages.TITLES[stage] + "…", info=rec.info)
            rec.log(f"{stages.TITLES[stage]} started.")
            t0 = time.perf_counter()
            ctx = stages.StageContext(job, self.workspace, rec, stop, self.device)
            try:
                result = stages.STAGE_FUNCTIONS[stage](ctx) or {}
            except Stopped as stopped:
                return self._stopped(job, stopped.reason, rec)
            except UserError as exc:
                return self._failed(job, stage, str(exc), stages.hint_for(exc, stage), rec,
                                    stages.resumable(exc))
            except Exception as exc:
                log.error("job %s stage %s failed:\n%s", job.id, stage, traceback.format_exc())
                return self._failed(job, stage, stages.describe(exc, stage),
                                    stages.hint_for(exc, stage), rec, stages.resumable(exc))
            finally:
                # This process runs job after job: a stage's cached GPU memory must not count
                # as used when the next stage or job plans.
                gpu.release_cached_memory()
            rec.flush()
            job = self.store.get(job.id)
            self.store.update(job.id, result={**job.result, **result})
            reason = stop.reason if stop.is_set() else None
            if reason and stage in stages.STOPPABLE:
                if reason != "convert_now":
                    # Training ended early: it is not finished and runs again on resume.
                    return self._stopped(self.store.get(job.id), reason, rec)
                with self.signals.lock:
                    stop.clear()
                self.store.update(job.id, control="")
                rec.log("Training stopped early to convert now.")
                reason = None
            # A stage that returned normally did its work, whatever was asked meanwhile.
            timings[stage] = round(time.perf_counter() - t0, 2)
            self.store.update(job.id, timings=timings)
            rec.log(f"{stages.TITLES[stage]} finished in {duration_text(timings[stage])}.")
            if reason in ("cancel", "shutdown") and stage != plan[-1]:
                return self._stopped(self.store.get(job.id), reason, rec)
        self._finish(self.store.get(job.id), DONE, "Finished.", progress=1.0)

    def _stopped(self, job: Job, reason: str, rec: Recorder) -> None:
        if reason == "shutdown":
            rec.log("The app is stopping; the job will resume from its last checkpoint.")
            self.store.update(job.id, status=INTERRUPTED if not self.resume else QUEUED,
                              message="Interrupted by shutdown.")
            return
        message = stages.cancelled(job, self.workspace)
        rec.log(message)
        self._finish(job, CANCELLED, message)

    def _failed(self, job: Job, stage: str, error: str, hint: str, rec: Recorder,
                resumable: bool = True) -> None:
        """The job fails with a sentence and a hint; `resumable` False when running it again
        would fail the same way (the app then offers no Resume)."""
        error = rec.words(error)
        rec.log(f"Failed: {error}")
        self.store.update(job.id, status=FAILED, error=error, hint=hint, finished=time.time(),
                          control="", message=f"{stages.TITLES[stage]} failed.",
                          info={**rec.info, "resumable": resumable})

    def _finish(self, job: Job, status: str, message: str, **values) -> None:
        self.store.update(job.id, status=status, message=message, control="",
                          finished=time.time(), **values)
