"""Job view: one job's stage, progress, loss plot, previews, log, controls and result.

Every tab polls the shared snapshot with a gr.Timer; `seen` (per tab) remembers what the tab
already shows, so unchanged plots, images and videos are not sent (or re-hashed by Gradio)
again on every tick.
"""
from __future__ import annotations

import functools
import html
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from localswap.jobs.runner import resumable
from localswap.jobs.submit import submit_render
from localswap.jobs.store import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING
from localswap.ui import preview_panel
from localswap.ui.job_files import (compare_clip, output_path, preview_image,
                                    timelapse_thumb, timelapse_video)
from localswap.ui.job_status import STATUS_WORDS, status_text
from localswap.ui.context import Context, human_error

PLOT_SECONDS = 10.0
PLOT_YOUNG = 100        # a curve this short is redrawn on every change (see refresh)
LOSS_HELP = (
    "**What the loss means.** Loss is how far the model's rebuilt faces are from the real ones "
    "(0 = identical). A is the target's face, B the source's. It falls quickly at first, then "
    "slowly; the previews sharpen as it falls. When the curve has flattened, more training "
    "changes little: press *Convert now*. You can always *Continue training* later.")


@dataclass
class JobView:
    job: gr.Dropdown
    status: gr.Markdown
    error: gr.Markdown
    plot: gr.LinePlot
    plateau: gr.Markdown
    preview: gr.Image
    gallery: gr.Gallery
    log: gr.Textbox
    cancel: gr.Button
    convert_now: gr.Button
    more: gr.Number
    continue_: gr.Button
    render_now: gr.Button
    resume: gr.Button
    video: gr.Video
    download: gr.DownloadButton
    quality: gr.Markdown
    seen: gr.State
    timer: gr.Timer
    # what belongs to one job only: hidden or emptied when another job is shown
    timelapse: gr.Button
    timelapse_file: gr.DownloadButton
    compare: gr.Button
    compare_file: gr.DownloadButton
    frame: gr.Slider
    original: gr.Image
    swapped: gr.Image

    def outputs(self) -> list:
        return [self.job, self.status, self.error, self.plot, self.plateau, self.preview,
                self.gallery, self.log, self.cancel, self.convert_now, self.continue_,
                self.more, self.render_now, self.resume, self.video, self.download,
                self.quality, self.timelapse, self.timelapse_file, self.compare,
                self.compare_file, self.frame, self.original, self.swapped, self.seen]


