"""New swap: upload target and source, agree to the consent line, pick Basic or Advanced, see
the estimated time per stage, start."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from localswap import media
from localswap.errors import UserError
from localswap.jobs import stages
from localswap.swap.estimate import estimate_swap
from localswap.jobs.snapshot import eta_text
from localswap.jobs.submit import CONSENT, submit_swap
from localswap.jobs.uploads import check_media, no_face_sentence, photos_without_face
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
from localswap.ui import job_view, people, widgets
from localswap.ui.context import Context, human_error

VIDEO_TYPES = sorted(media.VIDEO_EXTS)
MEDIA_TYPES = sorted(media.VIDEO_EXTS | media.IMAGE_EXTS)
# Advanced mode: the few settings most swaps change stay open (how long, how sharp, who,
# hands, glasses); the rest fold into groups, as in faceswap's and FaceFusion's settings.
T, C, E = TrainSettings, ConvertSettings, ExtractSettings
ADVANCED_OPEN = [(T, "iterations"), (T, "max_minutes"), (T, "resolution"), (C, "faces"),
                 (C, "occlusion"), (C, "glasses")]
ADVANCED_GROUPS = [
    ("Faces and extraction", "adv-faces",
     [(E, "face_type"), (E, "every"), (E, "min_face"), (E, "soft_share"), (E, "size"),
      (E, "max_frames"), (E, "detector"), (E, "min_confidence"), (C, "detector"),
      (C, "min_confidence")]),
    ("Training", "adv-training",
     [(T, "arch"), (T, "width"), (T, "batch"), (T, "guide"), (T, "color_match"),
      (T, "sharpen"), (T, "plateau"), (T, "eyes_mouth_weight"), (T, "preview_every"),
      (T, "warp"), (T, "flip")]),
    ("Rendering: colour, blend and mask", "adv-rendering",
     [(C, "color"), (C, "blend"), (C, "mask"), (C, "erode"), (C, "blur"), (C, "detail"),
      (C, "mouth"), (C, "smooth"), (C, "fill_gap"), (C, "crf"), (C, "label")]),
    ("Expert", "adv-expert",
     [(T, "lr"), (T, "warmup"), (T, "schedule"), (T, "clip_grad"), (T, "precision"),
      (T, "seed"), (T, "save_every"), (T, "save_minutes"), (T, "preview_seconds"),
      (C, "precision"), (C, "batch")]),
]
PREFIX = {T: "train", C: "convert", E: "extract"}
NEW_MODEL = "(new model)"
FRESH = "(fresh)"


@dataclass
class NewSwap:
    start: gr.Button
    message: gr.Markdown
    model: gr.Dropdown

    def model_choices(self, ctx: Context):
        return gr.update(choices=[NEW_MODEL] + ctx.workspace.names("models"))


def render(ctx: Context, tabs: gr.Tabs, job_select: gr.Dropdown, job_seen: gr.State) -> NewSwap:
    lim = ctx.uploads
    gr.Markdown(
        "Replace the face in the **target** video with the face of the **source** person. "
        f"Limits: {lim.max_gb:g} GB and {lim.max_minutes:g} minutes per video.")
    target, sources, checked, tgt_pick, src_pick = _uploads()
    with gr.Row():
        downscale_on = gr.Checkbox(value=bool(lim.downscale), label="Downscale large videos",
                                   info="faster; the result has the smaller size")
        downscale = gr.Number(value=lim.downscale or 1440, label="Maximum width (px)",
                              precision=0, minimum=64, maximum=8192)
    mode = gr.Radio(["Basic", "Advanced"], value="Basic", label="Mode", elem_id="mode",
                    info="Basic picks everything for your GPU; Advanced lets you choose.")
    # Both modes: proposed by itself when the source is the person a library model learned.
    start_from = gr.Dropdown(
        [(FRESH, "")] + [(n, n) for n in trainable_models(ctx)], value="",
        label="Start from", elem_id="start-from", allow_custom_value=False,
        info="a new model starts fresh, or from a library model's weights (the same source "
             "person on a new target learns far sooner)")
    proposal = gr.Markdown(elem_id="start-from-note")
    train_cls = TrainSettings
    advanced, model, train_w, convert_w, extract_w = _advanced(ctx, start_from)
    consent = gr.Checkbox(label=CONSENT, value=False, elem_id="consent")
    estimate_md = gr.Markdown(elem_id="estimate")
    start = gr.Button("Start the swap", variant="primary", elem_id="start")
    message = gr.Markdown(elem_id="start-message")

    mode.change(lambda m: gr.update(visible=m == "Advanced"), mode, advanced,
                api_visibility="private")
    groups = [(train_cls, list(train_w)), (ConvertSettings, list(convert_w)),
              (ExtractSettings, list(extract_w))]
    setting_inputs = [*train_w.values(), *convert_w.values(), *extract_w.values()]
    common = [target, sources, mode, model, downscale_on, downscale]

    def options_from(mode_v, model_v, down_on, down_px, values) -> dict:
        opts: dict = {"downscale": int(down_px or 0) if down_on else 0}
        if mode_v != "Advanced":      # values[0] is "Start from" (train_w's first entry)
            return {**opts, "train": {"init_from": values[0]}} if values[0] else opts
        i = 0
        for key, (cls, names) in zip(("train", "convert", "extract"), groups):
            opts[key] = widgets.collect(cls, names, values[i:i + len(names)])
            i += len(names)
        if model_v and model_v != NEW_MODEL:
            opts["model"] = model_v
        return opts

    def check(target_v, sources_v):
        return upload_report(ctx, target_v, sources_v)

    def show_estimate(target_v, sources_v, mode_v, model_v, down_on, down_px, *values):
        try:
            opts = options_from(mode_v, model_v, down_on, down_px, values)
        except UserError as exc:        # e.g. a word typed where a number goes
            return f"No estimate: {exc}"
        return estimate_text(ctx, target_v, sources_v, opts)

    for comp in (target, sources):
        comp.change(check, [target, sources], checked, api_visibility="private")
    # One listener for every input, run one at a time with only the newest pending change
    # kept: a first estimate measures this machine's speed for a few seconds, and a burst of
    # edits must not queue one measurement each.
    gr.on([c.change for c in (target, sources, mode, model, *setting_inputs)], show_estimate,
          [*common, *setting_inputs], estimate_md, api_visibility="private",
          show_progress="minimal", trigger_mode="always_last", concurrency_limit=1,
          concurrency_id="estimate")

    sources.change(lambda fs: propose_start(ctx, fs), sources, [start_from, proposal],
                   api_visibility="private", show_progress="minimal")
    # Listing reads the whole video (about as long as extraction): a progress bar meanwhile.
    target.change(lambda f, progress=gr.Progress(): people.pick_update(
                      f, people.EVERYONE, progress=progress), target,
                  [tgt_pick.gallery, tgt_pick.choice, tgt_pick.note], api_visibility="private",
                  show_progress="full")
    sources.change(lambda fs, progress=gr.Progress(): people.pick_update(
                       _first_video(fs), people.MAIN, "Pick which one is the source.",
                       progress), sources,
                   [src_pick.gallery, src_pick.choice, src_pick.note],
                   api_visibility="private", show_progress="full")

    def on_start(target_v, sources_v, mode_v, model_v, down_on, down_px, consent_v,
                 tgt_person, src_person, *values):
        try:
            opts = options_from(mode_v, model_v, down_on, down_px, values)
            if tgt_person:       # the chosen target person: extracted and swapped, no one else
                opts["convert"] = {**opts.get("convert", {}), "person": int(tgt_person)}
            if src_person:
                opts["extract"] = {**opts.get("extract", {}), "person": int(src_person)}
            job_id = submit_swap(ctx.runner, _pair(target_v), [_pair(s) for s in sources_v or []],
                                 bool(consent_v), opts, ctx.uploads)
        except Exception as exc:  # a sentence on the page, never a traceback
            return f"**{human_error(exc)}**", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        # consent unticked again: a second click must be a second decision, not a double submit
        return (f"Job #{job_id} queued: it is on the Job tab. To start another swap, tick the "
                "box again.", gr.update(selected="job"), job_view.select_job(ctx, job_id), {},
                gr.update(value=False))

    start.click(on_start, [*common, consent, tgt_pick.choice, src_pick.choice, *setting_inputs],
                [message, tabs, job_select, job_seen, consent], api_visibility="private")
    return NewSwap(start, message, model)


def _uploads():
    """The target and source uploads, the check line, and the two people pickers."""
    with gr.Row():
        target = gr.File(label="Target video: the face that gets replaced",
                         file_types=VIDEO_TYPES, elem_id="target-file")
        sources = gr.File(label="Source: video(s) or photos of the new face",
                          file_count="multiple", file_types=MEDIA_TYPES, elem_id="source-files")
    checked = gr.Markdown(elem_id="upload-check")
    with gr.Row():
        with gr.Column():
            tgt_pick = people.render_picker("Who is replaced in the target", "target",
                                            people.EVERYONE)
        with gr.Column():
            src_pick = people.render_picker("Who is the source (when a source video shows "
                                            "several people)", "source", people.MAIN)
    return target, sources, checked, tgt_pick, src_pick


def _advanced(ctx: Context, start_from: gr.Dropdown):
    """Advanced mode's column: the model choice, the settings most swaps change, and the
    rest in folded groups; returns the widgets by settings class and field name ("Start
    from", shown in both modes, is the first training one)."""
    found: dict = {T: {"init_from": start_from}, C: {}, E: {}}
    with gr.Column(visible=False) as advanced:
        models = [NEW_MODEL] + ctx.workspace.names("models")
        model = gr.Dropdown(models, value=NEW_MODEL, label="Model", elem_id="model-choice",
                            info="Train a new model, or continue one from the library.",
                            allow_custom_value=False)
        _settings(ADVANCED_OPEN, found, per_row=3)
        for title, elem_id, pairs in ADVANCED_GROUPS:
            with gr.Accordion(title, open=False, elem_id=elem_id):
                _settings(pairs, found, per_row=2)
    return advanced, model, found[T], found[C], found[E]


def _settings(pairs: list, found: dict, per_row: int) -> None:
    """The widgets of these (settings class, field) pairs, `per_row` to a row, added to
    `found` by class and field name."""
    for i in range(0, len(pairs), per_row):
        with gr.Row(equal_height=True):
            for cls, name in pairs[i:i + per_row]:
                found[cls].update(widgets.settings_widgets(cls, [name], prefix=PREFIX[cls]))


def propose_start(ctx: Context, sources_v) -> tuple:
    """"Start from" set to the library model whose source is this person, with a note."""
    from localswap.models.identity import propose
    paths = [_pair(s)[0] for s in sources_v or []]
    found = None
    if paths:
        try:
            found = propose(ctx.workspace, paths)
        except Exception:  # noqa: BLE001  (a proposal is a courtesy: never an error)
            found = None
    choices = [(FRESH, "")] + [(n, n) for n in trainable_models(ctx)]
    if not found:
        return gr.update(choices=choices, value=""), ""
    return (gr.update(choices=choices, value=found[0]),
            f"The source looks like the person model **{found[0]}** learned (face distance "
            f"{found[1]:.2f}): the new model starts from it. Choose (fresh) to start over.")


def trainable_models(ctx: Context) -> list[str]:
    """Library models a new model can start from (not imported .dfm files)."""
    from localswap.convert.dfm import is_dfm_dir
    return [n for n in ctx.workspace.names("models")
            if not is_dfm_dir(ctx.workspace.root / "models" / n)]


def _first_video(files) -> str | None:
    for f in files or []:
        p, _ = _pair(f)
        if media.is_video(Path(p)):
            return p
    return None


def _pair(path) -> tuple[str, str]:
    """(path, display name) of a Gradio upload (its folder holds the original file name)."""
    if path is None:
        return ("", "")
    p = Path(path if isinstance(path, str) else getattr(path, "name", path))
    return (str(p), p.name)


def upload_report(ctx: Context, target, sources) -> str:
    """One line per upload: its size and length, or why it cannot be used. Source photos are
    checked for a face as the job will look for it (videos are listed under "Who is the
    source", targets under "Who is replaced")."""
    lines, photos = [], []
    for path, role, as_photo in [(target, "Target", False)] + [
            (s, "Source", True) for s in (sources or [])]:
        if not path:
            continue
        p, name = _pair(path)
        try:
            up = check_media(Path(p), name, ctx.uploads, as_photo)
        except UserError as exc:
            lines.append(f"⚠️ {role}: {exc}")
            continue
        what = (f"{up.width}×{up.height}, {up.duration:.1f} s, {up.frames} frames"
                if up.video else f"photo {up.width}×{up.height}")
        lines.append(f"✓ {role}: {name} ({what})")
        if as_photo and not up.video:
            photos.append((p, name, len(lines) - 1))
    try:
        faceless = set(photos_without_face([(p, n) for p, n, _ in photos]))
    except Exception as exc:  # noqa: BLE001  (the check must never break the page)
        faceless = set()
        lines.append(f"(The source photos could not be checked for a face: {human_error(exc)})")
    for _, name, i in photos:
        if name in faceless:
            lines[i] = f"⚠️ Source: {no_face_sentence(name)}"
    return "\n\n".join(lines)


def estimate_text(ctx: Context, target, sources, opts: dict) -> str:
    if not target or not sources:
        return ""
    try:
        runner = ctx.runner
        est = estimate_swap(runner.workspace.root, _pair(target)[0],
                            [_pair(s)[0] for s in sources], opts, idle=runner.idle(),
                            past_speeds=runner.store.stage_speeds)
    except Exception as exc:  # an estimate must never break the page
        return f"No estimate: {human_error(exc)}"
    rows = " · ".join(f"{stages.TITLES[s]}: ~{eta_text(sec)}" for s, sec in est.stages)
    note = f"\n\n{est.note}." if est.note else ""
    faceless = f"\n\n{est.faceless_text(_pair(target)[1])}" if est.faceless else ""
    return (f"**Estimated time**: about {eta_text(est.total)} ({rows}); {est.basis}.{note}"
            f"{faceless}")
