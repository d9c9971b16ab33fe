"""Models: export the chosen model as one file (whole, or for rendering only: without its
training state, 60% smaller) or as a DeepFaceLive .dfm. What an export says and the file it
offers sit next to its buttons; the download always belongs to the model and export asked
for last: a new request, a refusal or another model takes the old one away."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from localswap.ui.context import Context, human_error
from localswap.workspace import check_name

KINDS = {   # button label -> (file suffix, for rendering, what the notice calls it)
    "Export as one file": (".zip", False, "as one file (it can continue training after "
                                          "an import)"),
    "Export for rendering (smaller)": (".zip", True, "for rendering: without its training "
                                                     "state, so it renders and quick-swaps "
                                                     "but cannot continue training where it "
                                                     "stopped"),
    "Export as DeepFaceLive .dfm": (".dfm", False, "as a DeepFaceLive model"),
}


def render():
    """The export row: three buttons, the sentence on the last export and its download."""
    with gr.Row():
        buttons = [gr.Button(label, elem_id=f"export-{k}") for k, label in
                   enumerate(KINDS)]
    with gr.Row(equal_height=True):
        notice = gr.Markdown(elem_id="export-notice")
        download = gr.DownloadButton("Download the export", visible=False,
                                     elem_id="export-download", scale=0)
    return buttons, notice, download


def wire(ctx: Context, pick: gr.Dropdown, buttons: list, notice, download) -> None:
    for button, label in zip(buttons, KINDS):
        button.click(_exporter(ctx, label), pick, [notice, download], api_visibility="private")
    # another model chosen: the last export was of the one before
    pick.change(_forget, None, [notice, download], api_visibility="private")


def _forget():
    return "", gr.update(value=None, visible=False)


def _exporter(ctx: Context, label: str):
    suffix, small, what = KINDS[label]

    def export(name):
        # the old download goes at once, before the (seconds long) export
        yield "Exporting…", gr.update(value=None, visible=False)
        try:
            path = export_model(ctx, name, suffix, small)
        except Exception as exc:  # a sentence next to the button, never a traceback
            yield f"**{in_app(exc)}**", gr.update(value=None, visible=False)
            return
        size = path.stat().st_size / 2 ** 20
        yield (f"Exported {name!r} {what}: {path.name}, {size:.1f} MB.",
               gr.update(value=str(path), visible=True))
    return export


def in_app(exc: Exception) -> str:
    """The refusal as the app says it: a guided model's names the setting on the page."""
    from localswap.models.dfm_export import GuidedModel
    return exc.in_app if isinstance(exc, GuidedModel) else human_error(exc)


def export_model(ctx: Context, name: str, suffix: str = ".zip",
                 for_rendering: bool = False) -> Path:
    """Export into outputs/exports/ (the only folders the app serves files from)."""
    from localswap.errors import UserError
    from localswap.models.library import export_model as export
    if not name:
        raise UserError("Choose a model in the library first.")
    check_name(name)
    stem = name.replace(" ", "_") + ("-for-rendering" if for_rendering else "")
    out = ctx.workspace.root / "outputs" / "exports" / f"{stem}{suffix}"
    return export(ctx.workspace, name, out, for_rendering=for_rendering)
