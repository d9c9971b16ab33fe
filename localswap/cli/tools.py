"""The CLI's tool commands: `models`, `gpu`, `doctor`, `bench`, `evaluate` and
`download-weights` (the pipeline's own commands are in cli/__init__.py, which lists these).

Each command is a pair: `_args_NAME(parser)` declares its flags, `cmd_NAME(args) -> int` runs it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from localswap.errors import UserError

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


def workspace_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", default="workspace",
                   help="workspace folder (facesets/, models/, outputs/) (default: workspace)")


def _args_models(p: argparse.ArgumentParser) -> None:
    workspace_flag(p)
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
    p.add_argument("--also-convert", nargs="+", metavar="SETTING=VALUE",
                   help="corpus section: render each pair's target a second time from the "
                   "same model with these convert settings (e.g. mouth=1), judged the same "
                   "way: a convert default weighed on the whole corpus in one run")
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
    if args.also_convert:
        corpus["also_convert"] = _convert_settings(args.also_convert)
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


def _convert_settings(given: list[str]) -> dict:
    """["mouth=1", "color=lct"] -> {"mouth": 1.0, "color": "lct"}, typed as ConvertSettings'
    defaults are, and checked against its ranges and choices."""
    import dataclasses

    from localswap.settings import ConvertSettings
    defaults = ConvertSettings()
    fields = {f.name: f for f in dataclasses.fields(ConvertSettings)}
    out = {}
    for item in given:
        key, _, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in fields or not value:
            raise UserError(f"--also-convert {item}: give SETTING=VALUE, a convert setting "
                            f"({', '.join(sorted(fields))})")
        kind = ConvertSettings.value_type(fields[key])      # as the `convert` flag's
        try:
            out[key] = kind(value) if kind is not bool else value.lower() in ("1", "true", "on")
        except ValueError:
            what = "whole number" if kind is int else "number"
            raise UserError(f"--also-convert {item}: {value!r} is not a {what}") from None
    dataclasses.replace(defaults, **out).validate()     # out of range: one sentence, now
    return out


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


# name -> (help, declare flags, run); cli/__init__.py's COMMANDS list them among its own
TOOLS = {
    "gpu": ("show the GPU probe and the training plan for it", _args_gpu, cmd_gpu),
    "doctor": ("check that this machine's GPU works: every CUDA path, in under 5 minutes",
               _args_doctor, cmd_doctor),
    "bench": ("measure speed against this machine's limits and a faceswap baseline",
              _args_bench, cmd_bench),
    "download-weights": ("fetch facexlib's weight files (needs internet)",
                         _args_download_weights, cmd_download_weights),
    "models": ("list, export or import trained models", _args_models, cmd_models),
    "evaluate": ("score a swap: identity, expression, pose, stability and seam",
                 _args_evaluate, cmd_evaluate),
}
