"""The job runner: one thread that owns the device and runs queued jobs in submission order.

A swap job runs its stages in order (prepare -> extract target -> extract source -> train ->
convert); a quick swap is a convert with a model from the library. A stage that finished is
recorded in the job's timings and skipped when the job runs again, so a job that was
interrupted (the process died, or the app was stopped) resumes at the stage it was in, and
training resumes from the model dir's last checkpoint.

Requests from the UI (cancel, convert now) go through the methods here: they are written to the
job row (so every browser tab sees them) and signalled to the stage that is running.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback

from localswap.errors import UserError
from localswap.jobs import stages
from localswap.jobs.recorder import Recorder, Stopped
from localswap.jobs.store import (CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, Job,
                                  JobStore)
from localswap.workspace import Workspace

log = logging.getLogger("localswap.jobs")
KEEP_INFO = ("iteration", "loss_a", "loss_b", "faces_target", "faces_source")


class Runner:
    def __init__(self, workspace: Workspace, store: JobStore | None = None, *,
                 resume: bool = True, device: str = "auto"):
        self.workspace = workspace
        self.store = store or JobStore(workspace.db_path)
        self.resume = resume
        self.device = device
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._current: int | None = None
        self._stage = ""
        self._stop_stage = threading.Event()
        self._reason: list[str] = []
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Runner":
        """Mark jobs a dead process left running as interrupted, queue them again (they keep
        their place: the queue is ordered by job id), and start the worker thread."""
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
        self._thread = threading.Thread(target=self._loop, name="localswap-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the running stage has saved what it can; its job resumes on next start."""
        self._stopping.set()
        self._signal("shutdown")
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def current(self) -> int | None:
        return self._current

    def idle(self) -> bool:
        return self._current is None and self.store.next_queued() is None

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
        self._wake.set()
        return job_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job at once, or ask the running one to stop (training saves a
        checkpoint first). False if the job already finished."""
        job = self.store.get(job_id)
        if job is None or not (job.active or job.status == INTERRUPTED):
            return False
        if job.status in (QUEUED, INTERRUPTED) and job_id != self._current:
            self.store.update(job_id, status=CANCELLED, finished=time.time(),
                              message="Cancelled before it ran." if not job.started else
                              "Cancelled. The last checkpoint is kept.")
            return True
        self.store.set_control(job_id, "cancel")
        if job_id == self._current:
            self._signal("cancel")
        return True

    def convert_now(self, job_id: int) -> bool:
        """End training early (after a checkpoint) and go on to conversion."""
        job = self.store.get(job_id)
        if job is None or job.kind != "swap" or job.status != RUNNING or job.stage != "train":
            return False
        self.store.set_control(job_id, "convert_now")
        if job_id == self._current:
            self._signal("convert_now")
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
        self._wake.set()
        return True

    def resume_job(self, job_id: int) -> bool:
        """Queue an interrupted or failed job again; finished stages are skipped."""
        job = self.store.get(job_id)
        if job is None or job.status not in (INTERRUPTED, FAILED):
            return False
        self.store.update(job_id, status=QUEUED, control="", error="", hint="", finished=None)
        self._wake.set()
        return True

    def _signal(self, reason: str) -> None:
        with self._lock:
            if reason == "convert_now" and self._stage != "train":
                return
            if self._current is not None:
                self._reason[:] = [reason]
                self._stop_stage.set()

    # -- the worker --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.store.next_queued()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            with self._lock:
                self._current = job.id
                self._stop_stage.clear()
                self._reason[:] = []
            try:
                self._run(job)
            except Exception:  # a bug in the runner itself must not end the thread
                log.exception("job %s: runner error", job.id)
                self.store.update(job.id, status=FAILED, finished=time.time(),
                                  error="The job runner hit an internal error.",
                                  hint="See the server log; the job can be resumed.")
            finally:
                with self._lock:
                    self._current = None

    def _run(self, job: Job) -> None:
        now = time.time()
        self.store.update(job.id, status=RUNNING, started=job.started or now, error="",
                          hint="")
        timings = dict(job.timings)
        plan = stages.PLANS[job.kind](job)
        for stage in plan:
            if stage in timings:
                continue
            job = self.store.get(job.id)
            if job.control == "cancel":
                return self._finish(job, CANCELLED, "Cancelled. The last checkpoint is kept.")
            rec = Recorder(self.store, job.id, stage, self._stop_stage, self._reason,
                           raise_on_stop=stage not in stages.STOPPABLE,
                           info={k: v for k, v in job.info.items() if k in KEEP_INFO})
            self.store.update(job.id, stage=stage, progress=0.0,
                              message=stages.TITLES[stage] + "…", info=rec.info)
            self._stage = stage
            rec.log(f"{stages.TITLES[stage]} started.")
            t0 = time.perf_counter()
            ctx = stages.Context(job, self.workspace, rec, self._stop_stage, self.device)
            try:
                result = stages.STAGES[stage](ctx) or {}
            except Stopped as stop:
                return self._stopped(job, stop.reason, rec)
            except UserError as exc:
                return self._failed(job, stage, str(exc), stages.hint_for(exc, stage), rec)
            except Exception as exc:
                log.error("job %s stage %s failed:\n%s", job.id, stage, traceback.format_exc())
                return self._failed(job, stage, stages.describe(exc, stage),
                                    stages.hint_for(exc, stage), rec)
            rec.flush()
            job = self.store.get(job.id)
            self.store.update(job.id, result={**job.result, **result})
            reason = (self._reason[0] if self._reason else "cancel") \
                if self._stop_stage.is_set() else None
            if reason and stage in stages.STOPPABLE:
                if reason != "convert_now":
                    # Training ended early: it is not finished and runs again on resume.
                    return self._stopped(self.store.get(job.id), reason, rec)
                with self._lock:
                    self._stop_stage.clear()
                    self._reason[:] = []
                self.store.update(job.id, control="")
                rec.log("Training stopped early to convert now.")
                reason = None
            # A stage that returned normally did its work, whatever was asked meanwhile.
            timings[stage] = round(time.perf_counter() - t0, 2)
            self.store.update(job.id, timings=timings)
            rec.log(f"{stages.TITLES[stage]} finished in {_duration(timings[stage])}.")
            if reason in ("cancel", "shutdown") and stage != plan[-1]:
                return self._stopped(self.store.get(job.id), reason, rec)
        self._finish(self.store.get(job.id), DONE, "Finished.", progress=1.0)

    def _stopped(self, job: Job, reason: str, rec: Recorder) -> None:
        if reason == "shutdown":
            rec.log("The app is stopping; the job will resume from its last checkpoint.")
            self.store.update(job.id, status=INTERRUPTED if not self.resume else QUEUED,
                              message="Interrupted by shutdown.")
            return
        rec.log("Cancelled. The last checkpoint is kept.")
        self._finish(job, CANCELLED, "Cancelled. The last checkpoint is kept.")

    def _failed(self, job: Job, stage: str, error: str, hint: str, rec: Recorder) -> None:
        rec.log(f"Failed: {error}")
        self.store.update(job.id, status=FAILED, error=error, hint=hint, finished=time.time(),
                          control="", message=f"{stages.TITLES[stage]} failed.")

    def _finish(self, job: Job, status: str, message: str, **values) -> None:
        self.store.update(job.id, status=status, message=message, control="",
                          finished=time.time(), **values)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
