"""The quality check after a swap's render: localswap.evaluate's report for the job view,
its progress on the job's bar, and its speed kept for the next estimate's line."""
from __future__ import annotations

import time

from localswap.errors import in_words
from localswap.jobs.recorder import Stopped
from localswap.progress import duration_text
from localswap.swap import speeds
from localswap.swap.speeds import JUDGE_FRAMES, JUDGE_SOURCE_FACES


def judge(ctx, job) -> dict:
    """{"evaluation": the report as a dict, or None}. It never fails the job: a judge that
    cannot judge (dlib missing, a render of part of the video) is a log line. Its progress
    moves the bar and the ETA: it takes about as long as a short render."""
    from localswap.evaluate import evaluate
    started = time.monotonic()

    def progress(done: int, total: int, message: str = "", **info) -> None:
        if ctx.stop.is_set() and ctx.stop.reason in ("cancel", "shutdown"):
            raise Stopped(ctx.stop.reason)
        spent = time.monotonic() - started
        ctx.progress(done, total, f"checking the quality: {done} of {total} faces read",
                     fraction=done / max(total, 1), fps=None,
                     eta=round(spent / done * (total - done), 1) if done else None)
    try:
        report = evaluate(job.sources, job.target, job.out, max_frames=JUDGE_FRAMES,
                          source_faces=JUDGE_SOURCE_FACES, progress=progress)
    except Exception as exc:  # noqa: BLE001  (the render is done; the judge is extra)
        ctx.progress.log(f"Quality check skipped: {in_words(exc)}")
        return {"evaluation": None}              # not an older render's report
    ctx.progress.log(f"Quality: {report.sentence()}")
    if report.seconds:                               # the next estimate's line
        speeds.record_judge(ctx.workspace, job.target, report.seconds)
        ctx.progress.log(f"The quality check took {duration_text(report.seconds)}.")
    data = report.to_dict()
    for key in ("output", "target", "sources"):   # absolute paths: the job keeps its own
        data.pop(key)
    return {"evaluation": data}
