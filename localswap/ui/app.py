"""The Gradio app. Only localswap/ui imports gradio."""
from __future__ import annotations

import gradio as gr

from localswap import __version__
from localswap.workspace import Workspace


def build_app(workspace: Workspace) -> gr.Blocks:
    with gr.Blocks(title="localswap") as app:
        gr.Markdown(f"# localswap {__version__}\n"
                    "The web studio is being built. Until then the whole pipeline runs from "
                    "the command line: `python -m localswap --help`.\n\n"
                    f"Workspace: `{workspace.root}`")
    return app
