"""The stages a job runs, each a thin call into the stage functions the CLI and tests use.

A stage takes a StageContext (the job, the workspace, the progress recorder, the stop event
and the device) and returns a dict merged into the job's `result`. Paths in job params and
results are relative to the workspace root, so a workspace folder can be moved.
"""
from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from localswap import media
from localswap.errors import (DiskFullError, NoFacesError, UserError, error_summary,
                              is_disk_full)
from localswap.jobs.recorder import Recorder, Stopped
from localswap.jobs.store import Job
from localswap.progress import plural
from localswap.settings import ExtractSettings
from localswap.workspace import Workspace, check_name, inside, slug

TITLES = {
    "prepare": "Preparing the videos",
    "extract_target": "Finding faces in the target",
    "extract_source": "Finding faces in the source",
    "train": "Training",
    "convert": "Rendering the video",
    "quick_convert": "Rendering the video",
    "judge": "Checking the quality",      # part of the render stage; its own estimate line
}
STOPPABLE = ("train",)    # stages that end themselves on the stop event (after a checkpoint)


@dataclass
class StageContext:
    job: Job
    workspace: Workspace
    progress: Recorder
    stop: threading.Event
    device: str

    def path(self, rel: str) -> Path:
        p = self.workspace.root / rel
        if not inside(self.workspace.root, p):
            raise UserError(f"{rel!r} points outside the workspace")
        return p

    def rel(self, path: Path) -> str:
        return str(Path(path).relative_to(self.workspace.root))


def swap_plan(job: Job) -> list[str]:
    """An adaptation (no sources: the starting model's source faces) finds no source faces."""
    plan = ["prepare"] if job.params.get("downscale") else []
    source = ["extract_source"] if job.params.get("sources") else []
    return plan + ["extract_target", *source, "train", "convert"]


def quick_plan(job: Job) -> list[str]:
    return (["prepare"] if job.params.get("downscale") else []) + ["quick_convert"]


PLANS = {"swap": swap_plan, "quick_swap": quick_plan}


def model_dir(ctx: StageContext) -> Path:
    return ctx.workspace.path("models", check_name(ctx.job.params["model"]))


def target_path(ctx: StageContext) -> Path:
    return ctx.path(ctx.job.result.get("target") or ctx.job.params["target"])


# -- stages --------------------------------------------------------------------------------
def prepare(ctx: StageContext) -> dict:
    """Downscale videos wider than params['downscale'] px (H.264, audio copied)."""
    width = int(ctx.job.params["downscale"])
    out: dict = {}
    names = [("target", ctx.job.params["target"])]
    names += [(f"source{i}", s) for i, s in enumerate(ctx.job.params.get("sources", []))]
    result_sources = []
    for n, (key, rel) in enumerate(names):
        src = ctx.path(rel)
        new_rel = rel
        if media.is_video(src) and media.probe(src).width > width:
            dst = ctx.workspace.root / "uploads" / f"job{ctx.job.id}-{key}-{width}.mp4"
            if not dst.exists():
                _downscale(src, dst, width, ctx.progress, n, len(names))
            new_rel = ctx.rel(dst)
            from localswap.faces.identities import same_people
            same_people(src, dst)       # people keep the numbers the user picked them by
        if key == "target":
            out["target"] = new_rel
        else:
            result_sources.append(new_rel)
        ctx.progress(n + 1, len(names), f"{Path(rel).name} ready")
    if result_sources:
        out["sources"] = result_sources
    return out


