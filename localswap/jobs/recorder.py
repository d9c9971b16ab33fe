"""The progress callback the runner hands to a stage: it turns progress(done, total, message,
**info) calls into job-row updates and events, at most once a second, so a stage that reports
every iteration costs the database (and the polling UI) almost nothing.

It also carries the job's stop requests into the stage: a stage that cannot be told to stop
any other way (extraction, conversion) is stopped by the exception raised from its next
progress call; training gets the `stop` event instead, so it can save a checkpoint first.
"""
from __future__ import annotations

import time
from typing import Any

from localswap.jobs.store import JobStore


FLUSH_SECONDS = 1.0
LOG_SECONDS = 15.0
LOSS_KEYS = ("loss_a", "loss_b")


class StopRequest:
    """'Stop the running stage', with why (cancel, shutdown, convert_now); works across
    processes and reads like a threading.Event to the stages."""

    def __init__(self, mp):
        self._event = mp.Event()
        self._why = mp.Array("c", 16)

    def set(self, reason: str) -> None:
        self._why.value = reason.encode()
        self._event.set()

    def clear(self) -> None:
        self._event.clear()
        self._why.value = b""

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    @property
    def reason(self) -> str:
        return self._why.value.decode() or "cancel"


class Stopped(Exception):
    """Raised into a stage when the job is cancelled or the runner shuts down."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Recorder:
    def __init__(self, store: JobStore, job_id: int, stage: str, stop: StopRequest,
                 raise_on_stop: bool = True, info: dict | None = None,
                 names: dict[str, str] | None = None):
        self.store, self.job_id, self.stage = store, job_id, stage
        # stored file name -> the user's name for it: uploads are stored under generated
        # names, and no line the user reads may show one
        self.names = {k: v for k, v in (names or {}).items() if k and v and k != v}
        self.stop = stop
        self.raise_on_stop = raise_on_stop
        self.info: dict[str, Any] = dict(info or {})
        self.done = self.total = 0
        self.fraction: float | None = None    # the stage's own share done (a time budget)
        # the count this run started at (training continued or resumed)
        self.run_from = int(self.info.get("run_from") or 0)
        self.message = ""
        self._sums = {k: 0.0 for k in LOSS_KEYS}
        self._n = 0
        self._events: list[tuple[str, dict]] = []
        self._last_flush = 0.0
        self._last_log = time.monotonic()
        self._preview = None
        self._first: tuple[float, int] | None = None     # (time, done) of the first call
        self._stage_eta = False                          # the stage reports its own ETA

    def __call__(self, done: int, total: int, message: str = "", **info: Any) -> None:
        if self.stop.is_set() and self.raise_on_stop:
            reason = self.stop.reason
            if reason in ("cancel", "shutdown"):     # 'convert now' only ends training
                raise Stopped(reason)
        self.done, self.total = int(done), int(total)
        if self._first is None:
            self._first = (time.monotonic(), self.done)
        self._stage_eta = self._stage_eta or "eta" in info
        fraction = info.pop("fraction", None)
        if isinstance(info.get("run_from"), int):
            self.run_from = info["run_from"]
        if isinstance(fraction, (int, float)):
            self.fraction = float(fraction)
        if message:
            self.message = message = self.words(message)
        if info.pop("event", None) == "note" and message:
            self._events.append(("log", {"text": message, "stage": self.stage}))
        losses = info.pop("losses", None)
        if isinstance(losses, dict):       # accept {"a": .., "b": ..} as well as loss_a/loss_b
            info.setdefault("loss_a", losses.get("a"))
            info.setdefault("loss_b", losses.get("b"))
        if all(isinstance(info.get(k), (int, float)) for k in LOSS_KEYS):
            for k in LOSS_KEYS:
                self._sums[k] += float(info[k])
            self._n += 1
        preview = info.get("preview")
        if preview and preview != self._preview:
            self._preview = preview
            self._events.append(("preview", {"path": str(preview),
                                             "iteration": info.get("iteration", done)}))
        self.info.update({k: v for k, v in info.items() if _plain(v)})
        if "iteration" in info and self.total:      # the iteration training counts to
            self.info["iterations"] = self.total
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_SECONDS or (total and done >= total):
            self.flush(now)

    def stop_reason(self) -> str:
        return self.stop.reason

    def log(self, text: str) -> None:
        self._events.append(("log", {"text": self.words(text), "stage": self.stage}))
        self.flush()

    def words(self, text: str) -> str:
        """`text` with every stored file name replaced by the name the user gave the file."""
        for stored, name in self.names.items():
            text = text.replace(stored, name)
        return text

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._n:
            point = {k: self._sums[k] / self._n for k in LOSS_KEYS}
            point["iteration"] = int(self.info.get("iteration", self.done))
            self._events.append(("loss", point))
            # The loss the page shows is the plotted point (the mean since the last one), not
            # the last step's, which jumps by a fifth from step to step.
            for k in LOSS_KEYS:
                last = self.info.get(k)
                if isinstance(last, (int, float)):
                    self.message = self.message.replace(f"{last:.4f}", f"{point[k]:.4f}", 1)
                self.info[k] = point[k]
            self._sums = {k: 0.0 for k in LOSS_KEYS}
            self._n = 0
        if self.message and now - self._last_log >= LOG_SECONDS:
            self._events.append(("log", {"text": self.message, "stage": self.stage}))
            self._last_log = now
        # The bar is this run's: a model continued from iteration 278 to 578 is 2 % done at
        # 285, not 49 %.
        span = self.total - self.run_from
        progress = (min(1.0, max(0.0, (self.done - self.run_from) / span)) if span > 0 else
                    float(bool(self.total) and self.done >= self.total))
        if self.fraction is not None:
            progress = min(1.0, max(0.0, self.fraction))
        if not self._stage_eta and self._first and self.done > self._first[1]:
            rate = (self.done - self._first[1]) / max(1e-6, now - self._first[0])
            self.info["eta"] = round(max(0, self.total - self.done) / rate, 1)
        self.store.add_events(self.job_id, self._events, progress=progress,
                              message=self.message, info=self.info)
        self._events = []
        self._last_flush = now


def _plain(value: Any) -> bool:
    """Only JSON-friendly scalars and small lists go into the job row's info."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    return isinstance(value, (list, tuple)) and len(value) <= 16 and all(
        isinstance(v, (str, int, float, bool)) for v in value)
