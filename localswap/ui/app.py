"""The Gradio app: four panels over one job runner. Only localswap/ui imports gradio.

Every tab and every share-link visitor reads the same job snapshots; the runner thread owns
the device. Telemetry is off; `launch_kwargs` holds the launch settings the security rules
depend on (files served only from the workspace's outputs; with a password, a login on every
route).
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from localswap import __version__  # noqa: E402
from localswap.jobs.runner import Runner  # noqa: E402
from localswap.jobs.snapshot import Snapshots  # noqa: E402
from localswap.jobs.uploads import GB, UploadSettings  # noqa: E402
from localswap.ui import (api, job_view, live_delay, live_panel, models_panel,  # noqa: E402
                          new_swap, system_panel, viewer)
from localswap.ui.context import Context  # noqa: E402
from localswap.ui.security import RequireLogin, RequireRole  # noqa: E402
from localswap.workspace import Workspace  # noqa: E402

CACHE_CLEANUP = (3600, 24 * 3600)   # every hour, drop Gradio cache files older than a day
# Gallery captions (a model's name, iterations, "unfinished") wrap inside their tile instead
# of ending in "…" at four fifths of it.
# The people's captions too ("Person 1 · 24 frames" read "Person 1 · …"). The preview grid's
# label and buttons sit in a row above it: floating, they covered its row label "A".
CSS = """
#model-gallery .caption-label, #timelapse .caption-label, #target-people .caption-label,
#source-people .caption-label, #quick-people .caption-label {
    white-space: normal; overflow-wrap: anywhere; max-width: calc(100% - 8px);
}
#live-in button { white-space: nowrap; }
#preview { display: flex; flex-direction: column; }
#preview > label[data-testid="block-label"] { position: static; align-self: flex-start; }
#target-people .grid-container, #source-people .grid-container { padding-top: 32px; }
#preview .image-container { min-height: 0; flex: 1 1 auto; overflow: visible; }
#preview .image-container > .icon-button-wrapper { top: -26px; }
"""


def build_app(workspace: Workspace, runner: Runner | None = None,
              uploads: UploadSettings | None = None, poll: float = 2.0) -> gr.Blocks:
    """The app over `runner` (one is created and started when not given)."""
    runner = runner or Runner(workspace).start()
    ctx = Context(workspace, runner, Snapshots(runner.store), uploads or UploadSettings(), poll)
    with gr.Blocks(title="localswap", analytics_enabled=False,
                   delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(f"# localswap <small>{__version__}</small>\n"
                    "Swap a face in a video on your own machine. Use only faces you have the "
                    "right to use; results are labelled as synthetic media.")
        role = gr.Markdown(visible=False, elem_id="viewer-banner")
        with gr.Tabs(selected="new") as tabs:
            with gr.Tab("New swap", id="new"):
                new_tab = gr.Column()
            with gr.Tab("Job", id="job"):
                view = job_view.render(ctx)
            with gr.Tab("Models", id="models") as models_tab:
                models = models_panel.render(ctx, tabs, view.job, view.seen)
            with gr.Tab("Live", id="live") as live_tab:
                live_model = live_panel.render(ctx)
            with gr.Tab("System", id="system") as system_tab:
                system = system_panel.render(ctx)
        with new_tab:
            new = new_swap.render(ctx, tabs, view.job, view.seen)
        api.register(ctx)
        api.register_preview(ctx)
        base = [*view.outputs(), new.model, tabs, role]
        locked = viewer.owner_controls(app)     # greyed out for a viewer
        extra = [c for c in locked if all(c is not b for b in base)]

        def on_load(request: gr.Request):
            # A tab opened (or reloaded) while a job runs lands on that job.
            busy = ctx.runner.current is not None
            watching = getattr(request, "username", None) in (ctx.viewers or ())
            values = [*job_view.refresh(ctx, None, {}), new.model_choices(ctx),
                      gr.update(selected="job") if busy else gr.skip(),
                      viewer.banner_update(watching)]
            return viewer.lock(base, values, locked, watching) + \
                [viewer.locked_update(watching) for _ in extra]
        app.load(on_load, None, [*base, *extra],
                 api_visibility="private")
        # Coming back to the tab keeps the model chosen before (the library may have changed).
        models_tab.select(lambda name: models_panel.library_view(ctx, name), models.pick,
                          models.outputs(), api_visibility="private")
        live_tab.select(lambda: gr.update(choices=ctx.workspace.names("models")), None,
                        live_model, api_visibility="private")
        system_tab.select(lambda: system_panel.report(ctx), None, system,
                          api_visibility="private")
    app.localswap = ctx   # tests and launch.py reach the runner through this
    return app


def launch_kwargs(workspace: Workspace, uploads: UploadSettings | None = None) -> dict:
    """launch() arguments every caller must use: what files may be served, and the size cap."""
    root = workspace.root
    uploads = uploads or UploadSettings()
    return {
        # Rendered videos and exports (outputs/) are the only files served from the
        # workspace; previews go to the page as pixels. Uploads, facesets, models (weights)
        # and the database are blocked even if a path to them were ever handed out.
        "allowed_paths": [str(root / "outputs")],
        "blocked_paths": [str(root / "uploads"), str(root / "facesets"), str(root / "models"),
                          *(str(root / f"localswap.db{end}") for end in ("", "-wal", "-shm"))],
        # Gradio's own cap stops an upload far over the limit while it arrives (gradio_client
        # refuses it before sending). It sits at twice the limit, so a file a little over
        # reaches check_media and gets its sentence rather than a byte count.
        "max_file_size": int(2 * uploads.max_gb * GB),
        # With a password, every route but the login page's needs the login (Gradio's own
        # check leaves some out), and a viewer only reads: see localswap/ui/security.py.
        "app_kwargs": {"middleware": [Middleware(RequireLogin), Middleware(RequireRole)]},
        "footer_links": ["api"],
        "css": CSS,
        "head": f"<script>{viewer.page_js()}{live_delay.page_js()}</script>",
        # the webcam's start button says what it does (Gradio's reads "Record")
        "i18n": gr.I18n(en=live_delay.LABELS),
    }