def _downscale(src: Path, dst: Path, width: int, progress: Recorder, n: int, total: int):
    """Re-encode `src` at `width` px wide into `dst` (temp file + rename), reporting progress
    from ffmpeg's -progress output; audio is kept (as AAC, which every mp4 player reads)."""
    info = media.probe(src)
    tmp = dst.with_name(f".{dst.name}.tmp.mp4")
    cmd = [media.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-i", str(src), "-map", "0:v:0", "-map", "0:a:0?", "-vf", f"scale={width}:-2",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-progress", "pipe:1", "-nostats", str(tmp)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.isdigit() and info.duration:
                done = min(1.0, int(value) / 1e6 / info.duration)
                progress(n * 1000 + int(1000 * done), total * 1000,
                         f"downscaling {src.name} to {width} px wide")
        if proc.wait() != 0:
            raise UserError(f"{src.name}: the video could not be downscaled "
                            f"({proc.stderr.read().strip()[-200:]})")
        os.replace(tmp, dst)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        tmp.unlink(missing_ok=True)


def _settings(ctx: StageContext, cls, key: str):
    values = dict(ctx.job.params.get(key, {}))
    if ctx.device != "auto" and any(f == "device" for f in cls.__dataclass_fields__):
        values.setdefault("device", ctx.device)
    return cls(**values).validate()


def swap_job(ctx: StageContext):
    """The pipeline's SwapJob for this job: the same paths and settings the CLI's `swap`
    decides (facesets named after the model, the face type of a model being continued).
    Running stages through pipeline.run_stage also keeps speeds.json, the basis of the
    estimates, up to date."""
    from localswap.swap.plan import plan_swap
    from localswap.settings import ConvertSettings, TrainSettings
    rels = ctx.job.result.get("sources") or ctx.job.params.get("sources") or []
    return plan_swap([ctx.path(r) for r in rels], target_path(ctx), output_path(ctx, 0),
                     ctx.workspace, model=str(model_dir(ctx)),
                     train=_settings(ctx, TrainSettings, "train"),
                     convert=_settings(ctx, ConvertSettings, "convert"),
                     extract=_settings(ctx, ExtractSettings, "extract"))


def output_path(ctx: StageContext, iteration: int | None = None) -> Path:
    """outputs/<target>-swapped.mp4, named after the video the user gave; a swap job's
    render adds the model's iteration (<target>-swapped-4200.mp4). Where another render
    has that name already, -2, -3 ... come before the iteration."""
    name = ctx.job.params.get("target_name") or target_path(ctx).name
    stem = f"{slug(Path(name).stem, 48)}-swapped"
    tail = f"-{iteration}.mp4" if iteration is not None else ".mp4"
    mine = ctx.job.result.get("output")
    for n in range(1, 10_000):
        path = ctx.workspace.root / "outputs" / (stem + (f"-{n}" if n > 1 else "") + tail)
        if not path.exists() or (mine and path == ctx.path(mine)):
            return path
    raise UserError(f"too many renders of {name} in outputs/: move some elsewhere")


def user_names(ctx: StageContext) -> dict[str, str]:
    return job_names(ctx.job)


def job_names(job: Job) -> dict[str, str]:
    """Stored file name -> the name the user gave it, for every upload of the job (and the
    downscaled copies prepare made), so messages never show the stored names."""
    p, r = job.params, job.result
    out = {}
    for rel in (p.get("target"), r.get("target")):
        if rel and p.get("target_name"):
            out[Path(rel).name] = p["target_name"]
    for stored in (p.get("sources") or [], r.get("sources") or []):
        for rel, name in zip(stored, p.get("source_names") or []):
            out[Path(rel).name] = name
    return out


def _extract(ctx: StageContext, stage: str, side: str, who: str) -> dict:
    from localswap.swap.pipeline import run_stage
    job = swap_job(ctx)
    try:
        summary = run_stage(job, stage, ctx.workspace, ctx.progress, names=user_names(ctx))
    except NoFacesError as exc:
        raise NoFacesError(f"{who}: {exc}") from exc
    ctx.progress.log(faces_line(who, summary, side))
    ctx.progress.info[f"faces_{side}"] = summary.faces_total
    folder = job.faceset_target if side == "target" else job.faceset_source
    return {f"faceset_{side}": ctx.rel(folder)}


def faces_line(who: str, summary, side: str) -> str:
    """What extraction kept and, frame by frame, why the rest was left out: the counts add
    up to the frames read ('kept 45 faces from 200 frames; 155 frames left out: blurry
    150, no face 5')."""
    line = (f"{who}: kept {plural(summary.faces_kept, 'face')} from "
            f"{plural(summary.frames_read, 'frame')}")
    if summary.frames_skipped:
        line += f" ({summary.frames_skipped} read on an earlier run)"
    if summary.frames_rejected:
        line += (f"; {plural(summary.frames_rejected, 'frame')} left out: "
                 f"{summary.rejected_text()}")
    if summary.other_faces:
        line += f"; {plural(summary.other_faces, 'other face')} beside the person's left out"
    if side == "target" and (summary.soft or summary.small):
        line += f"; {summary.kept_though()} faces kept too, as every frame is rendered"
    elif summary.soft:
        line += f"; {summary.soft} of the kept faces soft, as the clip has few sharper ones"
    return line + f" ({summary.faces_total} in the faceset)."


def extract_target(ctx: StageContext) -> dict:
    return _extract(ctx, "extract_target", "target", "Target video")


def extract_source(ctx: StageContext) -> dict:
    return _extract(ctx, "extract_source", "source", "Source")


def _iteration(model: Path) -> int:
    from localswap.train.manifest import read_manifest
    try:
        return int(read_manifest(model).get("iteration", 0) or 0)
    except UserError:
        return 0


def _name_people(ctx: StageContext, model: Path) -> None:
    """The model card names the people by the files the user gave (uploads are stored under
    generated names); an adapted model's source is its starting model's."""
    from localswap.models import identity
    p = ctx.job.params
    source = ", ".join(p.get("source_names") or [])
    if not source and p.get("adapt_from"):
        source = identity.names(ctx.workspace.path("models", check_name(p["adapt_from"]))
                                ).get("source", p["adapt_from"])
    if (model / "manifest.json").is_file():
        identity.remember_names(model, source, p.get("target_name") or "")


def train(ctx: StageContext) -> dict:
    """Train (or continue) the model on faceset A (target) and B (source). The trainer
    resumes from the model dir's checkpoint, so a resumed job continues where it stopped; the
    stop event ends it after a checkpoint (cancel, convert now, shutdown)."""
    from localswap.swap.pipeline import run_stage
    job = swap_job(ctx)
    run_stage(job, "train", ctx.workspace, ctx.progress, ctx.stop)
    ctx.progress.info["iteration"] = _iteration(job.model_dir)
    _name_people(ctx, job.model_dir)
    return {"model": ctx.rel(job.model_dir)}


def _rendered(ctx: StageContext, result, out: Path) -> dict:
    ctx.progress.log(f"Rendered {plural(result.frames, 'frame')}, "
                     f"{plural(result.faces, 'face')} swapped, {result.fps:.1f} frames/s.")
    for note in getattr(result, "notes", []):      # e.g. "person 2 is not in frames 300–420"
        ctx.progress.log(note[:1].upper() + note[1:] + ".")
    return {"output": ctx.rel(out)}


def convert(ctx: StageContext) -> dict:
    """Render the target with the model; the file name carries the model's iteration."""
    from localswap.convert.render import Cancelled
    from localswap.swap.pipeline import run_stage
    job = swap_job(ctx)
    job.out = output_path(ctx, _iteration(job.model_dir))
    media.VideoWriter.remove_leftovers(job.out)     # of a run killed half way
    try:
        result = run_stage(job, "convert", ctx.workspace, ctx.progress, ctx.stop)
    except Cancelled as exc:
        raise Stopped(ctx.progress.stop_reason()) from exc
    from localswap.jobs.judging import judge
    rendered, judged = _rendered(ctx, result, job.out), judge(ctx, job)
    try:                     # the model card shows the scores of the model's last render
        from localswap.models.card import record_evaluation
        record_evaluation(job.model_dir, judged.get("evaluation"),
                          ctx.job.params.get("target_name") or job.target)
    except (OSError, UserError) as exc:
        ctx.progress.log(f"The model card was not updated: {exc}")
    return {**rendered, **judged}


def quick_convert(ctx: StageContext) -> dict:
    """A quick swap: render the target with a library model, no training."""
    from localswap.convert.render import Cancelled, convert as run_convert
    from localswap.settings import ConvertSettings
    model = model_dir(ctx)
    out = output_path(ctx)
    media.VideoWriter.remove_leftovers(out)         # of a run killed half way
    if ctx.job.params.get("map"):                   # each chosen person their own model
        model = {int(n): ctx.workspace.path("models", m)
                 for n, m in ctx.job.params["map"].items()}
    knows = None
    if not ctx.job.params.get("map"):     # the model fits this person, or the log says not
        from localswap.swap.fit import check
        fit = check(model, target_path(ctx), ctx.workspace)
        if fit.verdict in ("same", "other"):
            ctx.progress.log(fit.sentence())
        knows = {"same": True, "other": False}.get(fit.verdict)
    try:
        result = run_convert(target_path(ctx), model, out,
                             _settings(ctx, ConvertSettings, "convert"), ctx.progress, ctx.stop,
                             knows_person=knows)
    except Cancelled as exc:
        raise Stopped(ctx.progress.stop_reason()) from exc
    return _rendered(ctx, result, out)


# A job's stages by name (the names its plan lists), each the function that runs it.
STAGE_FUNCTIONS = {"prepare": prepare, "extract_target": extract_target,
                   "extract_source": extract_source, "train": train, "convert": convert,
                   "quick_convert": quick_convert}


# -- failures in words ---------------------------------------------------------------------
def describe(exc: Exception, stage: str) -> str:
    """One sentence for an unexpected exception (the traceback goes to the server log)."""
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in str(exc).lower():
        return f"{TITLES[stage]} ran out of GPU memory."
    if is_disk_full(exc):
        return f"Disk full: {TITLES[stage].lower()} could not write its files."
    return f"{TITLES[stage]} stopped with an unexpected error ({error_summary(exc)})."


def resumable(exc: Exception) -> bool:
    """Whether running the job again can succeed: after a crash, a full disk (once freed) or
    running out of memory, yes; after bad input or settings (no face in the source, an
    unreadable video), no: those need a new swap."""
    if isinstance(exc, DiskFullError) or is_disk_full(exc):
        return True
    return not isinstance(exc, UserError)


def trained_iteration(workspace: Workspace, job: Job) -> int:
    """The iteration of the job's model on disk (0: none, or nothing trained yet)."""
    try:
        return _iteration(workspace.path("models", check_name(job.params.get("model") or "")))
    except UserError:
        return 0


def cancelled(job: Job, workspace: Workspace) -> str:
    """The message of a cancelled job. A swap's model stays in the library as far as it
    trained (so it can continue or render); one that trained nothing is removed."""
    if job.kind != "swap":
        return "Cancelled."
    try:
        folder = workspace.path("models", check_name(job.params.get("model") or ""))
    except UserError:
        return "Cancelled."
    iteration = _iteration(folder)
    if iteration:
        return (f"Cancelled at iteration {iteration:,}. The model so far is kept in Models "
                "(marked unfinished): continue training, render with it, or delete it there.")
    if (folder / "manifest.json").is_file():       # saved at iteration 0: nothing learned
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    return "Cancelled before any training: no model was kept."


def hint_for(exc: Exception, stage: str) -> str:
    """What to try next, for the usual causes."""
    text = str(exc).lower()
    if isinstance(exc, DiskFullError) or is_disk_full(exc):     # first: paths may say anything
        return "Free some disk space in the workspace, then resume the job."
    if isinstance(exc, NoFacesError) or "no usable face" in text or "not enough faces" in text:
        extra = ""
        if "too small" in text:       # the setting that lets small faces through, by name
            extra = (" Faces were left out as too small: in Advanced mode lower \"Smallest "
                     "source face (px)\" (command line: --min-face) and start again.")
        if "other person" in text:
            extra += (" Faces of another person were left out: pick the person in \"Who\" "
                      "after the upload (command line: --person N).")
        return ("Not enough faces: start a new swap with a video or photos where one face is "
                "clearly visible, well lit and large in the frame, or add more photos of the "
                "person." + extra)
    if isinstance(exc, TimeoutError) or "time" in text and "out" in text:
        return ("The stage ran out of time: set a smaller iteration count or time budget, or "
                "downscale long, large videos before starting.")
    if "out of memory" in text or "OutOfMemory" in type(exc).__name__:
        return "Choose a smaller resolution or batch size in Advanced mode, then resume."
    if "disk full" in text:
        return "Free some disk space in the workspace, then resume the job."
    if isinstance(exc, UserError):
        return "Check the files and settings named above, then start a new swap."
    return "Resume the job to try again; if it fails the same way, the server log has details."