def render(ctx: Context) -> JobView:
    with gr.Row():
        job = gr.Dropdown(label="Job", choices=[], value=None, scale=4, interactive=True,
                          allow_custom_value=True,
                          elem_id="job-select")
    status = gr.Markdown("No job yet: start one in **New swap**.", elem_id="job-status")
    error = gr.Markdown(visible=False, elem_id="job-error")
    with gr.Row():
        cancel = gr.Button("Cancel", variant="stop", visible=False, elem_id="job-cancel")
        convert_now = gr.Button("Convert now", visible=False, elem_id="job-convert-now")
        more = gr.Number(value=1000, label="More iterations", precision=0, minimum=1,
                         visible=False, scale=1)
        continue_ = gr.Button("Continue training", visible=False, elem_id="job-continue")
        render_now = gr.Button("Render with what is trained so far", visible=False,
                               elem_id="job-render-now")
        resume = gr.Button("Resume", visible=False, elem_id="job-resume")
    with gr.Row():
        with gr.Column(scale=3):
            # Starts without a value: a plot whose first value is empty never draws its lines
            # afterwards (Gradio 6.31), so an empty curve is sent as None too.
            plot = gr.LinePlot(None, x="iteration", y="loss", color="face",
                               title="Loss (lower is better)", height=280,
                               elem_id="loss-plot")
            plateau = gr.Markdown(elem_id="plateau")
        with gr.Column(scale=2):
            preview = gr.Image(label="Latest preview", type="numpy", interactive=False,
                               elem_id="preview", height=280)
    # Square thumbnails (target faces over their swap) in fixed-size tiles, shown whole (see
    # the Models panel's library); a click shows that iteration's full preview grid above.
    gr.Markdown("**Timelapse**: click one to see its whole preview grid above.")
    gallery = gr.Gallery(show_label=False, columns=8, fit_columns=False,
                         height="fit-content", allow_preview=False, object_fit="contain",
                         buttons=[], elem_id="timelapse")   # no icon over the last tile
    with gr.Row():
        timelapse = gr.Button("Make a timelapse video", size="sm", elem_id="job-timelapse",
                              visible=False)
        timelapse_file = gr.DownloadButton("Download the timelapse", visible=False,
                                           elem_id="job-timelapse-download")
    with gr.Accordion("What is the loss?", open=False):
        gr.Markdown(LOSS_HELP)
    with gr.Row():
        video = gr.Video(label="Result", interactive=False, elem_id="result-video")
        with gr.Column():
            download = gr.DownloadButton("Download the result", visible=False,
                                         elem_id="download")
            quality = gr.Markdown(elem_id="job-quality")
            compare = gr.Button("Make a before/after clip", size="sm", elem_id="job-compare",
                                visible=False)
            compare_file = gr.DownloadButton("Download the before/after clip", visible=False,
                                             elem_id="job-compare-download")
    frame_preview = preview_panel.render(ctx, "job-preview")
    log = gr.Textbox(label="Log", lines=8, max_lines=8, interactive=False, autoscroll=True,
                     elem_id="job-log")
    seen = gr.State({})
    timer = gr.Timer(ctx.poll)
    view = JobView(job, status, error, plot, plateau, preview, gallery, log, cancel,
                   convert_now, more, continue_, render_now, resume, video, download, quality,
                   seen, timer, timelapse, timelapse_file, compare, compare_file,
                   frame_preview.frame, frame_preview.original, frame_preview.swapped)
    _listen(ctx, view)
    compare.click(functools.partial(compare_clip, ctx), [job], compare_file,
                  api_visibility="private")
    timelapse.click(functools.partial(timelapse_video, ctx), [job], timelapse_file,
                    api_visibility="private")
    preview_panel.listen(ctx, frame_preview, [job],
                         lambda j: preview_panel.job_source(ctx, j),
                         lambda j, settings: submit_render(ctx.runner, int(j), settings))
    return view


def _listen(ctx: Context, v: JobView) -> None:
    def tick(job_id, seen):
        return refresh(ctx, job_id, seen)

    # Polls are read-only and cheap: let any number run at once.
    # No progress overlay on a poll: its animation alone kept a tab busy drawing.
    v.timer.tick(tick, [v.job, v.seen], v.outputs(), concurrency_limit=None,
                 show_progress="hidden", api_visibility="private")
    v.job.select(lambda j, s: refresh(ctx, j, {}), [v.job, v.seen], v.outputs(),
                 concurrency_limit=None, api_visibility="private")

    def act(fn, ok: str, refused: str):
        def handler(job_id, *args):
            if job_id is None:
                gr.Warning("Pick a job first.")
                return {}
            try:
                done = fn(int(job_id), *args)
            except Exception as exc:  # shown as a sentence, never a traceback
                gr.Warning(human_error(exc))
                return {}
            (gr.Info if done else gr.Warning)(ok if done else refused)
            return {}
        return handler

    r = ctx.runner
    v.cancel.click(act(r.cancel, "Cancelling: training stops after saving a checkpoint.",
                       "This job has already finished."), [v.job], v.seen,
                   api_visibility="private")
    v.convert_now.click(act(r.convert_now, "Training stops after the next checkpoint; "
                            "the video is rendered with the model so far.",
                            "Convert now only works while the job is training."),
                        [v.job], v.seen, api_visibility="private")
    v.continue_.click(act(lambda j, n: r.continue_training(j, int(n or 1000)),
                          "Queued: training continues, then the video is rendered again.",
                          "Only a finished or cancelled swap can continue training."),
                      [v.job, v.more], v.seen, api_visibility="private")
    v.render_now.click(act(r.render_now, "Queued: the video is rendered with the model as "
                           "far as it trained.", "There is no trained model to render with yet."),
                       [v.job], v.seen, api_visibility="private")
    v.resume.click(act(r.resume_job, "Queued again: it resumes where it stopped.",
                       "Only an interrupted job, or one that failed for a reason running it "
                       "again can fix, can be resumed."),
                   [v.job], v.seen, api_visibility="private")

    def show_grid(job_id, evt: gr.SelectData):
        """A timelapse click: that iteration's whole preview grid in the preview image."""
        snap = ctx.snapshots.get(int(job_id)) if job_id not in (None, "") else None
        if snap is None or not isinstance(evt.index, int) or evt.index >= len(snap.previews):
            return gr.skip()
        p = snap.previews[evt.index]
        return gr.update(value=preview_image(p["path"]),
                         label=f"Preview at iteration {p.get('iteration', '?')}")
    v.gallery.select(show_grid, [v.job], v.preview, api_visibility="private")


