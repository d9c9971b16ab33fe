"""Frame preview: a frame slider over the target video, original | swapped side by side,
re-rendered whenever a render setting changes, and "Render with these settings".

Used in the job view (the job's target and model) and in Models -> Quick swap (the chosen
model and the uploaded video). The pixels come from localswap.convert.preview, the render's
own code path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from localswap import media
from localswap.convert.preview import FramePreview, settings_from
from localswap.errors import UserError
from localswap.settings import ConvertSettings
from localswap.ui.context import Context, human_error
from localswap.workspace import check_name

_PREVIEW = FramePreview()
KEYS = ("color", "blend", "mask", "erode", "blur", "smooth", "faces", "detail", "mouth",
        "occlusion", "glasses")


def previewer() -> FramePreview:
    return _PREVIEW


def job_source(ctx: Context, job_id) -> tuple[Path, Path, dict]:
    """(target video, model dir, the job's convert settings) of a job."""
    snap = ctx.snapshots.get(int(job_id)) if job_id not in (None, "") else None
    if snap is None:
        raise UserError(f"There is no job #{job_id}.")
    job = snap.job
    video = ctx.workspace.root / (job.result.get("target") or job.params["target"])
    model = ctx.workspace.path("models", check_name(job.params.get("model") or ""))
    if not (model / "manifest.json").is_file():
        raise UserError(f"Job #{job.id} has no model yet: the preview works from the first "
                        "checkpoint on.")
    if job.params.get("map"):           # each chosen person their own model, as rendered
        model = {int(n): ctx.workspace.path("models", check_name(m))
                 for n, m in job.params["map"].items()}
    return video, model, dict(job.params.get("convert") or {})


def model_source(ctx: Context, name: str, video: str | None) -> tuple[Path, Path, dict]:
    if not video:
        raise UserError("Add the video to preview.")
    model = ctx.workspace.path("models", check_name(name or ""))
    if not (model / "manifest.json").is_file():
        raise UserError(f"There is no model called {name!r} in the library.")
    return Path(video), model, {}


def preview(video: Path, model: Path, index: int, settings: ConvertSettings,
            show_mask: bool = False):
    return _PREVIEW(video, model, int(index or 0), settings, show_mask)


@dataclass
class PreviewPanel:
    frame: gr.Slider
    widgets: list
    original: gr.Image
    swapped: gr.Image
    render_button: gr.Button
    show_button: gr.Button
    show_mask: gr.Checkbox


def render(ctx: Context, prefix: str) -> PreviewPanel:
    d = ConvertSettings()
    with gr.Accordion("Try before you render: frame preview", open=False):
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id=f"{prefix}-frame")
        with gr.Row():
            color = gr.Dropdown(["rct", "lct", "hist", "none"], value=d.color,
                                label="Colour transfer", elem_id=f"{prefix}-color")
            blend = gr.Dropdown(["feather", "poisson"], value=d.blend, label="Blend",
                                elem_id=f"{prefix}-blend")
            mask = gr.Dropdown(["hull", "learned", "both"], value=d.mask, label="Mask",
                               elem_id=f"{prefix}-mask")
            faces = gr.Dropdown(["all", "largest"], value=d.faces, label="Faces",
                                elem_id=f"{prefix}-faces")
            occlusion = gr.Dropdown([("hands", "hands"),
                                     ("hands and objects (cup, microphone)", "auto"),
                                     ("off", "off")], value=d.occlusion,
                                    label="Keep in front of the face",
                                    elem_id=f"{prefix}-occlusion")
            glasses = gr.Dropdown(["keep", "source"], value=d.glasses,
                                  label="Target's glasses (keep: in front of the face)",
                                  elem_id=f"{prefix}-glasses")
            show_mask = gr.Checkbox(False, label="Show the mask (green: swapped; orange: a "
                                    "hand kept in front; magenta: an object kept in front)",
                                    elem_id=f"{prefix}-show-mask")
        with gr.Row():
            # Text boxes: an empty gr.Number shows (and sends) 0, and 0 is not "auto".
            erode = gr.Textbox("", label="Erode px (empty = auto)", placeholder="auto",
                               elem_id=f"{prefix}-erode")
            blur = gr.Textbox("", label="Blur px (empty = auto)", placeholder="auto",
                              elem_id=f"{prefix}-blur")
            smooth = gr.Slider(0, 1, value=d.smooth, step=0.05,
                               label="Smoothing (over frames: no effect on one frame)",
                               elem_id=f"{prefix}-smooth")
            detail = gr.Slider(0, 1.5, value=d.detail, step=0.1,
                               label="Source detail (lashes, nostrils, lip lines; 0 = off)",
                               elem_id=f"{prefix}-detail")
            mouth = gr.Slider(0, 1, value=d.mouth, step=0.1,
                              label="Target's open mouth (teeth, tongue; 0 = the model's)",
                              elem_id=f"{prefix}-mouth")
        with gr.Row():
            original = gr.Image(label="Original", type="numpy", interactive=False,
                                elem_id=f"{prefix}-original")
            swapped = gr.Image(label="Swapped", type="numpy", interactive=False,
                               elem_id=f"{prefix}-swapped")
        with gr.Row():
            show_button = gr.Button("Preview this frame", elem_id=f"{prefix}-show")
            render_button = gr.Button("Render with these settings", elem_id=f"{prefix}-render")
    return PreviewPanel(frame, [color, blend, mask, erode, blur, smooth, faces, detail, mouth,
                                occlusion, glasses], original, swapped, render_button,
                        show_button, show_mask)


