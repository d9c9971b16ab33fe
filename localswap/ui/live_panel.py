"""Live: a library model swaps the face in the browser's webcam stream (Gradio's streaming
webcam input); the frames per second and the time per frame show under it."""
from __future__ import annotations

import threading

import gradio as gr

from localswap.ui.context import Context, human_error

STREAM_EVERY = 0.05       # s between webcam frames the browser sends (at most 20 fps)
_LIVE: dict = {}
_LOCK = threading.Lock()


def live_swap(ctx: Context, name: str):
    """One LiveSwap per model, loaded on first use (the last two models stay loaded)."""
    from localswap.convert.live import LiveSwap
    from localswap.workspace import check_name
    model = ctx.workspace.path("models", check_name(name or ""))
    if not (model / "manifest.json").is_file():
        raise gr.Error(f"There is no model called {name!r} in the library.")
    key = str(model)
    with _LOCK:
        if key not in _LIVE:
            while len(_LIVE) >= 2:
                _LIVE.pop(next(iter(_LIVE))).close()
            _LIVE[key] = LiveSwap(model)
        return _LIVE[key]


def render(ctx: Context) -> gr.Dropdown:
    gr.Markdown("Pick a model, allow the webcam, and see yourself swapped live. Frames stay "
                "on this machine.")
    model = gr.Dropdown(label="Model", choices=[], value=None, elem_id="live-model")
    with gr.Row():
        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                       elem_id="live-in", webcam_options=gr.WebcamOptions(mirror=False))
        out = gr.Image(label="Swapped", type="numpy", interactive=False, elem_id="live-out")
    stats = gr.Markdown(elem_id="live-stats")

    def swap_frame(frame, name):
        if frame is None or not name:
            return gr.skip(), "Pick a model first." if not name else gr.skip()
        try:
            live = live_swap(ctx, name)
            result = live(frame)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(human_error(exc)) from None
        s = live.stats()
        return result, f"{s['fps']:.1f} frames/s · {s['ms']} ms per frame on the server"

    cam.stream(swap_frame, [cam, model], [out, stats], stream_every=STREAM_EVERY,
               time_limit=3600, concurrency_limit=1, show_progress="hidden",
               api_visibility="private")
    return model
