"""`swap`: extract both people, train (or continue) a model, convert the target video.

The work is a `SwapJob` (paths and settings, decided up front by `plan_swap`) run stage by
stage with `run_stage`, so a job runner can record, resume or stop between stages; `swap()`
runs them all. `estimate()` says how long each stage will take on this machine, from speeds
measured here before (workspace/speeds.json) or, failing that, measured on the spot with a
few frames and iterations.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from localswap import media
from localswap.swap import speeds
from localswap.errors import UserError
from localswap.faces.extract import collect_inputs
from localswap.progress import Progress, no_progress
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
from localswap.train import budget
from localswap.workspace import Workspace, check_name

STAGES = ("extract_target", "extract_source", "train", "convert")


@dataclass
class SwapJob:
    sources: list[Path]
    target: Path
    out: Path
    model_dir: Path
    faceset_target: Path
    faceset_source: Path
    extract: ExtractSettings
    train: TrainSettings
    convert: ConvertSettings
    target_frames: int              # frames of the target video to extract and convert
    source_frames: int              # frames + photos of the sources
    results: dict = field(default_factory=dict)   # per stage, once run
    basic: bool = False             # the iterations are Basic's: the quality bar's
    device_kind: str = "cpu"        # where training will run: cpu or cuda


@dataclass
class StageEstimate:
    stage: str
    seconds: float
    basis: str                      # how the speed was obtained

    def line(self) -> str:
        return f"{self.stage:<15} ~{fmt_seconds(self.seconds):>8}  ({self.basis})"


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _slug(text: str, length: int = 24) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:length] or "media"


def _frames(items: list[tuple[Path, media.MediaInfo | None]], every: int) -> int:
    return sum(-(-info.frames // every) if info else 1 for _, info in items)


def plan_swap(sources: list[str | Path], target: str | Path, out: str | Path, ws: Workspace,
              model: str | Path | None = None, train: TrainSettings | None = None,
              convert: ConvertSettings | None = None,
              extract: ExtractSettings | None = None) -> SwapJob:
    """Check the inputs and decide every path before any work starts.

    `model`: an existing model folder to continue (or a new folder to create); by default
    a new model in the workspace named after the two people."""
    train = (train or TrainSettings()).validate()
    # Basic (iterations 0): the iterations that reach the quality bar on this kind of device.
    from localswap.gpu import nvidia_present
    kind = "cuda" if train.device in ("auto", "cuda") and nvidia_present() else "cpu"
    basic = not train.iterations and not train.max_minutes
    train = budget.resolve(train, kind)
    convert = (convert or ConvertSettings()).validate()
    extract = (extract or ExtractSettings()).validate()
    if not sources:
        raise UserError("give at least one --source video, photo or folder of photos")
    target = Path(target)
    if not media.is_video(target):
        raise UserError(f"{target.name}: the target must be a video (mp4, mov, mkv, webm, avi)")
    target_items = collect_inputs([target])
    source_items = collect_inputs(list(sources))
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise UserError(f"{out.name}: the swap is written as H.264 mp4; name it .mp4")
    if model is None:                       # a new model named after the two people
        base = check_name(f"{_slug(source_items[0][0].stem)}-on-{_slug(target.stem)}")
        name, k = base, 2
        while ws.path("models", name).exists():
            name, k = f"{base}-{k}", k + 1
        model_dir = ws.path("models", name)
    elif Path(model).is_dir() or len(Path(model).parts) > 1:
        model_dir = Path(model)             # a folder: continued if it holds a model
    else:
        model_dir = ws.path("models", str(model))   # a library name: likewise
    if (model_dir / "manifest.json").is_file():
        from localswap.convert.swapper import read_manifest
        from localswap.models.dfm import is_dfm_dir
        if is_dfm_dir(model_dir):
            raise UserError(f"{model_dir.name} is a DeepFaceLive model: it cannot be trained "
                            "here; use it as it is (convert, or Models → Quick swap)")
        extract.face_type = read_manifest(model_dir).get("face_type", extract.face_type)
    elif train.init_from:       # a new model from a trained one: its faces, checked now
        from localswap.convert.swapper import read_manifest
        from localswap.models.init_from import find
        start = find(train.init_from, model_dir).absolute()
        train = replace(train, init_from=str(start))     # the same model from any folder
        extract.face_type = read_manifest(start).get("face_type", extract.face_type)
    stem = _slug(model_dir.name, 48)
    return SwapJob(
        sources=[p for p, _ in source_items], target=target, out=out, model_dir=model_dir,
        faceset_target=ws.path("facesets", f"{stem}-target"),
        faceset_source=ws.path("facesets", f"{stem}-source"),
        extract=extract, train=train, convert=convert,
        target_frames=_frames(target_items, extract.every),
        source_frames=_frames(source_items, extract.every), basic=basic,
        device_kind=kind)


def _iterations_left(job: SwapJob) -> int:
    done = 0
    if (job.model_dir / "manifest.json").is_file():
        from localswap.convert.swapper import read_manifest
        done = int(read_manifest(job.model_dir).get("iteration", 0) or 0)
    return max(0, job.train.iterations - done)


def estimate(job: SwapJob, ws: Workspace) -> list[StageEstimate]:
    """Seconds per stage from this machine's speeds (stored, else measured now)."""
    found = speeds.for_job(job, ws)
    out = [StageEstimate("extract_target", job.target_frames / found.extract_fps,
                         found.extract_basis),
           StageEstimate("extract_source", job.source_frames / found.extract_fps,
                         found.extract_basis),
           StageEstimate("train", _iterations_left(job) / found.train_its, found.train_basis)]
    conv_frames = job.target_frames * max(1, job.extract.every)
    if job.convert.start is not None or job.convert.end is not None:
        info = media.probe(job.target)
        span = (job.convert.end or info.duration) - (job.convert.start or 0)
        conv_frames = max(1, int(span * info.fps))
    out.append(StageEstimate("convert", conv_frames / found.convert_fps, found.convert_basis))
    return out


