"""`swap`: extract both people, train (or continue) a model, convert the target video.

The work is a `SwapJob` (paths and settings, decided up front by localswap.swap.plan) run
stage by stage with `run_stage`, so a job runner can record, resume or stop between stages;
`swap()` runs them all, after saying how long each stage will take (localswap.swap.estimate).
Each stage's measured speed goes to speeds.json for the next estimate.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from localswap.progress import Progress, duration_text, no_progress
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
from localswap.swap import speeds
from localswap.swap.estimate import estimate
from localswap.swap.plan import SwapJob, iterations_left, plan_swap
from localswap.train import budget
from localswap.workspace import Workspace


def run_stage(job: SwapJob, stage: str, ws: Workspace, progress: Progress = no_progress,
              cancel: threading.Event | None = None, names: dict[str, str] | None = None):
    """Run one stage; its result is also kept in job.results and its speed in speeds.json.
    `names`: the user's names of the input files, where they are stored under others."""
    from localswap.convert.render import convert
    from localswap.faces.extract import extract
    from localswap.train.trainer import train
    started = time.perf_counter()
    if stage == "extract_target":
        # The target's chosen person (--person / the app's pick) is the one converted.
        result = extract([job.target], job.faceset_target,
                         replace(job.extract, person=job.convert.person,
                                 person_photo=job.convert.person_photo, role="target"),
                         progress, names)
        speeds.record(ws, "extract", result.fps, job)
    elif stage == "extract_source":
        result = extract(job.sources, job.faceset_source, replace(job.extract, role="source"),
                         progress, names)
    elif stage == "train":
        left = iterations_left(job)
        result = train(job.faceset_source, job.faceset_target, job.model_dir, job.train,
                       progress=progress, cancel=cancel, basic=job.basic)
        elapsed = time.perf_counter() - started
        its = getattr(result, "it_s", 0) or (left / elapsed if left > 0 and elapsed else 0)
        # A cancelled run's speed is mostly start-up; a disturbed one is not this machine's.
        if result.stopped != "cancel" and not result.disturbed and elapsed >= 20:
            speeds.record(ws, "train", its, job)
        _remember_people(job.model_dir)
    elif stage == "convert":
        # the model was trained on this very target: its drawing of them can be trusted
        result = convert(job.target, job.model_dir, job.out, job.convert, progress, cancel,
                         knows_person=True)
        speeds.record(ws, "convert", result.fps, job)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    job.results[stage] = result
    return result


def _remember_people(model_dir: Path) -> None:
    """The model keeps who its source and target are (a quick swap checks the fit by it)."""
    from localswap.models.identity import remember
    try:
        remember(model_dir)
    except Exception:  # noqa: BLE001  (the model is trained; knowing its people is extra)
        pass


def swap(sources: list[str | Path], target: str | Path, out: str | Path, ws: Workspace,
         model: str | Path | None = None, train: TrainSettings | None = None,
         convert: ConvertSettings | None = None, extract: ExtractSettings | None = None,
         progress_for=lambda stage: no_progress, report=print,
         cancel: threading.Event | None = None) -> SwapJob:
    """Plan, print the estimate, run every stage. `progress_for(stage)` gives each stage's
    progress callback; `report(line)` receives the estimate and stage summaries."""
    job = plan_swap(sources, target, out, ws, model, train, convert, extract)
    est = estimate(job, ws)
    report(f"model {job.model_dir}; estimated time on this machine:")
    for line in est.lines():
        report("  " + line)
    if est.faceless:
        report(est.faceless_text(job.target.name))
    if job.basic:
        report("Basic: " + budget.describe(job.train.iterations, est.seconds("train"),
                                           job.device_kind,
                                           adapt=bool(job.train.init_from)))
    for stage in job.stages():
        t = time.perf_counter()
        run_stage(job, stage, ws, progress_for(stage), cancel)
        report(f"{stage}: done in {duration_text(time.perf_counter() - t)}")
    return job
