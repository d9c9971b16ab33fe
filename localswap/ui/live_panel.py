"""Live: a library model swaps the face in the browser's webcam stream (Gradio's streaming
webcam input, started by "Start swapping"); under it, the delay from the camera to the
screen measured in the browser (live_delay), the frames per second and the server's time
per frame.

The first frame with a face is checked against the person the model was trained on
(localswap.swap.fit). When it is someone else, the page says so and offers to adapt the
model: with consent it records a few seconds of the webcam, queues an adaptation job on
them, and once that job is done swaps with the adapted model."""
from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from localswap.ui import live_delay
from localswap.ui.context import Context, human_error

PANE_HEIGHT = 420         # px: the webcam and the swapped frame at the same size
STREAM_EVERY = 0.05       # s between webcam frames the browser sends (at most 20 fps)
RECORD_SECONDS = 6.0      # of webcam to adapt a model on (~100 faces at the stream's rate)
ADAPT_OPTIONS: dict | None = None     # the adaptation's settings (None: Basic's adapt budget)
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


@dataclass
class Session:
    """One browser's Live state: the fit found per model, a recording, the adapt job."""
    fits: dict = field(default_factory=dict)        # model name -> Fit
    adapted: dict = field(default_factory=dict)     # model name -> the adapted model's name
    record_until: float = 0.0
    writer: object = None                           # media.VideoWriter while recording
    folder: object = None                           # its temp folder
    pending: tuple | None = None                    # (job id, model name, adapted name)
    note: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


_SESSIONS: dict[str, Session] = {}


def session(request: gr.Request | None) -> Session:
    key = getattr(request, "session_hash", None) or "-"
    with _LOCK:
        if key not in _SESSIONS:
            while len(_SESSIONS) >= 32:       # the oldest browsers' state goes
                _SESSIONS.pop(next(iter(_SESSIONS)))
            _SESSIONS[key] = Session()
        return _SESSIONS[key]


def _fit_of(ctx: Context, sess: Session, name: str, frame):
    """The model's fit to the person in `frame` (checked once per model and session)."""
    from localswap.swap.fit import check_images
    if name not in sess.fits:
        fit = check_images(ctx.workspace.path("models", name), [frame[..., :3]])
        if fit.verdict == "unknown" and "no face" in fit.why:
            return None                             # look again at the next frame
        sess.fits[name] = fit
    return sess.fits[name]


def _record(ctx: Context, sess: Session, frame, name: str) -> None:
    """Write the frame to the recording; at its end, queue the adaptation on it."""
    import numpy as np

    from localswap import media
    from localswap.jobs.submit import submit_adapt
    frame = np.ascontiguousarray(frame[..., :3])
    if sess.writer is None:
        sess.folder = tempfile.TemporaryDirectory(prefix="localswap-live-")
        h, w = frame.shape[:2]
        sess.writer = media.VideoWriter(Path(sess.folder.name) / "webcam.mp4", w - w % 2,
                                        h - h % 2, 1 / STREAM_EVERY)
    h, w = sess.writer.size[1], sess.writer.size[0]
    sess.writer.write(frame[:h, :w])
    if time.monotonic() < sess.record_until:
        return
    sess.record_until = 0.0
    writer, sess.writer = sess.writer, None
    try:
        writer.close()
        clip = f"webcam-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
        job_id = submit_adapt(ctx.runner, (str(writer.path), clip), name, True, ADAPT_OPTIONS,
                              ctx.uploads)
        adapted = ctx.store.get(job_id).params["model"]
        sess.pending = (job_id, name, adapted)
        sess.note = (f"Recorded. Job #{job_id} is adapting {name} to you (Jobs tab); "
                     "Live switches to it when it is done.")
    except Exception as exc:  # noqa: BLE001  (the stream goes on; the note says why)
        sess.note = f"The recording could not be used: {human_error(exc)}"
    finally:
        sess.folder.cleanup()
        sess.folder = None


