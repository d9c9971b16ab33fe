"""How long a swap will take here: the one estimator, for the CLI's `swap` and the app.

`estimate(job, ws)` times each stage from this machine's speeds (localswap.swap.speeds: stored
in speeds.json by earlier runs, else measured on the spot with a few frames and iterations).
The app asks through `estimate_swap`: while the runner is idle it uses `estimate`; while a job
runs, measuring would compete with it for the device, so the estimate then comes from the
timings of the jobs this workspace already ran (`from_past_jobs`), or from first guesses.

The app's side runs in the web server, which never initialises CUDA: a CUDA context and the
allocator's cache would stay in the server for good, and the worker's planner would see that
memory as used. Stored speeds are read there; measuring runs in a short-lived process of its
own (`measure_elsewhere`) whose GPU memory goes back to the driver when it exits.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from localswap import media
from localswap.progress import duration_text, plural
from localswap.swap import speeds
from localswap.swap.plan import SwapJob, iterations_left
from localswap.train.budget import train_seconds
from localswap.workspace import Workspace

GUESS = speeds.GUESS


@dataclass
class Estimate:
    stages: list[tuple[str, float]]     # (stage, seconds)
    measured: bool                      # False: first guesses, nothing measured here yet
    basis: str = ""                     # how the speeds were obtained
    note: str = ""                      # Basic mode: how long a good swap takes here
    bases: dict = field(default_factory=dict)   # per stage, where they differ
    # The speed probe found no usable face in the target's frames it looked at:
    # (frames, {reason: frames}), one reason a frame
    faceless: tuple[int, dict] | None = None

    @property
    def total(self) -> float:
        return sum(s for _, s in self.stages)

    def seconds(self, stage: str) -> float:
        return dict(self.stages)[stage]

    def lines(self) -> list[str]:
        """One line per stage and the total, for the command line."""
        return [f"{stage:<15} ~{duration_text(sec):>12}  ({self.bases.get(stage, self.basis)})"
                for stage, sec in self.stages] + \
            [f"{'total':<15} ~{duration_text(self.total):>12}"]

    def faceless_text(self, target_name: str) -> str:
        """What a probe without a face means, naming the target as the user knows it; ''
        when the probe found faces (or nothing was probed)."""
        if not self.faceless:
            return ""
        from localswap.faces.summary import ExtractSummary
        frames, why = self.faceless
        return (f"A quick look at {plural(frames, 'frame')} across the target video "
                f"{target_name} found no usable face in them "
                f"({ExtractSummary.rejected_text_of(why)}), so the training and render times "
                f"are first guesses. This does not stop the swap: it reads every frame of "
                f"{target_name}, and stops only if none of them shows a usable face.")


def estimate(job: SwapJob, ws: Workspace) -> Estimate:
    """Seconds per stage from this machine's speeds (stored, else measured now)."""
    found = speeds.for_job(job, ws)
    conv_frames = job.target_frames * max(1, job.extract.every)
    if job.convert.start is not None or job.convert.end is not None:
        info = media.probe(job.target)
        span = (job.convert.end or info.duration) - (job.convert.start or 0)
        conv_frames = max(1, int(span * info.fps))
    stages = [("extract_target", job.target_frames / found.extract_fps)]
    if not job.reuse_source:        # adapting reuses the model's source faces
        stages.append(("extract_source", job.source_frames / found.extract_fps))
    stages += [
              ("train", train_seconds(iterations_left(job), found.train_its,
                                      job.train.max_minutes)),
              ("convert", conv_frames / found.convert_fps)]
    bases = {"extract_target": found.extract_basis, "extract_source": found.extract_basis,
             "train": found.train_basis, "convert": found.convert_basis}
    return Estimate(stages, measured=True, basis=found.extract_basis, bases=bases,
                    faceless=found.faceless)


def device_kind() -> str:
    """cuda or cpu, asked of NVML (torch.cuda.is_available() would initialise the driver)."""
    from localswap.gpu import nvidia_present
    return "cuda" if nvidia_present() else "cpu"