def default_job(ctx: Context) -> int | None:
    """What a freshly opened tab shows: the running job, else the newest one."""
    if ctx.runner.current is not None:
        return ctx.runner.current
    jobs = ctx.store.list(limit=1)
    return jobs[0].id if jobs else None


def select_job(ctx: Context, job_id: int):
    """The job dropdown showing `job_id` (choices refreshed, or Gradio refuses the value)."""
    return gr.update(choices=job_choices(ctx), value=job_id)


def job_choices(ctx: Context) -> list[tuple[str, int]]:
    return [(f"#{j.id} {j.title or j.kind} — {STATUS_WORDS.get(j.status, j.status)}", j.id)
            for j in ctx.store.list(limit=50)]


def refresh(ctx: Context, job_id, seen: dict) -> list:
    """The values for JobView.outputs(); gr.skip() for everything this tab already shows."""
    seen = dict(seen or {})
    if job_id in (None, ""):
        job_id = default_job(ctx)
    choices = job_choices(ctx)
    out: dict[str, object] = {}
    _put(out, seen, "job", (tuple(choices), job_id),
         lambda: gr.update(choices=choices, value=job_id))
    snap = ctx.snapshots.get(int(job_id)) if job_id is not None else None
    if snap is None:
        return _ordered(out, seen)
    job = snap.job
    _put(out, seen, "status", status_text(snap), lambda: status_text(snap))
    _put(out, seen, "error", (job.status, job.error, job.hint), lambda: gr.update(
        visible=job.status == FAILED and bool(job.error),
        value=f"**{html.escape(job.error)}**\n\nWhat to try: {html.escape(job.hint)}"))
    trains = job.kind == "swap"       # a quick swap has no loss, previews or timelapse
    # While a job runs its curve is redrawn at most every PLOT_SECONDS: a redraw costs a tab
    # far more than the figures in the status line, which follow every poll.
    # A young curve is cheap to draw and falls fastest: held for 10 s, the first chart read
    # 0.75-0.85 while the loss shown was 0.44.
    now = time.monotonic()
    if not (job.status == RUNNING and seen.get("plot.job") == job.id
            and len(snap.losses) > PLOT_YOUNG
            and now - seen.get("plot.at", 0.0) < PLOT_SECONDS):
        before = seen.get("plot")
        _put_shown(out, seen, "plot", trains, (job.id, job.status, len(snap.losses),
                                               snap.losses[-1]["iteration"]
                                               if snap.losses else 0),
                   lambda: _losses_frame(snap.losses) if snap.losses else None)
        if seen.get("plot") != before:
            seen["plot.job"], seen["plot.at"] = job.id, now
    _put(out, seen, "plateau", snap.plateau if snap.losses else "",
         lambda: snap.plateau if snap.losses else "")
    _put_shown(out, seen, "preview", trains, snap.preview,
               lambda: gr.update(value=preview_image(snap.preview), label="Latest preview"))
    _put_shown(out, seen, "gallery", trains, tuple(p["path"] for p in snap.previews),
               lambda: [(timelapse_thumb(p["path"]), f"iteration {p.get('iteration', '?')}")
                        for p in snap.previews])
    _put(out, seen, "log", len(snap.log) and snap.log[-1], lambda: "\n".join(snap.log))
    running_train = job.status == RUNNING and job.stage == "train"
    can_continue = job.kind == "swap" and job.status in (DONE, CANCELLED) and bool(
        job.info.get("iteration"))
    # A cancelled swap with a model: render it as it is, or train on (DeepFaceLab's habit
    # too: stopping training keeps the model).
    can_render = can_continue and job.status == CANCELLED
    can_resume = job.status == INTERRUPTED or (job.status == FAILED and resumable(job))
    _put(out, seen, "cancel", job.status in (QUEUED, RUNNING, INTERRUPTED),
         lambda: gr.update(visible=job.status in (QUEUED, RUNNING, INTERRUPTED)))
    _put(out, seen, "convert_now", running_train, lambda: gr.update(visible=running_train))
    _put(out, seen, "continue_", can_continue, lambda: gr.update(visible=can_continue))
    _put(out, seen, "more", can_continue, lambda: gr.update(visible=can_continue))
    _put(out, seen, "render_now", can_render, lambda: gr.update(visible=can_render))
    _put(out, seen, "resume", can_resume, lambda: gr.update(visible=can_resume))
    result = output_path(ctx, job)
    _put(out, seen, "video", result, lambda: result)
    _put(out, seen, "download", result, lambda: gr.update(value=result, visible=bool(result)))
    evaluation = job.result.get("evaluation") if result else None
    _put(out, seen, "quality", evaluation, lambda: quality_text(evaluation))
    _one_job_only(out, seen, job, bool(trains and snap.previews), bool(result))
    return _ordered(out, seen)