def run_stage(job: SwapJob, stage: str, ws: Workspace, progress: Progress = no_progress,
              cancel: threading.Event | None = None):
    """Run one stage; its result is also kept in job.results and its speed in speeds.json."""
    from localswap.convert.convert import convert
    from localswap.faces.extract import extract
    from localswap.train.trainer import train
    started = time.perf_counter()
    if stage == "extract_target":
        # The target's chosen person (--person / the app's pick) is the one converted.
        result = extract([job.target], job.faceset_target,
                         replace(job.extract, person=job.convert.person,
                                 person_photo=job.convert.person_photo), progress)
        speeds.record(ws, "extract", result.fps, job)
    elif stage == "extract_source":
        result = extract(job.sources, job.faceset_source, job.extract, progress)
    elif stage == "train":
        left = _iterations_left(job)
        result = train(job.faceset_source, job.faceset_target, job.model_dir, job.train,
                       progress=progress, cancel=cancel)
        elapsed = time.perf_counter() - started
        its = getattr(result, "it_s", 0) or (left / elapsed if left > 0 and elapsed else 0)
        # A cancelled run's speed is mostly start-up; a disturbed one is not this machine's.
        if result.stopped != "cancel" and not result.disturbed and elapsed >= 20:
            speeds.record(ws, "train", its, job)
    elif stage == "convert":
        result = convert(job.target, job.model_dir, job.out, job.convert, progress, cancel)
        speeds.record(ws, "convert", result.fps, job)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    job.results[stage] = result
    return result


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
    for e in est:
        report("  " + e.line())
    report(f"  {'total':<15} ~{fmt_seconds(sum(e.seconds for e in est)):>8}")
    if job.basic:
        train_s = next(e.seconds for e in est if e.stage == "train")
        report("Basic: " + budget.describe(job.train.iterations, train_s, job.device_kind))
    for stage in STAGES:
        t = time.perf_counter()
        run_stage(job, stage, ws, progress_for(stage), cancel)
        report(f"{stage}: done in {fmt_seconds(time.perf_counter() - t)}")
    return job