def _follow(ctx: Context, sess: Session) -> None:
    """Once the adaptation job is done, its model replaces the one it started from."""
    from localswap.jobs.store import DONE, FINISHED
    if sess.pending is None:
        return
    job_id, name, adapted = sess.pending
    job = ctx.store.get(job_id)
    if job is None or job.status not in FINISHED:
        return
    sess.pending = None
    if job.status == DONE:
        sess.adapted[name] = adapted
        sess.note = f"Swapping with {adapted}, adapted to you."
    else:
        sess.note = f"Job #{job_id} did not finish ({job.status}); still swapping with {name}."


def status_line(sess: Session, name: str, fit) -> str:
    parts = []
    if fit is not None and fit.verdict == "other" and name not in sess.adapted \
            and sess.pending is None and not sess.record_until:
        parts.append(f"**{fit.sentence()}** Tick the box and press *Adapt to me* to record "
                     f"{RECORD_SECONDS:g} s of the webcam for it.")
    if sess.record_until:
        parts.append(f"Recording: {max(0.0, sess.record_until - time.monotonic()):.0f} s "
                     "left. Look at the camera, talk, turn your head a little.")
    if sess.note:
        parts.append(sess.note)
    return "\n\n".join(parts)


def render(ctx: Context) -> gr.Dropdown:
    from localswap.jobs.submit import CONSENT
    gr.Markdown("Pick a model, allow the webcam, and see yourself swapped live. Frames stay "
                "on this machine.")
    model = gr.Dropdown(label="Model", choices=[], value=None, elem_id="live-model")
    with gr.Row(equal_height=True):       # the camera and the swap side by side, one size
        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                       elem_id="live-in", webcam_options=gr.WebcamOptions(mirror=False),
                       height=PANE_HEIGHT)
        out = gr.Image(label="Swapped", type="numpy", interactive=False, elem_id="live-out",
                       height=PANE_HEIGHT)
    # the capture time of each frame, written by the page (live_delay) and handed back
    clock = gr.Textbox(live_delay.CAPTURE_SLOT, visible="hidden", elem_id="live-clock")
    shown = gr.Textbox(visible="hidden", elem_id="live-shown")
    gr.HTML("<p id='live-delay'>Camera to screen: measured once swapped frames show.</p>")
    stats = gr.Markdown(elem_id="live-stats")
    fit_note = gr.Markdown(elem_id="live-fit")
    with gr.Row():
        consent = gr.Checkbox(label=CONSENT, value=False, elem_id="live-consent")
        adapt = gr.Button("Adapt to me", elem_id="live-adapt")

    def swap_frame(frame, name, captured, request: gr.Request):
        if frame is None or not name:
            return (gr.skip(), "Pick a model first." if not name else gr.skip(), gr.skip(),
                    gr.skip())
        sess = session(request)
        try:
            with sess.lock:
                _follow(ctx, sess)
                if sess.record_until:
                    _record(ctx, sess, frame, name)
                fit = _fit_of(ctx, sess, name, frame)
                using = sess.adapted.get(name, name)
                note = status_line(sess, name, fit)
            live = live_swap(ctx, using)
            result = live(frame)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(human_error(exc)) from None
        s = live.stats()
        at = live_delay.echo(captured)
        return (result, f"{s['fps']:.1f} frames/s · {s['ms']} ms per frame on the server", note,
                at if at is not None else gr.skip())

    cam.stream(swap_frame, [cam, model, clock], [out, stats, fit_note, shown],
               stream_every=STREAM_EVERY,
               time_limit=3600, concurrency_limit=1, show_progress="hidden",
               api_visibility="private")

    def record(name, agreed, request: gr.Request):
        from localswap.jobs.submit import CONSENT as consent_text
        from localswap.swap.plan import source_of
        from localswap.workspace import check_name
        if not name:
            return "Pick a model first."
        if not agreed:
            return f"Tick \"{consent_text}\" to record: only adapt to a face you may use."
        try:
            source_of(ctx.workspace.path("models", check_name(name)))
        except Exception as exc:  # noqa: BLE001
            return human_error(exc)
        sess = session(request)
        with sess.lock:
            if sess.pending is not None:
                return f"Job #{sess.pending[0]} is adapting already."
            sess.note = ""
            sess.record_until = time.monotonic() + RECORD_SECONDS
        return (f"Recording {RECORD_SECONDS:g} s of the webcam (the webcam must be on).")
    adapt.click(record, [model, consent], fit_note, api_visibility="private")
    return model
