"""Time estimates per stage, from this machine's measured speed.

Speeds come from the jobs this workspace already ran (frames/s of extraction and conversion,
training it/s); until there are any, conservative first guesses for the device are used and
the estimate says so.
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
        if t.get("convert") and p.get("frames"):
            found["convert"].append(p["frames"] / max(t["convert"], 1e-3))
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
    return Estimate(stages, measured=bool(speeds))
