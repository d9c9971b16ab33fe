"""Read-side of the jobs: what a browser tab shows, computed once and shared by every viewer.

A snapshot of a job is rebuilt at most every `ttl` seconds whatever the number of tabs and API
clients polling it, and loss points are read incrementally, so polling costs the training
thread next to nothing (measured in the report of issue 5).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from localswap.jobs.store import Job, JobStore

MAX_PLOT_POINTS = 400
TIMELAPSE = 8
LOG_LINES = 200


@dataclass
class Snapshot:
    job: Job
    losses: list[dict] = field(default_factory=list)     # iteration, loss_a, loss_b
    previews: list[dict] = field(default_factory=list)   # path, iteration (timelapse picks)
    preview: str | None = None
    log: list[str] = field(default_factory=list)
    plateau: str = ""
    made: float = 0.0

    def to_dict(self) -> dict:
        return {"job": self.job.to_dict(), "losses": self.losses, "previews": self.previews,
                "preview": self.preview, "log": self.log, "plateau": self.plateau}


class Snapshots:
    def __init__(self, store: JobStore, ttl: float = 0.5):
        self.store, self.ttl = store, ttl
        self._lock = threading.Lock()
        self._cache: dict[int, Snapshot] = {}
        self._points: dict[int, tuple[int, list[dict]]] = {}   # job -> (last event id, points)

    def get(self, job_id: int) -> Snapshot | None:
        with self._lock:
            snap = self._cache.get(job_id)
            if snap is not None and time.monotonic() - snap.made < self.ttl:
                return snap
            job = self.store.get(job_id)
            if job is None:
                return None
            snap = self._build(job)
            self._cache[job_id] = snap
            return snap

    def _build(self, job: Job) -> Snapshot:
        last, points = self._points.get(job.id, (0, []))
        new = self.store.events(job.id, "loss", after=last)
        if new:
            points = points + new
            last = new[-1]["id"]
        self._points[job.id] = (last, points)
        previews = self.store.events(job.id, "preview")
        logs = self.store.events(job.id, "log", last=LOG_LINES)
        return Snapshot(
            job=job,
            losses=downsample([{k: p[k] for k in ("iteration", "loss_a", "loss_b")}
                               for p in points], MAX_PLOT_POINTS),
            previews=_spread(previews, TIMELAPSE),
            preview=previews[-1]["path"] if previews else None,
            log=[f"{time.strftime('%H:%M:%S', time.localtime(e['t']))}  {e['text']}"
                 for e in logs],
            plateau=plateau_note(points),
            made=time.monotonic())

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._cache.pop(job_id, None)
            self._points.pop(job_id, None)


def downsample(points: list[dict], n: int) -> list[dict]:
    """At most `n` points, evenly spread, always keeping the newest."""
    if len(points) <= n:
        return points
    step = len(points) / n
    picked = [points[int(i * step)] for i in range(n - 1)]
    return picked + [points[-1]]


def _spread(items: list[dict], n: int) -> list[dict]:
    """`n` items spread over the whole list (a timelapse from first to latest)."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def plateau_note(points: list[dict]) -> str:
    """Plain words on whether more training still pays off, from the loss trend.

    Compares the mean loss of the last quarter of the curve with the quarter before it; when
    the improvement per 1,000 iterations is under 1 %, the curve has flattened."""
    if len(points) < 8:
        return "Too early to tell: the loss is measured for a while before a trend shows."
    q = max(2, len(points) // 4)
    recent, before = points[-q:], points[-2 * q:-q]

    def mean(ps):
        return sum((p["loss_a"] + p["loss_b"]) / 2 for p in ps) / len(ps)

    span = max(1, recent[-1]["iteration"] - before[0]["iteration"]) / 2
    m_recent, m_before = mean(recent), mean(before)
    if not (math.isfinite(m_recent) and math.isfinite(m_before)) or m_before <= 0:
        return ""
    per_k = (m_before - m_recent) / m_before * 1000 / span
    if per_k > 0.01:
        return (f"Still improving: the loss fell {per_k * 100:.1f} % per 1,000 iterations "
                "lately, so more training should still sharpen the result.")
    return ("The loss has flattened (under 1 % better per 1,000 iterations): more training "
            "will change little; convert now, or add more varied source material.")


def eta_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
