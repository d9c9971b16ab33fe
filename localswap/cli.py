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


def _args_extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="video files, image files or folders of images")
    p.add_argument("--out", required=True, help="faceset folder to create or add to")
    ExtractSettings.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_extract(args: argparse.Namespace) -> int:
    from localswap.faces.extract import extract
    from localswap.progress import TqdmProgress

    settings = ExtractSettings.from_args(args)
    bar = TqdmProgress("extract", unit="frame")
    try:
        summary = extract(args.inputs, args.out, settings, progress=bar)
    finally:
        bar.close()
    print(json.dumps(summary.to_dict(), indent=1) if args.json else summary.report())
    return 0


def _args_download_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default="weights", help="where to put the weight files")


def cmd_download_weights(args: argparse.Namespace) -> int:
    from localswap.faces.facexlib_backend import download_weights

    for path in download_weights(Path(args.dir)):
        print(path)
    return 0


def _args_train(p: argparse.ArgumentParser) -> None:
    from localswap.settings import TrainSettings
    p.add_argument("--source", required=True, help="faceset of the person to put in (B)")
    p.add_argument("--target", required=True, help="faceset of the person to replace (A)")
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
        result = train(args.source, args.target, args.model, settings, progress=progress,
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

    probe = gpu.probe()
    plan = gpu.plan(probe)
    if args.json:
        print(json.dumps({"probe": probe.to_dict(), "plan": plan.to_dict()}, indent=1))
        return 0
    for d in probe.devices:
        util = f", {d.utilisation}% busy" if d.utilisation is not None else ""
        print(f"GPU {d.index}: {d.name}, {d.free_mb} of {d.total_mb} MiB free{util}, "
              f"driver {d.driver}")
    if probe.note:
        print(probe.note)
    print("training plan: " + plan.describe())
    return 0


COMMANDS = {
    "extract": ("find, align and save faces from videos or photos", _args_extract, cmd_extract),
    "train": ("train (or continue) a face-swap model on two facesets", _args_train, cmd_train),
    "gpu": ("show the GPU probe and the training plan for it", _args_gpu, cmd_gpu),
    "download-weights": ("fetch facexlib's weight files (needs internet)",
                         _args_download_weights, cmd_download_weights),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localswap",
                                     description="localswap face-swap studio")
    parser.add_argument("--version", action="version", version=f"localswap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


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