def from_past_jobs(speeds: dict[str, float], target_frames: int, source_frames: int,
                   iterations: int, every: int = 1, quick: bool = False,
                   device: str | None = None, max_minutes: float = 0.0) -> Estimate:
    """Seconds per stage from `speeds`, the median speeds of the jobs run here before
    (jobs.store.JobStore.stage_speeds), else first guesses."""
    guess = GUESS[device or device_kind()]
    rate = {k: speeds.get(k, guess[k]) for k in guess}
    stages: list[tuple[str, float]] = []
    if not quick:
        every = max(1, every)
        stages.append(("extract_target", target_frames / every / rate["extract"]))
        stages.append(("extract_source", source_frames / every / rate["extract"]))
        stages.append(("train", train_seconds(iterations, rate["train"], max_minutes)))
    stages.append(("convert", target_frames / rate["convert"]))
    return Estimate(stages, measured=bool(speeds),
                    basis="from jobs run here before" if speeds else
                    "a first guess: it gets exact after the first job on this machine")


def estimate_swap(root, target: str, sources: list[str], options: dict, *, idle: bool = True,
                  past_speeds: Callable[[], dict[str, float]] = dict) -> Estimate:
    """Seconds per stage for a swap of `target` with `sources` (files not yet submitted) in
    the workspace at `root`. `idle`: no job is running, so speeds may be measured; else (or
    when measuring is impossible) the estimate comes from `past_speeds()`, the speeds of the
    jobs run here before. Basic mode (no iterations and no time budget given) trains Basic's
    iteration count, and the estimate's note says how long that takes here."""
    from localswap.settings import ExtractSettings, TrainSettings
    from localswap.train import budget
    train = TrainSettings(**options.get("train", {})).validate()
    basic = budget.is_basic(train)
    kind = device_kind() if train.device == "auto" else train.device
    train = budget.resolve(train, kind)
    extract = ExtractSettings(**options.get("extract", {})).validate()
    est = None
    if idle:
        try:
            est = _job_estimate(str(root), target, sources, options, measure=False)
            if est is None:        # a speed is missing: measure it, away from the server
                est = measure_elsewhere(str(root), target, sources, options)
        except ImportError:
            pass            # the pipeline's pieces are missing from this build
    if est is None:
        frames = media.probe(target).frames
        src = sum(media.probe(s).frames if media.is_video(s) else 1 for s in sources)
        est = from_past_jobs(past_speeds(), frames, src, train.iterations, extract.every,
                             max_minutes=train.max_minutes)
    # The app checks every render's quality (jobs.stages): its own line, in the total.
    seconds, basis = speeds.judge_seconds(Workspace(root), Path(target), kind)
    est.stages.append(("judge", seconds))
    est.bases["judge"] = basis
    if basic:
        seconds = sum(sec for stage, sec in est.stages if stage == "train")
        est.note = "Basic: " + budget.describe(train.iterations, seconds, kind,
                                               adapt=bool(train.init_from))
    return est


def _job_estimate(root: str, target: str, sources: list[str], options: dict,
                  measure: bool) -> Estimate | None:
    """`estimate` for the swap the options describe; with measure=False, None when a speed
    it needs is not stored yet (measuring must not happen in this process)."""
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.swap.plan import plan_swap
    ws = Workspace(root)
    model = str(ws.path("models", options["model"])) if options.get("model") else None
    job = plan_swap(sources, target, ws.root / "outputs" / "estimate.mp4", ws, model,
                    TrainSettings(**options.get("train", {})),
                    ConvertSettings(**options.get("convert", {})),
                    ExtractSettings(**options.get("extract", {})))
    if not measure:
        stored, keys = speeds.load(ws), speeds.keys(job)
        if not all((stored.get(kind) or {}).get(key) for kind, key in keys.items()):
            return None
    return estimate(job, ws)


def measure_elsewhere(root: str, target: str, sources: list[str], options: dict) -> Estimate:
    """Measure this machine's speeds in a fresh process that exits when done (it stores them
    in speeds.json for the next estimate), and return the estimate it made."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_job_estimate, root, target, list(sources), options, True).result()
