"""`python -m localswap COMMAND`: the same stage functions the UI's job runner calls.

Each command is a pair: `_args_NAME(parser)` declares its flags, `cmd_NAME(args) -> int` runs it.
A UserError becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from localswap import __version__
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


def _args_download_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=None, help="where to put the weight files (default: "
                   "LOCALSWAP_WEIGHTS, else weights/ of a source checkout, else "
                   "~/.local/share/localswap/weights)")


def cmd_download_weights(args: argparse.Namespace) -> int:
    from localswap.faces.detect import weights_dir
    from localswap.faces.facexlib_backend import download_weights

    for path in download_weights(Path(args.dir) if args.dir else weights_dir()):
        print(path)
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


def _args_gpu(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print probe and plan as JSON")


def cmd_gpu(args: argparse.Namespace) -> int:
    from localswap import gpu
    from localswap.train import planner
    from localswap.system.cuda_support import torch_problems

    probe = gpu.probe()
    plan = planner.plan(probe)
    problems = torch_problems(probe)        # a card too old for this torch, an old driver
    if args.json:
        print(json.dumps({"probe": probe.to_dict(), "plan": plan.to_dict(),
                          "problems": problems}, indent=1))
        return 0
    for d in probe.devices:
        util = f", {d.utilisation}% busy" if d.utilisation is not None else ""
        print(f"GPU {d.index}: {d.name}, {d.free_mb} of {d.total_mb} MiB free{util}, "
              f"driver {d.driver}")
    if probe.note:
        print(probe.note)
    for problem in problems:
        print(problem)
    print("training plan: " + plan.describe())
    return 0


def _args_doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", dest="json_file", metavar="FILE", help="also write the report here")
    p.add_argument("--keep", metavar="DIR", help="keep the sample facesets, models and clip here "
                   "(default: a temporary folder, removed at the end)")


def cmd_doctor(args: argparse.Namespace) -> int:
    from localswap.bench import doctor
    checks = doctor.run(print, Path(args.keep) if args.keep else None)
    print(doctor.summary(checks))
    if args.json_file:
        doctor.write_json(checks, args.json_file)
    return 1 if any(c.status == doctor.FAILED for c in checks) else 0


def _workspace_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", default="workspace",
                   help="workspace folder (facesets/, models/, outputs/) (default: workspace)")


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
    _workspace_flag(p)
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
    _workspace_flag(p)
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


def _args_models(p: argparse.ArgumentParser) -> None:
    _workspace_flag(p)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--export", nargs=2, metavar=("NAME", "FILE"),
                     help="write a model file (FILE.zip; FILE.dfm for DeepFaceLive)")
    act.add_argument("--import", dest="import_file", metavar="FILE",
                     help="add a model file written by --export, or a DeepFaceLive .dfm, "
                     "to the library")
    act.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"), help="rename a model")
    act.add_argument("--delete", metavar="NAME", help="delete a model")
    p.add_argument("--name", help="library name for --import (default: the exported name)")
    p.add_argument("--for-rendering", action="store_true",
                   help="with --export: leave out the training state (about 60%% of the "
                        "file); the model renders and quick-swaps, but cannot continue "
                        "training where it stopped")
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def cmd_models(args: argparse.Namespace) -> int:
    from localswap.models import library
    from localswap.workspace import Workspace

    ws = Workspace(args.workspace)
    if args.for_rendering and not args.export:
        raise UserError("--for-rendering goes with --export NAME FILE")
    if args.export:
        out = library.export_model(ws, args.export[0], args.export[1],
                                   for_rendering=args.for_rendering)
        print(out)
        if args.for_rendering and out.suffix.lower() != ".dfm":
            print(f"note: exported for rendering ({out.stat().st_size / 2 ** 20:.1f} MB, "
                  "without the training state): it renders and quick-swaps, but cannot "
                  "continue training where it stopped", file=sys.stderr)
        if out.suffix.lower() == ".dfm":
            from localswap.train.manifest import read_manifest
            from localswap.models.dfm_export import crop_notes
            for note in crop_notes(read_manifest(ws.path("models", args.export[0]))):
                print(f"note: {note}", file=sys.stderr)
        return 0
    if args.import_file:
        info = library.import_model(ws, args.import_file, name=args.name)
        print(f"imported {info.name} ({info.arch}, {info.resolution} px)")
        from localswap.models.card import is_for_rendering
        from localswap.train.manifest import read_manifest
        if is_for_rendering(info.path, read_manifest(info.path)):
            print("note: this model was exported for rendering: it renders and quick-swaps, "
                  "but cannot continue training where it stopped (more training starts its "
                  "training state afresh)", file=sys.stderr)
        return 0
    if args.rename:
        print(library.rename_model(ws, *args.rename))
        return 0
    if args.delete:
        library.delete_model(ws, args.delete)
        print(f"deleted {args.delete}")
        return 0
    models = library.list_models(ws)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=1))
        return 0
    if not models:
        print(f"no models in {ws.root / 'models'}")
        return 0
    rows = [("NAME", "ARCH", "PX", "ITERATIONS", "SOURCE -> TARGET", "LAST LOSS", "SIZE",
             "SAVED")]
    rows += [(m.name, m.arch, str(m.resolution), f"{m.iterations:,}",
              f"{m.source or '?'} -> {m.target or '?'}",
              f"{m.last_loss:.4f}" if m.last_loss is not None else "-", f"{m.size_mb:.1f} MB",
              m.date) for m in models]
    print("\n".join(table(rows, right=(2, 3, 5, 6))))
    return 0


def table(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    """Rows as lines of columns two spaces apart, each as wide as its widest cell; the
    columns in `right` (numbers) aligned right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


