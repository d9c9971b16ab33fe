"""Plan a swap: check the inputs and decide every path and setting up front, as a `SwapJob`
that the pipeline (localswap.swap.pipeline) runs stage by stage and the estimator
(localswap.swap.estimate) times."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from localswap import media
from localswap.errors import UserError
from localswap.faces.extract import collect_inputs
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
from localswap.train import budget
from localswap.workspace import Workspace, slug

# The stages of a swap, in order.
STAGES = ("extract_target", "extract_source", "train", "convert")


@dataclass
class SwapJob:
    sources: list[Path]
    target: Path
    out: Path
    model_dir: Path
    faceset_target: Path
    faceset_source: Path
    extract: ExtractSettings
    train: TrainSettings
    convert: ConvertSettings
    target_frames: int              # frames of the target video to extract and convert
    source_frames: int              # frames + photos of the sources
    results: dict = field(default_factory=dict)   # per stage, once run
    basic: bool = False             # the iterations are Basic's: the quality bar's
    device_kind: str = "cpu"        # where training will run: cpu or cuda
    reuse_source: bool = False      # adapting: the source faceset is the starting model's

    def stages(self) -> tuple[str, ...]:
        return tuple(s for s in STAGES if not (s == "extract_source" and self.reuse_source))


def _frames(items: list[tuple[Path, media.MediaInfo | None]], every: int) -> int:
    return sum(-(-info.frames // every) if info else 1 for _, info in items)


def plan_swap(sources: list[str | Path], target: str | Path, out: str | Path, ws: Workspace,
              model: str | Path | None = None, train: TrainSettings | None = None,
              convert: ConvertSettings | None = None,
              extract: ExtractSettings | None = None) -> SwapJob:
    """Check the inputs and decide every path before any work starts.

    `model`: an existing model folder to continue (or a new folder to create); by default
    a new model in the workspace named after the two people."""
    train = (train or TrainSettings()).validate()
    # Basic (iterations 0): the iterations that reach the quality bar on this kind of device.
    from localswap.gpu import nvidia_present
    kind = "cuda" if train.device in ("auto", "cuda") and nvidia_present() else "cpu"
    basic = budget.is_basic(train)
    train = budget.resolve(train, kind)
    convert = (convert or ConvertSettings()).validate()
    extract = (extract or ExtractSettings()).validate()
    if not sources and not train.init_from:
        raise UserError("give at least one --source video, photo or folder of photos")
    target = Path(target)
    if not media.is_video(target):
        raise UserError(f"{target.name}: the target must be a video (mp4, mov, mkv, webm, avi)")
    target_items = collect_inputs([target])
    source_items = collect_inputs(list(sources)) if sources else []
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise UserError(f"{out.name}: the swap is written as H.264 mp4; name it .mp4")
    if model is None and not source_items:  # adapting: named after the model and the target
        model_dir = ws.path("models", ws.new_model_name(
            Path(str(train.init_from)).name + "-adapted", target.name))
    elif model is None:                     # a new model named after the two people
        model_dir = ws.path("models", ws.new_model_name(source_items[0][0].name, target.name))
    elif Path(model).is_dir() or len(Path(model).parts) > 1:
        model_dir = Path(model)             # a folder: continued if it holds a model
    else:
        model_dir = ws.path("models", str(model))   # a library name: likewise
    if (model_dir / "manifest.json").is_file():
        from localswap.train.manifest import read_manifest
        from localswap.train.manifest import is_dfm_dir
        if is_dfm_dir(model_dir):
            raise UserError(f"{model_dir.name} is a DeepFaceLive model: it cannot be trained "
                            "here; use it as it is (convert, or Models → Quick swap)")
        extract.face_type = read_manifest(model_dir).get("face_type", extract.face_type)
    elif train.init_from:       # a new model from a trained one: its faces, checked now
        from localswap.train.manifest import read_manifest
        from localswap.train.init_from import find
        start = find(train.init_from, model_dir).absolute()
        train = replace(train, init_from=str(start))     # the same model from any folder
        extract.face_type = read_manifest(start).get("face_type", extract.face_type)
    stem = slug(model_dir.name, 48)
    faceset_source, reuse = ws.path("facesets", f"{stem}-source"), False
    if not source_items:        # adapting with no new source: the model's own source faces
        # (the model being made has them once it has trained; before, the one it starts from)
        made = (model_dir / "manifest.json").is_file()
        faceset_source, source_paths = source_of(model_dir if made else Path(train.init_from))
        reuse = True
    else:
        source_paths = [p for p, _ in source_items]
    return SwapJob(
        sources=source_paths, target=target, out=out, model_dir=model_dir,
        faceset_target=ws.path("facesets", f"{stem}-target"),
        faceset_source=faceset_source, extract=extract, train=train, convert=convert,
        target_frames=_frames(target_items, extract.every),
        source_frames=0 if reuse else _frames(source_items, extract.every), basic=basic,
        device_kind=kind, reuse_source=reuse)


def source_of(model_dir: Path) -> tuple[Path, list[Path]]:
    """The source faceset a trained model learned from, and the videos/photos its faces came
    from that are still on disk (the judge compares the render with them)."""
    from localswap.faces.faceset import Faceset
    from localswap.train.manifest import read_manifest
    fs = (read_manifest(model_dir).get("facesets") or {}).get("source") or {}
    folder = Path(fs["path"]) if isinstance(fs, dict) and fs.get("path") else None
    if folder is None or not (folder / "faceset.json").is_file():
        raise UserError(f"{model_dir.name}: its source faces are no longer on disk; give the "
                        "source videos or photos again (--source) to adapt it")
    media_paths = list(dict.fromkeys(Path(f.source) for f in Faceset.load(folder).faces
                                     if f.source))
    found = [p for p in media_paths if p.exists()]
    return folder, found or [folder]


def iterations_left(job: SwapJob) -> int:
    """The iterations training still has to run: the target less what the model has."""
    done = 0
    if (job.model_dir / "manifest.json").is_file():
        from localswap.train.manifest import read_manifest
        done = int(read_manifest(job.model_dir).get("iteration", 0) or 0)
    return max(0, job.train.iterations - done)
