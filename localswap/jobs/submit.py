"""Turning a request (uploaded files + options) into a queued job. The UI and the API both
call these, so the checks (consent, limits, settings ranges) are the same everywhere."""
from __future__ import annotations

from pathlib import Path

from localswap.errors import UserError
from localswap.jobs.runner import Runner
from localswap.jobs.uploads import (Upload, UploadSettings, check_media, no_face_sentence,
                                    photos_without_face, store_upload)
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings, checked
from localswap.workspace import check_name

CONSENT = "I have the right to use these faces"


def _consent_and_target(consent: bool, target: tuple[str, str] | None, missing: str) -> None:
    """Nothing starts without the consent box ticked and a target given."""
    if not consent:
        raise UserError(f"Tick \"{CONSENT}\" to start: only swap faces you may use.")
    if not target or not target[0]:
        raise UserError(missing)


def submit_swap(runner: Runner, target: tuple[str, str], sources: list[tuple[str, str]],
                consent: bool, options: dict | None = None,
                limits: UploadSettings | None = None) -> int:
    """Queue extract -> train -> convert. `target`/`sources` are (path, display name) pairs
    of uploaded files; `options` may hold 'extract', 'train', 'convert' dicts, 'model' (an
    existing model to continue) and 'downscale' (px)."""
    options, limits = dict(options or {}), limits or UploadSettings()
    _consent_and_target(consent, target, "Add a target video: the video whose face is replaced.")
    if not sources:
        raise UserError("Add the source: a video or photos of the new face.")
    extract = checked(ExtractSettings, options.get("extract"), "extraction")
    train = checked(TrainSettings, options.get("train"), "training")
    convert = checked(ConvertSettings, options.get("convert"), "conversion")
    # A source photo with no face would only fail the job after the target's extraction.
    named = [(p, Path(n or p).name) for p, n in sources]
    for p, n in named:           # unreadable files get their own sentence first
        check_media(Path(p), n, limits, photos=True)
    settings = ExtractSettings(**extract)
    faceless = photos_without_face(named, settings)
    if faceless:
        raise UserError(no_face_sentence(faceless[0], settings))
    ws = runner.workspace
    tgt = store_upload(ws, target[0], target[1], limits)
    srcs: list[Upload] = [store_upload(ws, p, n, limits, photos=True) for p, n in sources]
    if options.get("model"):
        model = check_name(options["model"])
    else:
        model = ws.new_model_name(srcs[0].name, tgt.name)
    downscale = int(options.get("downscale") or limits.downscale or 0)
    params = {"target": tgt.rel, "target_name": tgt.name,
              "sources": [s.rel for s in srcs], "source_names": [s.name for s in srcs],
              "model": model, "extract": extract, "train": train, "convert": convert,
              "downscale": downscale, "frames": tgt.frames,
              "source_frames": sum(s.frames for s in srcs)}
    title = f"{tgt.name} ← {srcs[0].name}" + (f" +{len(srcs) - 1}" if len(srcs) > 1 else "")
    return runner.submit("swap", params, title)


def submit_quick_swap(runner: Runner, target: tuple[str, str], model: str, consent: bool,
                      options: dict | None = None,
                      limits: UploadSettings | None = None) -> int:
    """Queue a conversion of `target` with a model from the library (no training)."""
    options, limits = dict(options or {}), limits or UploadSettings()
    _consent_and_target(consent, target, "Add the video to convert.")
    # options["map"] = {person number: model name}: each listed person their own model.
    people = {int(n): check_name(m or "") for n, m in (options.get("map") or {}).items() if m}
    model = check_name(model or "") if model or not people else next(iter(people.values()))
    for name in {model, *people.values()}:
        if not (runner.workspace.path("models", name) / "manifest.json").is_file():
            raise UserError(f"There is no model called {name!r} in the library.")
    convert = checked(ConvertSettings, options.get("convert"), "conversion")
    tgt = store_upload(runner.workspace, target[0], target[1], limits)
    params = {"target": tgt.rel, "target_name": tgt.name, "model": model, "convert": convert,
              "downscale": int(options.get("downscale") or limits.downscale or 0),
              "frames": tgt.frames}
    if people:
        params["map"] = {str(n): m for n, m in sorted(people.items())}
        model = ", ".join(f"{m} for person {n}" for n, m in sorted(people.items()))
    return runner.submit("quick_swap", params, f"{tgt.name} with model {model}")


def submit_render(runner: Runner, job_id: int, convert: dict | None) -> int:
    """Queue a render of job `job_id`'s target with its model and these conversion settings
    (the frame preview's "Render with these settings"); the model is not trained further."""
    job = runner.store.get(int(job_id))
    if job is None:
        raise UserError(f"There is no job #{job_id}.")
    model = check_name(job.params.get("model") or "")
    if not (runner.workspace.path("models", model) / "manifest.json").is_file():
        raise UserError(f"Job #{job_id} has no model yet: let it train to a checkpoint first.")
    settings = checked(ConvertSettings, convert, "conversion")
    target = job.result.get("target") or job.params["target"]
    params = {"target": target, "target_name": job.params.get("target_name", ""),
              "model": model, "convert": settings, "downscale": 0,
              "frames": job.params.get("frames", 0)}
    if job.params.get("map"):
        params["map"] = dict(job.params["map"])
    return runner.submit("quick_swap", params,
                         f"{params['target_name']} with model {model} (new settings)")


def submit_adapt(runner: Runner, target: tuple[str, str], model: str, consent: bool,
                 options: dict | None = None, limits: UploadSettings | None = None) -> int:
    """Queue the adaptation of library model `model` to the person in `target`: a new model
    starts from it, reuses its source faces, trains the adapt budget on the new target
    (unless options' train says otherwise) and renders the target. The model is not changed."""
    from localswap.train.manifest import is_dfm_dir
    from localswap.swap.plan import source_of
    options, limits = dict(options or {}), limits or UploadSettings()
    _consent_and_target(consent, target, "Add the video of the new person.")
    name = check_name(model or "")
    folder = runner.workspace.path("models", name)
    if not (folder / "manifest.json").is_file():
        raise UserError(f"There is no model called {name!r} in the library.")
    if is_dfm_dir(folder):
        raise UserError(f"{name} is a DeepFaceLive model: it works on any person as it is and "
                        "cannot be trained here.")
    source_of(folder)      # its source faces must still be on disk: say so before the upload
    train = checked(TrainSettings, {**(options.get("train") or {}), "init_from": name},
                    "training")
    convert = checked(ConvertSettings, options.get("convert"), "conversion")
    extract = checked(ExtractSettings, options.get("extract"), "extraction")
    ws = runner.workspace
    tgt = store_upload(ws, target[0], target[1], limits)
    params = {"target": tgt.rel, "target_name": tgt.name, "sources": [], "source_names": [],
              "model": ws.new_model_name(f"{name}-adapted", tgt.name), "adapt_from": name,
              "extract": extract, "train": train, "convert": convert,
              "downscale": int(options.get("downscale") or limits.downscale or 0),
              "frames": tgt.frames, "source_frames": 0}
    return runner.submit("swap", params, f"{tgt.name} ← {name} (adapted to this person)")