# bench.suite.SECTIONS' names (a test keeps them equal), here so `--help` need not load torch
BENCH_SECTIONS = ("machine", "extraction", "training", "baseline", "conversion", "quality",
                  "sharing", "corpus", "occlusion", "adapt")


def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="short runs of the speed sections "
                   "(under 3 minutes on a 2-core CPU; quality, sharing and corpus only when "
                   "named with --only); noisier figures")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="also write the figures here")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--only", nargs="+", metavar="SECTION", choices=BENCH_SECTIONS,
                   help="run only these sections (machine runs too, but for corpus, occlusion "
                   "or adapt alone): extraction training baseline conversion quality sharing "
                   "corpus occlusion (hands in front of the face; only when named) adapt (a "
                   "trained model on new people: as is, adapted, fresh; only when named)")
    p.add_argument("--clips", nargs="+", metavar="CLIP",
                   help="corpus section: only these clips (default: all); adapt section: the "
                   "new target people")
    p.add_argument("--minutes", type=float, default=2.0,
                   help="corpus and occlusion sections: minutes of training per pair "
                   "(default 2; 0 = Basic, what a user who sets nothing gets)")
    p.add_argument("--pairs", nargs="+", metavar="SOURCE:TARGET",
                   help="corpus section: swap these pairs of corpus clips instead (and extract "
                   "no clip but those --clips names)")
    p.add_argument("--pair", default="tune",
                   choices=("tune", "tune2", "check", "check2", "check3", "check4"),
                   help="quality section: the pair of videos (tune = the recipe was chosen on "
                   "it; check, check3, check4 = never used while tuning; check2 chose Basic's "
                   "count)")
    p.add_argument("--recipe", default="default", choices=("default", "before"),
                   help="quality section: the trainer's defaults, or the defaults before "
                   "issue 16 (lr 5e-5 constant, whole-face crop, no expression guide)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: shape only
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0 = torch's choice); 1 gives steadier figures on a "
                   "busy CPU")


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from localswap.bench import suite as bench
    if args.threads:
        torch.set_num_threads(args.threads)
    # Contact sheets and renders of the quality section go next to the JSON.
    out_dir = Path(args.json_file).resolve().parent if args.json_file else None
    corpus = {"minutes": args.minutes}
    if args.clips:
        from localswap.bench.corpus import CLIPS
        unknown = sorted(set(args.clips) - set(CLIPS))
        if unknown:
            raise UserError(f"unknown corpus clip {', '.join(unknown)}: choose from "
                            f"{', '.join(CLIPS)}")
        corpus["clips"] = args.clips
        corpus["targets"] = args.clips          # the adapt section's new people
        corpus["pairs"] = [(s, t) for s, t in _corpus_pairs() if {s, t} <= set(args.clips)]
    if args.pairs:
        pairs = [tuple(p.split(":", 1)) for p in args.pairs]
        from localswap.bench.corpus import CLIPS
        bad = [p for p, pair in zip(args.pairs, pairs) if len(pair) != 2
               or not set(pair) <= set(CLIPS)]
        if bad:
            raise UserError(f"--pairs {' '.join(bad)}: give SOURCE:TARGET, both corpus clips "
                            f"({', '.join(CLIPS)})")
        corpus["pairs"] = pairs
        corpus.setdefault("clips", [])      # the pairs alone, unless --clips names some
    results = bench.run(quick=args.quick, device=args.device, only=args.only, tiny=args.tiny,
                        out_dir=out_dir, pair=args.pair, recipe=args.recipe, corpus=corpus)
    print(bench.table(results))
    if results.get("corpus"):
        from localswap.bench.corpus import matrix
        print("\n" + matrix(results["corpus"]))
    if results.get("adapt"):
        print("\n" + results["adapt"]["table"])
    if args.json_file:
        bench.write_json(results, args.json_file)
    return 0


