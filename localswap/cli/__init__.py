"""`python -m localswap COMMAND`: the same stage functions the UI's job runner calls.

Each command is a pair: `_args_NAME(parser)` declares its flags, `cmd_NAME(args) -> int` runs it.
The pipeline's commands are here; the tools (models, gpu, doctor, bench, evaluate) are in
cli/tools.py.
A UserError becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from localswap import __version__
from localswap.cli.tools import BENCH_SECTIONS, TOOLS, workspace_flag  # noqa: F401
from localswap.errors import UserError
from localswap.settings import ExtractSettings


LIMIT_FLAGS = {"max_gb": "--max-gb", "max_minutes": "--max-video-minutes"}


def _limit_flags(p: argparse.ArgumentParser) -> None:
    """The web app's upload limits (UploadSettings), off unless given: the files are yours.
    (--max-video-minutes, as swap's --max-minutes is the training time budget.)"""
    from dataclasses import fields

    from localswap.jobs.uploads import UploadSettings
    for f in fields(UploadSettings):
        if f.name in LIMIT_FLAGS:
            p.add_argument(LIMIT_FLAGS[f.name], dest=f"limit_{f.name}", type=float,
                           metavar="GB" if f.name == "max_gb" else "MINUTES",
                           help=f"{f.metadata['help']}; others are refused before any work "
                                "(default: no limit)")


def _check_limits(args: argparse.Namespace, inputs: list) -> None:
    """Refuse inputs over the limits given, before any work, with the web app's sentences."""
    from localswap.jobs.uploads import UploadSettings, check_inputs
    given = {k: getattr(args, f"limit_{k}") for k in LIMIT_FLAGS
             if getattr(args, f"limit_{k}", None) is not None}
    if not given:
        return
    limits = UploadSettings(**given).validate()
    for k in set(LIMIT_FLAGS) - set(given):
        setattr(limits, k, float("inf"))
    check_inputs(inputs, limits)


def _args_extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="video files, image files or folders of images")
    p.add_argument("--out", required=True, help="faceset folder to create or add to (with "
                   "--list-people: the folder for the people's thumbnails)")
    p.add_argument("--list-people", action="store_true",
                   help="list the distinct people in each input (a thumbnail and frame count "
                   "each; use their number with --person) instead of extracting")
    ExtractSettings.add_arguments(p)
    _limit_flags(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_extract(args: argparse.Namespace) -> int:
    from localswap.faces.extract import extract
    from localswap.progress import TqdmProgress

    settings = ExtractSettings.from_args(args)
    _check_limits(args, args.inputs)
    if args.list_people:
        return _list_people(args, settings)
    bar = TqdmProgress("extract", unit="frame")
    try:
        summary = extract(args.inputs, args.out, settings, progress=bar)
    finally:
        bar.close()
    print(json.dumps(summary.to_dict(), indent=1) if args.json else summary.report())
    return 0


def _list_people(args: argparse.Namespace, settings: ExtractSettings) -> int:
    from localswap.faces.extract import collect_inputs
    from localswap.faces.identities import list_people
    from localswap.progress import TqdmProgress

    listings = []
    items = collect_inputs(args.inputs)
    for n, (path, _) in enumerate(items):
        bar = TqdmProgress("people", unit="frame")
        try:
            thumbs = Path(args.out) / (f"{n + 1}_{path.stem}" if len(items) > 1 else "")
            listings.append(list_people(path, settings, thumbs=thumbs, progress=bar))
        finally:
            bar.close()
    if args.json:
        d = [x.to_dict() for x in listings]
        print(json.dumps(d[0] if len(d) == 1 else d, indent=1))
    else:
        print("\n".join(x.report() for x in listings))
    return 0


def _args_train(p: argparse.ArgumentParser) -> None:
    from localswap.settings import TrainSettings
    p.add_argument("--source", required=True, help="faceset of the person to put in (B)")
    p.add_argument("--target", required=True, nargs="+",
                   help="faceset of the person to replace (A); several facesets (or folders "
                        "of photos, extracted first) of different people train a model for "
                        "any target (written beside the first, in MODEL-targets/)")
    p.add_argument("--model", required=True,
                   help="model folder: created, or continued when it already holds a model")
    TrainSettings.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_train(args: argparse.Namespace) -> int:
    import os
    import signal
    import threading

    from localswap.progress import TqdmProgress
    from localswap.settings import TrainSettings
    from localswap.train.trainer import train

    settings = TrainSettings.from_args(args)
    stop = threading.Event()
    bars: list[TqdmProgress] = []

    def on_interrupt(signum, frame):
        # The first Ctrl-C stops after a checkpoint; a second one aborts.
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def progress(done: int, total: int, message: str = "", **info) -> None:
        if not bars:                     # made on first use: only rank 0 reports under torchrun
            bars.append(TqdmProgress("train", unit="it"))
        if info.get("event") == "note":
            bars[0]._bar.write(message, file=sys.stderr)
        else:
            bars[0](done, total, message, **info)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        target = args.target[0]
        if len(args.target) > 1:
            from localswap.train.any_target import as_facesets, mix_facesets
            work = Path(args.target[0]).parent / f"{Path(args.model).name}-targets"
            target = mix_facesets(as_facesets(args.target, work / "people", args.source),
                                  work / "mix")
        result = train(args.source, target, args.model, settings, progress=progress,
                       cancel=stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        for bar in bars:
            bar.close()
    if int(os.environ.get("RANK", "0")) == 0:       # under torchrun, rank 0 speaks for all
        print(json.dumps(result.to_dict(), indent=1) if args.json else result.report())
    return 0


def _args_convert(p: argparse.ArgumentParser) -> None:
    from localswap.settings import ConvertSettings
    p.add_argument("input", help="video, photo or folder of photos of the target person (A)")
    p.add_argument("--model",
                   help="trained model folder, or the name of a model in the workspace library")
    p.add_argument("--map", action="append", default=[], metavar="N=MODEL",
                   help="swap person N (their number in `extract --list-people`) with MODEL; "
                   "repeat for several people, all in one pass (instead of --model)")
    p.add_argument("--out", required=True,
                   help="output .mp4 for a video, an image for a photo, a folder for a folder")
    workspace_flag(p)
    ConvertSettings.add_arguments(p)
    _limit_flags(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_convert(args: argparse.Namespace) -> int:
    from localswap.convert.render import convert
    from localswap.models.library import resolve_model
    from localswap.progress import TqdmProgress
    from localswap.settings import ConvertSettings
    from localswap.workspace import Workspace

    settings = ConvertSettings.from_args(args)
    _check_limits(args, [args.input])

    def find(name: str):
        return Path(name) if Path(name).is_dir() else resolve_model(name,
                                                                    Workspace(args.workspace))
    if bool(args.model) == bool(args.map):
        raise UserError("give --model MODEL, or --map N=MODEL for each person to swap")
    if args.map:
        model = {}
        for item in args.map:
            n, _, name = item.partition("=")
            if not n.strip().isdigit() or not name or int(n) < 1:
                raise UserError(f"--map {item}: write it as N=MODEL, N a person's number "
                                "from `extract --list-people`")
            model[int(n)] = find(name.strip())
    knows = None
    if not args.map:
        model = find(args.model)
        knows = _tell_fit(model, args)
    bar = TqdmProgress("convert", unit="frame")
    try:
        result = convert(args.input, model, args.out, settings, progress=bar,
                         knows_person=knows)
    finally:
        bar.close()
    print(json.dumps(result.to_dict(), indent=1) if args.json else result.report())
    return 0


def _tell_fit(model: Path, args: argparse.Namespace) -> bool | None:
    """Before rendering: whether the model was trained on this person; if not, a note and
    the command that adapts it (the render goes on: the user may want it anyway). Returns
    whether it is the model's person (None: not known)."""
    import shlex

    from localswap.swap.fit import check
    from localswap.workspace import Workspace
    fit = check(model, args.input, Workspace(args.workspace))
    if fit.verdict in ("other", "unknown"):
        print(f"note: {fit.sentence()}", file=sys.stderr)
    if fit.verdict == "other":
        out = Path(args.out)
        print("  to adapt it: python -m localswap swap --adapt "
              f"{shlex.quote(str(model))} --target {shlex.quote(args.input)} --out "
              f"{shlex.quote(str(out.with_name(out.stem + '-adapted' + out.suffix)))}",
              file=sys.stderr)
    return {"same": True, "other": False}.get(fit.verdict)


SWAP_TRAIN_FLAGS = ("iterations", "arch", "resolution", "width", "batch", "max_minutes",
                    "init_from", "color_match")


def _args_swap(p: argparse.ArgumentParser) -> None:
    from dataclasses import fields

    from localswap.settings import ConvertSettings, TrainSettings
    p.add_argument("--source", nargs="+", default=[],
                   help="videos, photos or folders of photos of the person to put in (B); "
                   "with --adapt it may be left out (the model's source faces are reused)")
    p.add_argument("--target", required=True, help="the video whose face is replaced (A)")
    p.add_argument("--adapt", metavar="MODEL", default="",
                   help="adapt a trained model to a new target person: start from MODEL, "
                   "reuse its source faces and train briefly (Basic: the adapt budget, "
                   "docs/benchmarks.md) on the new target")
    p.add_argument("--out", required=True, help="output .mp4")
    p.add_argument("--model", help="model folder or library name to continue (default: a new "
                   "model in the workspace named after the two people)")
    workspace_flag(p)
    TrainSettings.add_arguments(p, skip=tuple(f.name for f in fields(TrainSettings)
                                              if f.name not in SWAP_TRAIN_FLAGS))
    ConvertSettings.add_arguments(p, skip=("batch",))   # --batch is the training batch here
    p.add_argument("--source-person", type=int, default=0, metavar="N",
                   help="when a source video shows several people: the source is person N of "
                   "the first source video's `extract --list-people` (default: the main person)")
    _limit_flags(p)


def cmd_swap(args: argparse.Namespace) -> int:
    from localswap.swap import pipeline
    from localswap.progress import TqdmProgress
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.workspace import Workspace

    _check_limits(args, [args.target, *args.source])
    ws = Workspace(args.workspace)
    bars = []

    def progress_for(stage: str):
        if bars:
            bars[-1].close()             # one bar per stage, each finished before the next
        bars.append(TqdmProgress(stage, unit="it" if stage == "train" else "frame"))
        return bars[-1]
    if args.adapt and args.init_from and args.adapt != args.init_from:
        raise UserError("give --adapt or --init-from, not both")
    if not args.source and not args.adapt:
        raise UserError("give at least one --source video, photo or folder of photos (or "
                        "--adapt MODEL to reuse a trained model's source)")
    train = TrainSettings.from_args(args)
    if args.adapt:
        train.init_from = args.adapt
    if not train.init_from and not args.model:
        _propose_init_from(ws, args.source)
    try:
        job = pipeline.swap(args.source, args.target, args.out, ws, model=args.model,
                            train=train,
                            convert=ConvertSettings.from_args(args,
                                                              batch=ConvertSettings().batch),
                            # --person is the target's (it shares the convert flag)
                            extract=ExtractSettings.from_args(args, person=args.source_person,
                                                              person_photo=""),
                            progress_for=progress_for, report=print)
    finally:
        for bar in bars:
            bar.close()
    print(f"model: {job.model_dir}")
    print(f"wrote {job.out}")
    return 0


def _propose_init_from(ws, sources: list[str]) -> None:
    """A tip when a library model was trained on the same source person."""
    from localswap.models.identity import propose
    found = propose(ws, sources)
    if found:
        print(f"tip: the source looks like the source of the library model {found[0]!r} "
              f"(face distance {found[1]:.2f}); add --init-from {found[0]!r} to start from it: "
              "far fewer iterations for the same quality", file=sys.stderr)


COMMANDS = {
    "extract": ("find, align and save faces from videos or photos", _args_extract, cmd_extract),
    "train": ("train (or continue) a face-swap model on two facesets", _args_train, cmd_train),
    **{name: TOOLS[name] for name in ("gpu", "doctor", "bench", "download-weights")},
    "convert": ("render a video or photos with a trained model's face (no training)",
                _args_convert, cmd_convert),
    "swap": ("extract both people, train (or continue) a model, convert: all in one",
             _args_swap, cmd_swap),
    **{name: TOOLS[name] for name in ("models", "evaluate")},
}


def build_parser() -> argparse.ArgumentParser:
    command = "localswap" if Path(sys.argv[0]).name == "localswap" else "python -m localswap"
    parser = argparse.ArgumentParser(prog=command,
                                     description="localswap face-swap studio")
    parser.add_argument("--version", action="version", version=f"localswap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def run() -> None:
    """The `localswap` console command (pyproject's [project.scripts])."""
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