def values(*widgets) -> dict:
    out = {k: (None if v in ("", None) else v) for k, v in zip(KEYS, widgets)}
    for k in ("erode", "blur"):
        if isinstance(out[k], str):
            try:
                out[k] = int(float(out[k])) if out[k].strip() else None
            except ValueError:
                raise UserError(f"{k}: a whole number of pixels, or empty for auto") from None
    return out


def listen(ctx: Context, p: PreviewPanel, source: list, resolve, submit, after=None):
    """Wire the panel: `source` components feed resolve(*source) -> (video, model, base);
    submit(*source, settings dict) queues the render and returns a job id."""
    def show(*args):
        src, (index, *widgets, show_mask) = args[:len(source)], args[len(source):]
        try:
            video, model, base = resolve(*src)
            s = settings_from(values(*widgets), base)
            frames = max(1, _PREVIEW.info(video).frames - 1) if media.is_video(video) else 0
            original, out = preview(video, model, min(int(index or 0), frames), s,
                                    bool(show_mask))
        except Exception as exc:
            gr.Warning(human_error(exc))
            return gr.skip(), gr.skip(), gr.skip()
        return gr.update(maximum=max(1, frames)), original, out

    inputs = [*source, p.frame, *p.widgets, p.show_mask]
    outputs = [p.frame, p.original, p.swapped]
    # .input: a person's change only. The job view resets the frame when it shows another job,
    # and that must not render a frame (or warn) for a job the user has not asked to preview.
    for w in [p.frame, *p.widgets, p.show_mask]:
        w.input(show, inputs, outputs, api_visibility="private", show_progress="hidden",
                trigger_mode="always_last", concurrency_id="frame-preview")
    p.show_button.click(show, inputs, outputs, api_visibility="private",
                        concurrency_id="frame-preview")

    def do_render(*args):
        src, widgets = args[:len(source)], args[len(source) + 1:-1]
        try:
            job_id = submit(*src, values(*widgets))
        except Exception as exc:
            gr.Warning(human_error(exc))
            return gr.skip()
        gr.Info(f"Queued as job #{job_id}: rendering with these settings.")
        return job_id
    event = p.render_button.click(do_render, inputs, gr.State(), api_visibility="private")
    if after is not None:
        event.then(*after)
    return show
