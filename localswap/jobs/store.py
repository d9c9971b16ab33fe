"""Jobs and their events as rows in workspace/localswap.db (SQLite, WAL).

The runner thread is the only writer of a running job's progress; UI handlers in other threads
read snapshots (WAL lets readers and the writer go on at the same time). Each thread gets its
own connection, since a sqlite3 connection must not be shared between threads.

    jobs   : one row per job: kind, status, stage, params (JSON), progress, info (JSON: live
             figures such as iteration, it/s, ETA), timings (JSON: seconds per finished stage),
             error sentence + hint, result (JSON: output paths), control (a pending request)
    events : loss points, previews and log lines of a job, in order
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = (DONE, FAILED, CANCELLED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    info TEXT NOT NULL DEFAULT '{}',
    timings TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    hint TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '{}',
    control TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    since REAL,
    ran REAL NOT NULL DEFAULT 0,
    waited REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    t REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job_kind ON events(job_id, kind, id);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, id);
"""
JSON_FIELDS = ("params", "info", "timings", "result")
# Columns added after the first release, with their definitions: an older database gets them.
ADDED = {"since": "REAL", "ran": "REAL NOT NULL DEFAULT 0",
         "waited": "REAL NOT NULL DEFAULT 0"}


@dataclass
class Job:
    id: int
    kind: str
    title: str
    status: str
    stage: str = ""
    params: dict = field(default_factory=dict)
    progress: float = 0.0
    message: str = ""
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    error: str = ""
    hint: str = ""
    result: dict = field(default_factory=dict)
    control: str = ""
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    since: float | None = None      # when the job entered its status (queued or running)
    ran: float = 0.0                # seconds running, over every run before the current one
    waited: float = 0.0             # seconds in the queue, over every wait before this one

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        values = dict(row)
        for name in JSON_FIELDS:
            values[name] = json.loads(values[name] or "{}")
        return cls(**values)

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def running_seconds(self, now: float | None = None) -> float:
        """Time spent running (every run: a continued or resumed job adds its new run), not
        the time it waited in the queue or sat finished or interrupted."""
        if self.since is None:          # a job from before these were kept
            end = self.finished if self.finished and not self.active else time.time()
            return max(0.0, end - self.started) if self.started else 0.0
        now = time.time() if now is None else now
        return self.ran + (max(0.0, now - self.since) if self.status == RUNNING else 0.0)

    def queued_seconds(self, now: float | None = None) -> float:
        """Time spent waiting in the queue for the worker, over every wait."""
        now = time.time() if now is None else now
        current = now - self.since if self.status == QUEUED and self.since else 0.0
        return self.waited + max(0.0, current)


class JobStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(SCHEMA)
        have = {r["name"] for r in self._db().execute("PRAGMA table_info(jobs)")}
        for name, kind in ADDED.items():
            if name not in have:
                self._db().execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: we open transactions ourselves, so a reader never holds
            # a snapshot open between calls (which would keep the WAL from checkpointing).
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _tx(self) -> "_Tx":
        return self._Tx(self._db())

    # -- jobs -------------------------------------------------------------------------------
    def add(self, kind: str, params: dict, title: str = "") -> int:
        with self._tx() as db:
            now = time.time()
            cur = db.execute("INSERT INTO jobs (kind, title, status, params, created, since) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (kind, title, QUEUED, json.dumps(params), now, now))
            return int(cur.lastrowid)

    def get(self, job_id: int) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (int(job_id),)).fetchone()
        return Job.from_row(row) if row else None

    def stage_speeds(self, limit: int = 20) -> dict[str, float]:
        """Median speeds of recent finished stages: extract/convert in frames/s, train in
        it/s (what swap.estimate times a swap by while a job holds the device)."""
        found: dict[str, list[float]] = {"extract": [], "train": [], "convert": []}
        for job in self.list(limit=limit):
            t, p = job.timings, job.params
            every = max(1, int(p.get("extract", {}).get("every", 1)))
            if t.get("extract_target") and p.get("frames"):
                found["extract"].append(p["frames"] / every / max(t["extract_target"], 1e-3))
            rendered = t.get("convert") or t.get("quick_convert")
            if rendered and p.get("frames"):      # the quality check's time is not the render's
                judged = (job.result.get("evaluation") or {}).get("seconds") or 0.0
                rendered = rendered - judged if rendered > judged else rendered
                found["convert"].append(p["frames"] / max(rendered, 1e-3))
            if t.get("train") and job.info.get("it_s"):
                found["train"].append(float(job.info["it_s"]))
        return {k: sorted(v)[len(v) // 2] for k, v in found.items() if v}

    def list(self, limit: int = 100, statuses: tuple[str, ...] = ()) -> list[Job]:
        sql, args = "SELECT * FROM jobs", []
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        rows = self._db().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Job.from_row(r) for r in rows]

    def next_queued(self) -> Job | None:
        """The oldest queued job: jobs run in the order they were submitted."""
        row = self._db().execute("SELECT * FROM jobs WHERE status = ? ORDER BY id LIMIT 1",
                                 (QUEUED,)).fetchone()
        return Job.from_row(row) if row else None

    def update(self, job_id: int, **values) -> None:
        """Set columns of a job. A change of status also closes the time spent in the old
        one: running time goes to `ran`, queue time to `waited` (the job page's figures)."""
        if not values:
            return
        for name in JSON_FIELDS:
            if name in values:
                values[name] = json.dumps(values[name])
        with self._tx() as db:
            if "status" in values:
                values.update(self._closed(db, job_id, time.time()))
            cols = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), int(job_id)))

    @staticmethod
    def _closed(db: sqlite3.Connection, job_id: int, end: float, now: float | None = None
                ) -> dict:
        """The time columns once the job's current status ends at `end`."""
        row = db.execute("SELECT status, since, ran, waited FROM jobs WHERE id = ?",
                         (int(job_id),)).fetchone()
        out = {"since": end if now is None else now}
        if row is not None and row["since"] is not None:
            spent = max(0.0, end - row["since"])
            if row["status"] == RUNNING:
                out["ran"] = row["ran"] + spent
            elif row["status"] == QUEUED:
                out["waited"] = row["waited"] + spent
        return out

    def set_control(self, job_id: int, request: str, only_if: tuple[str, ...] = ()) -> bool:
        """Record a request ('cancel', 'convert_now', ...) for the runner; False if the job is
        not in one of the statuses `only_if`."""
        with self._tx() as db:
            sql = "UPDATE jobs SET control = ? WHERE id = ?"
            args: list = [request, int(job_id)]
            if only_if:
                sql += f" AND status IN ({','.join('?' * len(only_if))})"
                args += list(only_if)
            return db.execute(sql, args).rowcount > 0

    def mark_interrupted(self) -> list[int]:
        """Jobs left `running` by a process that died: mark them interrupted, return their ids."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY id",
                                            (RUNNING,))]
            for job_id in ids:
                # It ran until its last recorded event, not until now (the app may have been
                # down for hours).
                last = db.execute("SELECT MAX(t) FROM events WHERE job_id = ?",
                                  (job_id,)).fetchone()[0]
                row = db.execute("SELECT since FROM jobs WHERE id = ?", (job_id,)).fetchone()
                end = max(last or 0.0, row["since"] or 0.0)
                values = {"status": INTERRUPTED, **self._closed(db, job_id, end, time.time())}
                cols = ", ".join(f"{k} = ?" for k in values)
                db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))
        return ids

    def delete(self, job_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM events WHERE job_id = ?", (int(job_id),))
            db.execute("DELETE FROM jobs WHERE id = ?", (int(job_id),))

    # -- events -----------------------------------------------------------------------------
    def add_events(self, job_id: int, events: list[tuple[str, dict]], **job_values) -> None:
        """Append events and (optionally) update the job row in one transaction."""
        for name in JSON_FIELDS:
            if name in job_values:
                job_values[name] = json.dumps(job_values[name])
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT INTO events (job_id, t, kind, data) VALUES (?, ?, ?, ?)",
                           [(int(job_id), now, k, json.dumps(d)) for k, d in events])
            if job_values:
                cols = ", ".join(f"{k} = ?" for k in job_values)
                db.execute(f"UPDATE jobs SET {cols} WHERE id = ?",
                           (*job_values.values(), int(job_id)))

    def events(self, job_id: int, kind: str, last: int = 0, after: int = 0) -> list[dict]:
        """Events of `kind` in order, each its data plus `id` and `t`; `last` keeps the newest
        N, `after` only those with a larger id."""
        sql = "SELECT id, t, data FROM events WHERE job_id = ? AND kind = ? AND id > ?"
        args = (int(job_id), kind, int(after))
        if last:
            rows = self._db().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, last)).fetchall()
            rows.reverse()
        else:
            rows = self._db().execute(sql + " ORDER BY id", args).fetchall()
        return [{**json.loads(r["data"]), "id": r["id"], "t": r["t"]} for r in rows]

    def count_events(self, job_id: int, kind: str) -> int:
        return self._db().execute("SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = ?",
                                  (int(job_id), kind)).fetchone()[0]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
