"""Jobs: a SQLite store of jobs and events, and the runner thread that owns the device."""
from localswap.jobs.runner import Runner
from localswap.jobs.store import Job, JobStore

__all__ = ["Job", "JobStore", "Runner"]
