"""The job runner: the server's side of the jobs. It queues jobs, passes requests from the UI
(cancel, convert now, continue, resume) to the job row and the running stage, and keeps one
worker process alive that runs the jobs (localswap/jobs/worker.py).

Requests are written to the job row (so every browser tab sees them) and signalled to the
worker through shared events. When the worker dies without being asked to (a crash in native
code, the kernel's OOM killer), the job it was running fails with a sentence saying so, and a
new worker takes the rest of the queue; the failed job resumes from its last checkpoint.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time

from localswap.jobs import stages, worker
from localswap.jobs.store import CANCELLED, FAILED, INTERRUPTED, QUEUED, RUNNING, JobStore
from localswap.workspace import Workspace

log = logging.getLogger("localswap.jobs")
RESTART_PAUSE = 2.0        # seconds between a worker's crash and its replacement


class Runner:
    def __init__(self, workspace: Workspace, store: JobStore | None = None, *,
                 resume: bool = True, device: str = "auto"):
        self.workspace = workspace
        self.store = store or JobStore(workspace.db_path)
        self.resume = resume
        self.device = device
        self._mp = multiprocessing.get_context("spawn")   # no forked copies of server threads
        self._signals = worker.Signals(self._mp)
        self._proc = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Runner":
        """Mark jobs a dead process left running as interrupted, queue them again (they keep
        their place: the queue is ordered by job id), and start the worker process."""
        for job_id in self.store.mark_interrupted():
            job = self.store.get(job_id)
            if job.control == "cancel":
                self.store.update(job_id, status=CANCELLED, control="", finished=time.time(),
                                  message="Cancelled.")
                continue
            self.store.add_events(job_id, [("log", {
                "text": "The app stopped while this job was running."
                        + (" Resuming from the last checkpoint." if self.resume else
                           " Press Resume to continue from the last checkpoint."),
                "stage": job.stage})])
            if self.resume:
                self.store.update(job_id, status=QUEUED)
        started = threading.Event()
        self._thread = threading.Thread(target=self._supervise, args=(started,),
                                        name="localswap-runner", daemon=True)
        self._thread.start()
        started.wait(60)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the running stage has saved what it can; its job resumes on next start."""
        self._signals.stopping.set()
        self._signal("shutdown")
        self._signals.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        proc = self._proc
        if proc is not None and proc.is_alive():
            log.warning("the worker did not stop in %.0f s; killing it", timeout)
            proc.kill()
            proc.join(5)

    def _supervise(self, started: threading.Event) -> None:
        """Run the worker process; replace it when it dies unasked. The worker is started from
        this thread, which lives as long as the worker: on Linux the worker is killed with its
        parent (PR_SET_PDEATHSIG fires when the thread that spawned it ends)."""
        while not self._signals.stopping.is_set():
            proc = self._mp.Process(
                target=worker.main, name="localswap-worker", daemon=True,
                args=(str(self.workspace.root), self.resume, self.device, self._signals,
                      os.getpid()))
            proc.start()
            self._proc = proc
            started.set()
            proc.join()
            if self._signals.stopping.is_set():
                break
            self._worker_died(proc.exitcode)
            self._signals.stopping.wait(RESTART_PAUSE)

    def _worker_died(self, code: int | None) -> None:
        with self._signals.lock:
            job_id = self._signals.current.value
            self._signals.current.value = 0
            self._signals.stop.clear()
        log.error("the worker process ended unexpectedly (exit code %s)", code)
        job = self.store.get(job_id) if job_id else None
        if job is None or job.status != RUNNING:
            return
        error = ("The worker process was killed (out of memory?)" if code == -signal.SIGKILL
                 else f"The worker process crashed (exit code {code})")
        title = stages.TITLES.get(job.stage, job.stage)
        self.store.add_events(job_id, [("log", {"text": error + ".", "stage": job.stage})])
        self.store.update(job_id, status=FAILED, finished=time.time(), control="",
                          error=f"{error} while {title.lower()}.",
                          hint="Resume continues from the last checkpoint; if it happens again, "
                               "choose a smaller resolution or batch, or downscale the video.",
                          message=f"{title} failed.")

    @property
    def current(self) -> int | None:
        return self._signals.current.value or None

    @property
    def worker_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def idle(self) -> bool:
        return self.current is None and self.store.next_queued() is None

    def wait_idle(self, timeout: float = 600.0, poll: float = 0.2) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.idle():
                return True
            time.sleep(poll)
        return False

    # -- requests ----------------------------------------------------------------------------
    def submit(self, kind: str, params: dict, title: str = "") -> int:
        if kind not in stages.PLANS:
            raise ValueError(kind)
        job_id = self.store.add(kind, params, title)
        self._signals.wake.set()
        return job_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job at once, or ask the running one to stop (training saves a
        checkpoint first). False if the job already finished."""
        job = self.store.get(job_id)
        if job is None or not (job.active or job.status == INTERRUPTED):
            return False
        if job.status in (QUEUED, INTERRUPTED) and job_id != self.current:
            self.store.update(job_id, status=CANCELLED, finished=time.time(),
                              message="Cancelled before it ran." if not job.started else
                              "Cancelled. The last checkpoint is kept.")
            return True
        self.store.set_control(job_id, "cancel")
        self._signal("cancel", job_id)
        return True

    def convert_now(self, job_id: int) -> bool:
        """End training early (after a checkpoint) and go on to conversion."""
        job = self.store.get(job_id)
        if job is None or job.kind != "swap" or job.status != RUNNING or job.stage != "train":
            return False
        self.store.set_control(job_id, "convert_now")
        self._signal("convert_now", job_id)
        return True

    def continue_training(self, job_id: int, iterations: int) -> bool:
        """Queue a finished or cancelled swap again for `iterations` more training iterations,
        then a fresh conversion. The loss plot and the log carry on in the same job."""
        job = self.store.get(job_id)
        if job is None or job.kind != "swap" or job.active:
            return False
        if "train" not in job.timings and job.status != CANCELLED:
            return False
        params = dict(job.params)
        done = int(job.info.get("iteration", 0))
        params["train"] = {**params.get("train", {}),
                           "iterations": max(done, 0) + int(iterations)}
        timings = {k: v for k, v in job.timings.items() if k not in ("train", "convert")}
        self.store.update(job_id, status=QUEUED, params=params, timings=timings, control="",
                          error="", hint="", finished=None, progress=0.0,
                          message=f"Queued for {iterations} more iterations.")
        self._signals.wake.set()
        return True

    def render_now(self, job_id: int) -> bool:
        """Render a cancelled (or failed) swap's target with the model as far as it trained:
        the job is queued again with its training target set to the model's iteration, so its
        training stage finds nothing left to do and the render follows. False when the job
        is still active or has no trained model yet."""
        job = self.store.get(job_id)
        if job is None or job.kind != "swap" or job.active:
            return False
        iteration = stages.trained_iteration(self.workspace, job)
        if not iteration:
            return False
        params, timings = dict(job.params), dict(job.timings)
        if "train" not in timings:
            params["train"] = {**params.get("train", {}), "iterations": iteration}
        timings.pop("convert", None)
        self.store.update(job_id, status=QUEUED, params=params, timings=timings, control="",
                          error="", hint="", finished=None, progress=0.0,
                          message=f"Queued: rendering with the model at iteration "
                                  f"{iteration:,}.")
        self._signals.wake.set()
        return True

    def resume_job(self, job_id: int) -> bool:
        """Queue an interrupted or failed job again; finished stages are skipped. False for a
        failure that running it again cannot fix (e.g. no face in the source)."""
        job = self.store.get(job_id)
        if job is None or job.status not in (INTERRUPTED, FAILED) or not resumable(job):
            return False
        self.store.update(job_id, status=QUEUED, control="", error="", hint="", finished=None)
        self._signals.wake.set()
        return True

    def _signal(self, reason: str, job_id: int | None = None) -> None:
        """Ask the running stage to stop (only if it belongs to `job_id`, when given)."""
        with self._signals.lock:
            running = self._signals.current.value
            if running and (job_id is None or job_id == running):
                self._signals.stop.set(reason)


def resumable(job) -> bool:
    """Whether Resume can help: not after a failure that the same input fails again."""
    return job.status != FAILED or job.info.get("resumable", True) is not False
