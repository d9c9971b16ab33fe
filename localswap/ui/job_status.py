"""The job's status in words: stage, a progress bar, iteration of its target, speed, ETA,
elapsed time and the finished stages (the job view's first lines)."""
from __future__ import annotations

import html
import time

from localswap.jobs import stages
from localswap.jobs.snapshot import Snapshot, eta_text
from localswap.jobs.store import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING

STATUS_WORDS = {QUEUED: "waiting in the queue", RUNNING: "running", DONE: "finished",
                FAILED: "failed", CANCELLED: "cancelled", INTERRUPTED: "interrupted"}


def status_text(snap: Snapshot) -> str:
    job = snap.job
    plan = stages.PLANS[job.kind](job)
    lines = [f"### #{job.id} {html.escape(job.title or job.kind)}",
             f"Status: **{STATUS_WORDS.get(job.status, job.status)}**"]
    if job.status == DONE:
        lines[-1] += f" · all {len(plan)} stages done" if len(plan) > 1 else ""
    elif job.stage and job.stage in plan:
        where = "" if job.active else "stopped in "
        lines[-1] += (f" · {where}stage {plan.index(job.stage) + 1} of {len(plan)}: "
                      f"**{stages.TITLES[job.stage]}**")
    pct = int(round(job.progress * 100))
    if job.status == RUNNING:
        lines.append(progress_bar(job.progress))
    info = job.info
    figures = []
    if job.status == RUNNING:
        figures.append(f"{pct} %")
    if info.get("iteration") is not None:
        figures.append(iteration_text(job))
    rate = info.get("it_s")
    if job.status == RUNNING and job.stage == "train" and rate:
        figures.append(f"{float(rate):.2f} it/s")
    if job.status == RUNNING and info.get("fps") and job.stage != "train":
        figures.append(f"{float(info['fps']):.1f} frames/s")
    if job.status == RUNNING and info.get("eta") is not None:
        figures.append(f"ETA {eta_text(float(info['eta']))}")
    figures += time_figures(job)
    if figures:
        lines.append(" · ".join(figures))
    if job.timings:
        lines.append("Finished stages: " + ", ".join(
            f"{stages.TITLES.get(k, k).lower()} {eta_text(v)}" for k, v in job.timings.items()))
    if job.message:
        lines.append(html.escape(job.message))
    return "\n\n".join(lines)


def iteration_text(job) -> str:
    """'iteration 285 of 578', and while a continued or resumed training runs, what this run
    adds: '(this run: 7 of 300)', the part the bar and the ETA describe."""
    info, target = job.info, train_target(job)
    it = int(info["iteration"])
    text = f"iteration {it:,}" + (f" of {target:,}" if target else "")
    start = info.get("run_from")
    if job.status == RUNNING and job.stage == "train" and isinstance(start, int) and start > 0:
        text += (f" (this run: {max(0, it - start):,}"
                 + (f" of {target - start:,}" if target > start else "") + ")")
    return text


def time_figures(job, now: float | None = None) -> list[str]:
    """How long the job has run ("elapsed 3 min 10 s": its running time only, not the time
    it waited in the queue or sat interrupted or finished) and, apart, how long it waited."""
    now = time.time() if now is None else now
    out = []
    waited = job.queued_seconds(now)
    if job.started or job.status == RUNNING:
        out.append(f"elapsed {eta_text(job.running_seconds(now))}")
    if waited >= 1 or job.status == QUEUED:
        out.append(f"waited in the queue {eta_text(waited)}")
    return out


def train_target(job) -> int:
    """The iteration a swap trains to: as asked, else as the trainer resolved it (Basic's
    count); 0 when unknown or when a time budget alone ends the run."""
    from localswap.train.budget import UNLIMITED
    target = int(job.params.get("train", {}).get("iterations") or job.info.get("iterations")
                 or 0)
    return target if 0 < target < UNLIMITED else 0


def progress_bar(fraction: float) -> str:
    """A bar whose filled part is the done share: empty at 0 % (a <progress> element drew a
    full grey track there, which read as done)."""
    pct = max(0.0, min(100.0, 100.0 * float(fraction or 0.0)))
    return ('<div class="job-progress" title="{0:.0f} %" style="width:100%;height:10px;'
            'border-radius:5px;background:var(--neutral-200, #e5e7eb);'
            'border:1px solid var(--neutral-300, #d1d5db);overflow:hidden">'
            '<div class="job-progress-done" style="width:{0:.1f}%;height:100%;'
            'background:var(--color-accent, #f97316)"></div></div>').format(pct)