def _one_job_only(out: dict, seen: dict, job, has_previews: bool, has_result: bool) -> None:
    """What another job made never shows here: the timelapse and before/after downloads go
    when the job shown changes, their buttons show only where there is something to make
    them from, and the frame preview starts again at frame 0 with nothing shown."""
    _put(out, seen, "timelapse", has_previews, lambda: gr.update(visible=has_previews))
    _put(out, seen, "compare", has_result, lambda: gr.update(visible=has_result))
    for key in ("timelapse_file", "compare_file"):
        _put(out, seen, key, job.id, lambda: gr.update(value=None, visible=False))
    _put(out, seen, "frame", job.id, lambda: gr.update(value=0, maximum=1))
    for key in ("original", "swapped"):
        _put(out, seen, key, job.id, lambda: None)


ORDER = ("job", "status", "error", "plot", "plateau", "preview", "gallery", "log", "cancel",
         "convert_now", "continue_", "more", "render_now", "resume", "video", "download",
         "quality", "timelapse", "timelapse_file", "compare", "compare_file", "frame",
         "original", "swapped")


def _put(out: dict, seen: dict, key: str, signature, make) -> None:
    """Send `make()` for `key` only if its signature differs from what the tab has."""
    sig = repr(signature)
    if seen.get(key) != sig:
        seen[key] = sig
        out[key] = make()


def _put_shown(out: dict, seen: dict, key: str, visible: bool, signature, make) -> None:
    """_put for a component that can be hidden. While its visibility stays the same it gets
    a plain value: a gr.update makes Gradio rebuild the component's config (with a JSON
    schema) on every poll, which was most of the server's cost per polling tab."""
    shown = repr(bool(visible))
    if seen.get(key + ".visible") != shown:
        seen[key + ".visible"] = shown
        seen[key] = repr(signature)
        value = make()                  # a value, or an update of value and label
        out[key] = ({**value, "visible": bool(visible)} if isinstance(value, dict)
                    else gr.update(value=value, visible=bool(visible)))
    else:
        _put(out, seen, key, signature, make)


def _ordered(out: dict, seen: dict) -> list:
    return [out.get(k, gr.skip()) for k in ORDER] + [seen]


def quality_text(evaluation: dict | None) -> str:
    """The judge's sentence and table (localswap.evaluate) for a finished render."""
    if not evaluation:
        return ""
    from localswap.evaluate.report import Report
    report = Report.from_dict(evaluation)
    lines = [f"**Quality check:** {html.escape(report.sentence())}", "",
             "| measure | value | aim |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {html.escape(aim)} |" for name, value, aim in report.rows()]
    return "\n".join(lines)


def _losses_frame(points: list[dict]) -> pd.DataFrame:
    """Long format for the plot, typed (an untyped frame would make the axes categorical)."""
    rows = [(p["iteration"], p["loss_a"], "A (target)") for p in points] + \
           [(p["iteration"], p["loss_b"], "B (source)") for p in points]
    return pd.DataFrame({"iteration": pd.Series([r[0] for r in rows], dtype="int64"),
                         "loss": pd.Series([r[1] for r in rows], dtype="float64"),
                         "face": pd.Series([r[2] for r in rows], dtype="str")})
