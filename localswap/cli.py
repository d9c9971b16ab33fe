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


COMMANDS = {
    "extract": ("find, align and save faces from videos or photos", _args_extract, cmd_extract),
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
