"""Models: the library (thumbnail, iterations, last loss), quick swap with a chosen model,
rename, delete (after a confirmation), import and export."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from localswap.errors import UserError
from localswap.jobs.submit import CONSENT, submit_adapt, submit_quick_swap
from localswap.ui import job_view, model_export, people, preview_panel, thumbs
from localswap.ui.context import Context, human_error
from localswap.ui.job_status import train_target
from localswap.ui.model_export import export_model  # noqa: F401  (tests call it here)
from localswap.ui.new_swap import VIDEO_TYPES, _pair
from localswap.workspace import check_name


@dataclass
class ModelsPanel:
    gallery: gr.Gallery
    pick: gr.Dropdown
    details: gr.Markdown
    shown: gr.State         # the model names in the gallery's order (a click gives an index)

    def outputs(self) -> list:
        return [self.gallery, self.pick, self.details, self.shown]


def render(ctx: Context, tabs: gr.Tabs, job_select: gr.Dropdown, job_seen: gr.State):
    gallery, shown, pick, refresh, details, notice = _library()
    (qs_video, qs_people, qs_note, qs_map, qs_look, qs_fit, qs_adapt, qs_consent, qs_start,
     qs_preview) = _quick_swap(ctx)
    (new_name, rename, exports, delete, confirm_row, confirm_text, confirm, keep) = _manage()
    with gr.Accordion("Import a model file", open=False):
        imp_file = gr.File(label="Model export (.zip) or DeepFaceLive model (.dfm)",
                           file_types=[".zip", ".dfm"])
        imp_name = gr.Textbox(label="Name in the library (optional)")
        imp = gr.Button("Import")

    panel = ModelsPanel(gallery, pick, details, shown)

    def load(selected=None):
        return library_view(ctx, selected)

    refresh.click(load, pick, panel.outputs(), api_visibility="private")
    pick.select(lambda name, names: (describe(ctx, name), gr.update(
        selected_index=names.index(name) if name in names else None)),
        [pick, shown], [details, gallery], api_visibility="private")

    def clicked(names, evt: gr.SelectData):
        name = names[evt.index] if isinstance(evt.index, int) and evt.index < len(names) \
            else None
        return gr.update(value=name), describe(ctx, name)
    gallery.select(clicked, shown, [pick, details], api_visibility="private")

    def guarded(fn, n_out: int):
        """First output is the notice; on failure it gets the sentence, the rest stay."""
        def handler(*args):
            try:
                return fn(*args)
            except Exception as exc:  # a sentence, never a traceback
                return (f"**{human_error(exc)}**", *[gr.skip()] * (n_out - 1))
        return handler

    qs_video.change(lambda v: people.mapping_update(v, ctx.workspace.names("models")),
                    qs_video, [qs_people, qs_note, *qs_map], api_visibility="private",
                    show_progress="minimal")

    _wire_fit(ctx, pick, qs_video, qs_look, qs_fit, qs_adapt, qs_consent,
              [notice, tabs, job_select, job_seen], guarded)

    def do_quick(name, video, consent, *mapped):
        cast = people.mapping_from(mapped)
        job_id = submit_quick_swap(ctx.runner, _pair(video), name or "", bool(consent),
                                   {"map": cast} if cast else None, ctx.uploads)
        # consent unticked again: a second click must be a second decision, not a double
        return (f"Job #{job_id} queued: it is on the Job tab. To start another quick swap, "
                "tick the box again.", gr.update(selected="job"),
                job_view.select_job(ctx, job_id), {}, gr.update(value=False))
    qs_start.click(guarded(do_quick, 5), [pick, qs_video, qs_consent, *qs_map],
                   [notice, tabs, job_select, job_seen, qs_consent], api_visibility="private")
    preview_panel.listen(
        ctx, qs_preview, [pick, qs_video, qs_consent],
        lambda name, video, consent: preview_panel.model_source(ctx, name, _pair(video)[0]),
        lambda name, video, consent, settings: submit_quick_swap(
            ctx.runner, _pair(video), name or "", bool(consent), {"convert": settings},
            ctx.uploads))

    def do_rename(old, new):
        rename_model(ctx, old, new)
        return (f"Renamed {old!r} to {new.strip()!r}.", *library_view(ctx, new.strip()))
    rename.click(guarded(do_rename, 5), [pick, new_name], [notice, *panel.outputs()],
                 api_visibility="private")

    model_export.wire(ctx, pick, *exports)

    def ask_delete(name):
        # an owner function: a viewer is refused here, before any confirmation shows
        return (gr.update(visible=bool(name)),
                f"Delete **{name}** and its checkpoints? This cannot be undone.")
    delete.click(ask_delete, pick, [confirm_row, confirm_text], api_visibility="private")
    keep.click(lambda: gr.update(visible=False), None, confirm_row, api_visibility="private")

    def do_delete(name):
        delete_model(ctx, name)
        return (f"Deleted {name!r}.", gr.update(visible=False), *library_view(ctx))
    confirm.click(guarded(do_delete, 6), pick, [notice, confirm_row, *panel.outputs()],
                  api_visibility="private")

    def do_import(file, name):
        from localswap.models.library import import_model
        if not file:
            raise UserError("Choose a model export file (.zip or .dfm) first.")
        info = import_model(ctx.workspace, _pair(file)[0], (name or "").strip() or None)
        return (f"Imported {info.name!r}.", *library_view(ctx, info.name))
    imp.click(guarded(do_import, 5), [imp_file, imp_name], [notice, *panel.outputs()],
              api_visibility="private")
    return panel


def _wire_fit(ctx: Context, pick, video, look_image, fit_text, adapt, consent, outputs,
              guarded) -> None:
    """Before any render: one frame swapped with the model and whether the model was trained
    on this person; for someone else, the adapt button (it queues the adaptation)."""
    def look(name, video):
        if not name or not video:
            return gr.update(value=None, visible=False), "", gr.update(visible=False)
        return quick_look(ctx, name, _pair(video)[0])
    for trigger in (video.change, pick.change):
        trigger(look, [pick, video], [look_image, fit_text, adapt], api_visibility="private",
                show_progress="minimal", trigger_mode="always_last")

    def do_adapt(name, video, consent):
        job_id = submit_adapt(ctx.runner, _pair(video), name or "", bool(consent), None,
                              ctx.uploads)
        return (f"Job #{job_id} queued: adapting {name} to this person.",
                gr.update(selected="job"), job_view.select_job(ctx, job_id), {},
                gr.update(value=False))
    adapt.click(guarded(do_adapt, 5), [pick, video, consent], [*outputs, consent],
                api_visibility="private")


def _library():
    """The library: model tiles, the model choice, its card and the notice line."""
    # Square pictures in square tiles of a fixed size (not stretched over the row), as tall
    # as its rows (Gradio's "auto" is at least 450 px, a fixed height cuts rows off) and
    # without the block label, which covers the first tile: each shows whole, caption too.
    gr.Markdown("**Library**: click a model to choose it.")
    gallery = gr.Gallery(show_label=False, columns=6, fit_columns=False,
                         height="fit-content", allow_preview=False, object_fit="contain",
                         buttons=[], elem_id="model-gallery")   # no icon over the last tile
    shown = gr.State([])
    with gr.Row():
        pick = gr.Dropdown(label="Model", choices=[], value=None, scale=3, elem_id="model-pick")
        refresh = gr.Button("Refresh", size="sm", scale=0)
    details = gr.Markdown(elem_id="model-details")
    notice = gr.Markdown(elem_id="model-notice")
    return gallery, shown, pick, refresh, details, notice


def _quick_swap(ctx: Context):
    """The Quick swap accordion: a video, who in it gets which model, consent, the button and
    the frame preview."""
    with gr.Accordion("Quick swap: put this model's face into a new video", open=True):
        qs_video = gr.File(label="Video", file_types=VIDEO_TYPES, elem_id="quick-video")
        qs_people = gr.Gallery(label="People in the video", columns=8, fit_columns=False,
                               height=200, allow_preview=False, object_fit="contain",
                               elem_id="quick-people", interactive=False)
        qs_note = gr.Markdown(elem_id="quick-people-note")
        with gr.Row():
            qs_map = [gr.Dropdown(label=f"Person {k + 1} gets", visible=False,
                                  choices=[people.NOT_SWAPPED], value=people.NOT_SWAPPED,
                                  elem_id=f"quick-person-{k + 1}")
                      for k in range(people.MAX_PEOPLE)]
        with gr.Row(equal_height=False):
            qs_look = gr.Image(label="One frame with this model", type="numpy",
                               interactive=False, visible=False, elem_id="quick-look",
                               scale=1)
            with gr.Column(scale=2):
                qs_fit = gr.Markdown(elem_id="quick-fit")
                qs_adapt = gr.Button("Adapt the model to this person", visible=False,
                                     elem_id="quick-adapt")
        qs_consent = gr.Checkbox(label=CONSENT, value=False, elem_id="quick-consent")
        qs_start = gr.Button("Quick swap", variant="primary", elem_id="quick-start")
        qs_preview = preview_panel.render(ctx, "quick-preview")
    return (qs_video, qs_people, qs_note, qs_map, qs_look, qs_fit, qs_adapt, qs_consent,
            qs_start, qs_preview)


def quick_look(ctx: Context, name: str, video: str) -> tuple:
    """(the frame image update, the fit sentence, the adapt button update) for `video`."""
    from localswap.convert.preview import settings_from
    from localswap.swap.fit import check
    model = ctx.workspace.path("models", check_name(name))
    if not (model / "manifest.json").is_file():
        return gr.update(visible=False), f"There is no model called {name!r}.", \
            gr.update(visible=False)
    image = gr.update(value=None, visible=False)
    try:        # frame 0, as the frame preview opens on: its "Preview this frame" is then cached
        _, swapped = preview_panel.preview(Path(video), model, 0, settings_from({}, {}))
        image = gr.update(value=swapped, visible=True)
    except Exception as exc:  # noqa: BLE001  (the look is a help; the sentence still shows)
        fit_note = f"\n\nNo frame to show: {human_error(exc)}"
    else:
        fit_note = ""
    fit = check(model, video, ctx.workspace)
    sentence = fit.sentence() if fit.verdict != "other" else (
        f"**{fit.sentence()}** Quick swap renders it as it is.")
    if fit.verdict == "other":
        from localswap.progress import duration_text
        button = gr.update(visible=True, value="Adapt the model to this person (about "
                           f"{duration_text(fit.adapt_seconds)})")
    else:
        button = gr.update(visible=False)
    return image, sentence + fit_note, button


def _manage():
    """The Rename, export, delete accordion (delete asks first)."""
    with gr.Accordion("Rename, export, delete", open=False):
        with gr.Row():
            new_name = gr.Textbox(label="New name", scale=3)
            rename = gr.Button("Rename", scale=1, elem_id="model-rename")
        exports = model_export.render()
        with gr.Row():
            delete = gr.Button("Delete…", variant="stop", elem_id="model-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm = gr.Button("Yes, delete it", variant="stop")
            keep = gr.Button("Keep it")
    return new_name, rename, exports, delete, confirm_row, confirm_text, confirm, keep


def models(ctx: Context) -> list:
    try:
        from localswap.models.library import list_models
    except ImportError:
        return []
    return list_models(ctx.workspace)


def thumbnail(path: str | Path) -> np.ndarray:
    """The model at a glance, square: two faces of its source (B, the face it gives) over the
    same target faces turned into B, from its newest preview grid; the model card's source
    face without previews; a grey tile without either."""
    from localswap import media
    from localswap.models.card import THUMB_FILE
    grid = thumbs.newest_preview(path)
    try:
        if grid is not None and (tile := thumbs.square(media.read_image(grid), "B", "A>B")) \
                is not None:
            return tile
        if (Path(path) / THUMB_FILE).is_file():
            return thumbs.fit(media.read_image(Path(path) / THUMB_FILE))
    except Exception:  # noqa: BLE001  (a damaged preview only costs the picture)
        pass
    return thumbs.placeholder("no preview")


def library_view(ctx: Context, selected: str | None = None) -> tuple:
    """Gallery, model choice, details and the gallery's names; `selected` stays chosen while
    it exists (else the newest model is)."""
    items = models(ctx)
    names = [m.name for m in items]
    if selected not in names:
        selected = names[0] if names else None
    partial = unfinished(ctx)
    pics = [(thumbnail(m.path), caption(m, partial.get(m.name))) for m in items]
    ring = names.index(selected) if selected in names else None     # the chosen tile
    return (gr.update(value=pics, selected_index=ring), gr.update(choices=names, value=selected),
            describe(ctx, selected), names)


def caption(m, stopped=None) -> str:
    """'name · 1,200 it', or 'name · 55 of 4,200 it · unfinished' for a model whose training
    was cancelled or failed."""
    if stopped is None:
        return f"{m.name} · {m.iterations:,} it"
    target = train_target(stopped)
    of = f" of {target:,}" if target else ""
    return f"{m.name} · {m.iterations:,}{of} it · unfinished"


def unfinished(ctx: Context) -> dict:
    """{model name: the job} for library models whose newest swap job stopped during training
    (cancelled or failed): kept, like DeepFaceLab and faceswap keep a model whose training
    stopped, so it can continue or render, but marked, sized and deletable."""
    from localswap.jobs.store import CANCELLED, FAILED
    newest: dict = {}
    for job in ctx.store.list(limit=500):       # newest first
        name = job.params.get("model")
        if job.kind == "swap" and name and name not in newest:
            newest[name] = job
    return {name: job for name, job in newest.items()
            if job.status in (CANCELLED, FAILED) and "train" not in job.timings}


def describe(ctx: Context, name: str | None) -> str:
    if not name:
        return "No models yet: a finished swap leaves its model here for quick swaps."
    m = next((m for m in models(ctx) if m.name == name), None)
    if m is None:
        return f"{name}: not a readable model."
    from localswap.models.card import card_markdown, model_card
    note = unfinished_note(m, unfinished(ctx).get(name))
    try:
        return (note + card_markdown(model_card(m.path))
                + f"\n\n{m.size_mb:.1f} MB, saved {m.date}.")
    except (UserError, OSError):
        pass
    loss = f"{m.last_loss:.4f}" if m.last_loss is not None else "—"
    return note + (f"**{m.name}**: {m.arch}, {m.resolution} px, {m.face_type.replace('_', ' ')}; "
            f"{m.iterations} iterations, last loss {loss}; source {m.source or '?'}, target "
            f"{m.target or '?'}; {m.size_mb:.1f} MB, saved {m.date}.")


def unfinished_note(m, job) -> str:
    """What an unfinished model is and what can be done with it (empty for a finished one)."""
    if job is None:
        return ""
    target = train_target(job)
    how = "was cancelled" if job.status == "cancelled" else "failed"
    of = f" of {target:,}" if target else ""
    return (f"**Unfinished**: its training {how} at iteration {m.iterations:,}{of} (job "
            f"#{job.id}). It is kept so that nothing trained is lost: in that job, *Continue "
            "training* carries on from here and *Render with what is trained so far* uses it "
            f"as it is. If you don't need it, delete it below ({m.size_mb:.0f} MB).\n\n")


def _in_use(ctx: Context, name: str) -> bool:
    return any(j.params.get("model") == name for j in ctx.store.list(
        limit=500, statuses=("queued", "running", "interrupted")))


def rename_model(ctx: Context, old: str, new: str) -> None:
    from localswap.models import library
    new = check_name((new or "").strip())
    if _in_use(ctx, check_name(old or "")):
        raise UserError(f"{old!r} is used by a job that has not finished; wait or cancel it.")
    if hasattr(library, "rename_model"):
        library.rename_model(ctx.workspace, old, new)
        return
    src, dst = ctx.workspace.path("models", old), ctx.workspace.path("models", new)
    if not src.is_dir():
        raise UserError(f"There is no model called {old!r}.")
    if dst.exists():
        raise UserError(f"A model called {new!r} already exists.")
    src.rename(dst)


def delete_model(ctx: Context, name: str) -> None:
    from localswap.models import library
    if _in_use(ctx, check_name(name or "")):
        raise UserError(f"{name!r} is used by a job that has not finished; wait or cancel it.")
    if hasattr(library, "delete_model"):
        library.delete_model(ctx.workspace, name)
        return
    path = ctx.workspace.path("models", name)
    if not path.is_dir():
        raise UserError(f"There is no model called {name!r}.")
    shutil.rmtree(path)
