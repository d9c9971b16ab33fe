"""Time estimates per stage, from this machine's measured speed.

The pipeline's estimate (localswap.pipeline.estimate: speeds stored in speeds.json by earlier
runs, else measured on the spot with a few frames and iterations) is used while the runner is
idle. While a job runs, measuring would compete with it for the device, so the estimate then
comes from the timings of the jobs this workspace already ran, or from first guesses.
"""
from __future__ import annotations

from dataclasses import dataclass

from localswap.jobs.store import JobStore

# First guesses before anything was measured here (frames/s, it/s), by device kind.
GUESS = {"cpu": {"extract": 15.0, "train": 2.0, "convert": 4.0},
         "cuda": {"extract": 60.0, "train": 20.0, "convert": 30.0}}


@dataclass
class Estimate:
    stages: list[tuple[str, float]]     # (stage, seconds)
    measured: bool                      # False: first guesses, nothing measured here yet
    basis: str = ""

    @property
    def total(self) -> float:
        return sum(s for _, s in self.stages)


def device_kind() -> str:
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:
        return "cpu"


def measured_speeds(store: JobStore, limit: int = 20) -> dict[str, float]:
    """Median speeds of recent finished stages: extract/convert in frames/s, train in it/s."""
    found: dict[str, list[float]] = {"extract": [], "train": [], "convert": []}
    for job in store.list(limit=limit):
        t, p = job.timings, job.params
        every = max(1, int(p.get("extract", {}).get("every", 1)))
        if t.get("extract_target") and p.get("frames"):
            found["extract"].append(p["frames"] / every / max(t["extract_target"], 1e-3))
        rendered = t.get("convert") or t.get("quick_convert")
        if rendered and p.get("frames"):
            found["convert"].append(p["frames"] / max(rendered, 1e-3))
        if t.get("train") and job.info.get("it_s"):
            found["train"].append(float(job.info["it_s"]))
    return {k: sorted(v)[len(v) // 2] for k, v in found.items() if v}


def estimate(store: JobStore, target_frames: int, source_frames: int, iterations: int,
             every: int = 1, quick: bool = False, device: str | None = None) -> Estimate:
    speeds = measured_speeds(store)
    guess = GUESS[device or device_kind()]
    rate = {k: speeds.get(k, guess[k]) for k in guess}
    stages: list[tuple[str, float]] = []
    if not quick:
        every = max(1, every)
        stages.append(("extract_target", target_frames / every / rate["extract"]))
        stages.append(("extract_source", source_frames / every / rate["extract"]))
        stages.append(("train", iterations / rate["train"]))
    stages.append(("convert", target_frames / rate["convert"]))
    return Estimate(stages, measured=bool(speeds),
                    basis="from jobs run here before" if speeds else
                    "a first guess: it gets exact after the first job on this machine")


def estimate_swap(runner, target: str, sources: list[str], options: dict) -> Estimate:
    """Seconds per stage for a swap of `target` with `sources` (files not yet submitted)."""
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    train = TrainSettings(**options.get("train", {})).validate()
    extract = ExtractSettings(**options.get("extract", {})).validate()
    if runner.idle():
        try:
            from localswap.pipeline import estimate as pipeline_estimate, plan_swap
            ws = runner.workspace
            model = None
            if options.get("model"):
                model = str(ws.path("models", options["model"]))
            job = plan_swap(sources, target, ws.root / "outputs" / "estimate.mp4", ws, model,
                            train, ConvertSettings(**options.get("convert", {})), extract)
            found = pipeline_estimate(job, ws)
            return Estimate([(e.stage, e.seconds) for e in found], measured=True,
                            basis=found[0].basis if found else "")
        except ImportError:
            pass            # the pipeline's pieces are missing from this build
    from localswap import media
    frames = media.probe(target).frames
    src = sum(media.probe(s).frames if media.is_video(s) else 1 for s in sources)
    return estimate(runner.store, frames, src, train.iterations, extract.every)
