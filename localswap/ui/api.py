"""The API endpoints (gradio_client, scripts): the same calls the page makes, typed.

    swap(target, sources, consent, options) -> job id
    quick_swap(target, model, consent, options) -> job id
    fit(target, model) -> whether the model was trained on this person, and the adapt time
    adapt(target, model, consent, options) -> job id (a new model adapted to this person)
    job(job_id) -> status dict;  jobs() -> list;  result(job_id) -> the rendered mp4
    cancel / convert_now / continue_training / resume (job_id[, iterations]) -> bool
Failures come back as one sentence (gr.Error), never a traceback.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import gradio as gr
from gradio import FileData

from localswap.jobs.submit import submit_adapt, submit_quick_swap, submit_swap
from localswap.ui.context import Context, human_error
from localswap.workspace import inside


def _upload(f) -> tuple[str, str]:
    """(path, original name) of a file sent by a client; only Gradio's upload folder counts."""
    if f is None:
        return ("", "")
    d = f if isinstance(f, dict) else f.model_dump() if hasattr(f, "model_dump") else \
        {"path": str(f)}
    path = d.get("path") or ""
    from gradio.utils import get_upload_folder
    if not path or not inside(Path(get_upload_folder()), Path(path)):
        raise gr.Error("Upload the file with the request (handle_file); server paths are not "
                       "accepted.")
    return path, Path(d.get("orig_name") or path).name


def _guard(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(human_error(exc)) from None
    return wrapped


def job_dict(ctx: Context, job_id: int) -> dict:
    snap = ctx.snapshots.get(int(job_id))
    if snap is None:
        raise gr.Error(f"There is no job #{job_id}.")
    j = snap.job
    return {"id": j.id, "kind": j.kind, "title": j.title, "status": j.status, "stage": j.stage,
            "progress": j.progress, "message": j.message, "info": j.info,
            "timings": j.timings, "error": j.error, "hint": j.hint,
            "result": j.result, "losses": snap.losses[-50:], "preview": snap.preview,
            "previews": len(snap.previews), "log": snap.log[-20:], "plateau": snap.plateau}


def register(ctx: Context) -> None:
    r = ctx.runner

    @_guard
    def swap(target: FileData, sources: list[FileData], consent: bool,
             options: dict | None = None) -> int:
        """Queue a swap: extract both faces, train, render. Returns the job id."""
        return submit_swap(r, _upload(target), [_upload(s) for s in sources or []],
                           bool(consent), options, ctx.uploads)

    @_guard
    def quick_swap(target: FileData, model: str, consent: bool,
                   options: dict | None = None) -> int:
        """Queue a render of `target` with a model from the library. Returns the job id."""
        return submit_quick_swap(r, _upload(target), model, bool(consent), options,
                                 ctx.uploads)

    @_guard
    def fit(target: FileData, model: str) -> dict:
        """Before a quick swap: does `model` know the person in `target`? verdict "same",
        "other" (adapt it first: adapt_seconds), "any" or "unknown", and one sentence."""
        from localswap.swap.fit import check
        from localswap.workspace import check_name
        folder = ctx.workspace.path("models", check_name(model or ""))
        if not (folder / "manifest.json").is_file():
            raise gr.Error(f"There is no model called {model!r} in the library.")
        return check(folder, _upload(target)[0], ctx.workspace).to_dict()

    @_guard
    def adapt(target: FileData, model: str, consent: bool, options: dict | None = None) -> int:
        """Queue a new model adapted from `model` to the person in `target` (its source
        faces reused, the adapt budget of training), then the render. Returns the job id."""
        return submit_adapt(r, _upload(target), model, bool(consent), options, ctx.uploads)

    @_guard
    def job(job_id: int) -> dict:
        """Status, stage, progress, figures, recent losses and log of a job."""
        return job_dict(ctx, job_id)

    @_guard
    def jobs() -> list[dict]:
        """The 50 newest jobs, newest first."""
        return [{"id": j.id, "kind": j.kind, "title": j.title, "status": j.status,
                 "stage": j.stage} for j in ctx.store.list(limit=50)]

    @_guard
    def result(job_id: int) -> FileData:
        """The rendered video of a finished job."""
        j = ctx.store.get(int(job_id))
        rel = j.result.get("output") if j else None
        path = ctx.workspace.root / rel if rel else None
        if not path or not path.is_file() or not inside(ctx.workspace.root / "outputs", path):
            raise gr.Error(f"Job #{job_id} has no result yet.")
        return FileData(path=str(path), orig_name=os.path.basename(path))

    @_guard
    def cancel(job_id: int) -> bool:
        """Cancel a job; training keeps its last checkpoint."""
        return r.cancel(int(job_id))

    @_guard
    def convert_now(job_id: int) -> bool:
        """Stop training early and render with the model so far."""
        return r.convert_now(int(job_id))

    @_guard
    def continue_training(job_id: int, iterations: int = 1000) -> bool:
        """Train a finished swap for more iterations, then render again."""
        return r.continue_training(int(job_id), int(iterations))

    @_guard
    def resume(job_id: int) -> bool:
        """Queue an interrupted or failed job again."""
        return r.resume_job(int(job_id))

    for fn in (swap, quick_swap, fit, adapt, job, jobs, result, cancel, convert_now,
               continue_training, resume):
        # Status reads are cheap; let them run alongside everything else.
        gr.api(fn, api_name=fn.__name__,
               concurrency_limit=None if fn in (job, jobs, result) else 1)


def register_preview(ctx: Context) -> None:
    """preview_frame(job_or_model, frame, settings, video) -> the swapped frame (PNG)."""
    import tempfile

    from gradio.utils import get_upload_folder

    from localswap.convert.preview import settings_from
    from localswap.ui import preview_panel

    @_guard
    def preview_frame(job_or_model: str, frame: int = 0, settings: dict | None = None,
                      video: FileData | None = None, show_mask: bool = False) -> FileData:
        """One frame rendered with `settings` (ConvertSettings names: color, blend, mask,
        erode, blur, smooth, faces, occlusion...): a job id (its target and model, its
        settings as the base), or a library model name with an uploaded `video`. Returns the
        swapped frame, or with `show_mask` the frame with the blend mask drawn over it."""
        key = str(job_or_model).strip().lstrip("#")
        if key.isdigit() and video is None:
            src, model, base = preview_panel.job_source(ctx, int(key))
        else:
            src, model, base = preview_panel.model_source(ctx, key, _upload(video)[0])
        _, out = preview_panel.preview(src, model, int(frame or 0),
                                       settings_from(settings, base), bool(show_mask))
        folder = Path(get_upload_folder()) / "preview"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".png", dir=folder)
        os.close(fd)
        from localswap import media
        media.write_image(name, out)
        return FileData(path=name, orig_name=f"frame{int(frame or 0)}.png")

    gr.api(preview_frame, api_name="preview_frame", concurrency_limit=None)
