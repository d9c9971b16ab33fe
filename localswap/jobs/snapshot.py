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
from pathlib import Path

from localswap.jobs.store import Job, JobStore
from localswap.progress import duration_text as eta_text  # noqa: F401  (the app's name for it)

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
        # The trainer keeps only its newest previews on disk: show the ones still there.
        previews = [p for p in self.store.events(job.id, "preview") if Path(p["path"]).is_file()]
        logs = self.store.events(job.id, "log", last=LOG_LINES)
        return Snapshot(
            job=job,
            losses=downsample([{k: p[k] for k in ("iteration", "loss_a", "loss_b")}
                               for p in points], MAX_PLOT_POINTS),
            previews=_spread(previews, TIMELAPSE),
            preview=previews[-1]["path"] if previews else None,
            log=[f"{time.strftime('%H:%M:%S', time.localtime(e['t']))}  {e['text']}"
                 for e in logs],
            plateau=plateau_text(job.info, points),
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


def plateau_text(info: dict, points: list[dict]) -> str:
    """The trainer's fitted estimate when it has one (an exponential decay fitted to the loss
    history), else the trend of the recorded points."""
    remaining = info.get("plateau_remaining")
    if isinstance(remaining, (int, float)) and math.isfinite(remaining):
        verdict = ("more training still pays off" if remaining >= 0.02 else
                   "more training will change little: convert now, or add more varied "
                   "source material")
        return (f"**Plateau estimate**: the fitted loss curve predicts about "
                f"{100 * remaining:.1f} % further improvement, so {verdict}. "
                f"({info.get('plateau', '')})")
    return plateau_note(points)


def plateau_note(points: list[dict]) -> str:
    """Plain words on the loss trend: the mean of the newest quarter of the curve against the
    quarter before it. Under 1 % better per 1,000 iterations counts as flat."""
    if len(points) < 8:
        return "Too early to tell: the loss is measured for a while before a trend shows."
    q = max(2, len(points) // 4)
    recent, before = points[-q:], points[-2 * q:-q]

    def mean(ps):
        return sum((p["loss_a"] + p["loss_b"]) / 2 for p in ps) / len(ps)

    m_recent, m_before = mean(recent), mean(before)
    if not (math.isfinite(m_recent) and math.isfinite(m_before)) or m_before <= 0:
        return ""
    span = max(1, recent[-1]["iteration"] - before[-1]["iteration"])
    drop = (m_before - m_recent) / m_before
    if drop * 1000 / max(span, 1000) >= 0.01:
        return (f"Still improving: the loss fell {100 * drop:.1f} % over the last {span} "
                "iterations, so more training should still sharpen the result.")
    return ("The loss has flattened (under 1 % better per 1,000 iterations): more training "
            "will change little; convert now, or add more varied source material.")


