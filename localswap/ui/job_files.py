"""A job's files on the job page: the before/after clip and the timelapse made on request
(in outputs/, to download), the preview grids shown as images, the rendered video's path."""
from __future__ import annotations

import functools
import os

import gradio as gr

from localswap import media
from localswap.ui import thumbs
from localswap.ui.context import Context, human_error


def output_path(ctx: Context, job) -> str | None:
    rel = job.result.get("output")
    if not rel:
        return None
    path = ctx.workspace.root / rel
    return str(path) if path.is_file() else None


def compare_clip(ctx: Context, job_id):
    """The job's original | swapped clip (moviepy, audio kept) for download, made once per
    render next to the result in outputs/."""
    from localswap.convert.compare import comparison_clip
    snap = ctx.snapshots.get(int(job_id)) if job_id not in (None, "") else None
    result = output_path(ctx, snap.job) if snap else None
    if not result:
        gr.Warning("This job has no rendered video yet.")
        return gr.skip()
    job = snap.job
    out = ctx.workspace.root / "outputs" / f"{os.path.splitext(os.path.basename(result))[0]}" \
        f"-before-after.mp4"
    try:
        if not out.is_file() or out.stat().st_mtime < os.stat(result).st_mtime:
            original = ctx.workspace.root / (job.result.get("target") or job.params["target"])
            comparison_clip(original, result, out)
    except Exception as exc:
        gr.Warning(human_error(exc))
        return gr.skip()
    return gr.update(value=str(out), visible=True)


def timelapse_video(ctx: Context, job_id):
    """The training previews of a job as a short video (moviepy), in outputs/ to download."""
    from localswap.convert.compare import timelapse_clip
    snap = ctx.snapshots.get(int(job_id)) if job_id not in (None, "") else None
    if snap is None:
        gr.Warning("Pick a job first.")
        return gr.skip()
    try:
        out = timelapse_clip([p["path"] for p in snap.previews],
                             ctx.workspace.root / "outputs" / f"timelapse-{snap.job.id}.mp4")
    except Exception as exc:
        gr.Warning(human_error(exc))
        return gr.skip()
    return gr.update(value=str(out), visible=True)


@functools.lru_cache(maxsize=64)
def preview_image(path: str | None):
    """A preview grid as pixels. Previews live in the model dir, which the app never serves
    as files (it holds the weights), so they go to the page as images. Preview files are
    written once and never changed, so decoding each once is enough."""
    if not path:
        return None
    try:
        return media.read_image(path)
    except Exception:  # pruned by the trainer or damaged: show nothing rather than fail
        return None


@functools.lru_cache(maxsize=256)
def timelapse_thumb(path: str):
    """A timelapse tile: two target faces over their swap at that iteration, square."""
    grid = preview_image(path)
    tile = thumbs.square(grid, "A", "A>B") if grid is not None else None
    return tile if tile is not None else thumbs.placeholder("preview\ngone")