def _corpus_pairs() -> list:
    from localswap.bench.corpus import PAIRS
    return PAIRS


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", nargs="+", required=True,
                   help="videos, photos or folders of photos of the person put in (B)")
    p.add_argument("--target", required=True, help="the original video (or photo) (A)")
    p.add_argument("--output", required=True, help="the swapped render of the target")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="also write the report here")
    p.add_argument("--max-frames", type=int, default=120,
                   help="frame pairs to judge, evenly spaced (default: 120)")
    p.add_argument("--source-faces", type=int, default=30,
                   help="source faces behind the source's identity (default: 30)")
    p.add_argument("--detector", default="mediapipe", choices=("mediapipe", "facexlib"))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from localswap.evaluate import evaluate
    from localswap.progress import TqdmProgress

    bar = TqdmProgress("evaluate", unit="face")
    try:
        report = evaluate([Path(s) for s in args.source], Path(args.target), Path(args.output),
                          max_frames=args.max_frames, source_faces=args.source_faces,
                          detector=args.detector, progress=bar)
    finally:
        bar.close()
    print(report.table())
    print(report.sentence())
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return 0


COMMANDS = {
    "extract": ("find, align and save faces from videos or photos", _args_extract, cmd_extract),
    "train": ("train (or continue) a face-swap model on two facesets", _args_train, cmd_train),
    "gpu": ("show the GPU probe and the training plan for it", _args_gpu, cmd_gpu),
    "doctor": ("check that this machine's GPU works: every CUDA path, in under 5 minutes",
               _args_doctor, cmd_doctor),
    "bench": ("measure speed against this machine's limits and a faceswap baseline",
              _args_bench, cmd_bench),
    "download-weights": ("fetch facexlib's weight files (needs internet)",
                         _args_download_weights, cmd_download_weights),
    "convert": ("render a video or photos with a trained model's face (no training)",
                _args_convert, cmd_convert),
    "swap": ("extract both people, train (or continue) a model, convert: all in one",
             _args_swap, cmd_swap),
    "models": ("list, export or import trained models", _args_models, cmd_models),
    "evaluate": ("score a swap: identity, expression, pose, stability and seam",
                 _args_evaluate, cmd_evaluate),
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
