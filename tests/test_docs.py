"""The user docs keep up with the code: every command and option of the real parsers is in
docs/cli.md, the user's pages speak no team jargon, and the README's links lead somewhere."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_DOCS = ("README.md", "docs/cli.md", "docs/quality.md")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """The long options a user can type (hidden ones, argparse.SUPPRESS, left out)."""
    return {flag for action in parser._actions if action.help != argparse.SUPPRESS
            for flag in action.option_strings if flag.startswith("--") and flag != "--help"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _launch_parser() -> argparse.ArgumentParser:
    sys.path.insert(0, str(ROOT))
    try:
        import launch                      # building its parser starts no server
    finally:
        sys.path.remove(str(ROOT))
    return launch.build_parser()


def test_cli_reference_covers_every_command_and_option():
    from localswap.cli import build_parser
    text = (ROOT / "docs" / "cli.md").read_text()
    commands = _subcommands(build_parser())
    assert {"extract", "train", "convert", "swap", "models", "evaluate", "gpu", "doctor",
            "bench", "download-weights"} <= set(commands)
    missing = [name for name in commands if f"## {name}" not in text]
    assert not missing, f"commands without a section in docs/cli.md: {missing}"
    for name, sub in commands.items():
        absent = sorted(o for o in _options(sub) if not re.search(rf"`{o}[` =]", text))
        assert not absent, f"`{name}` options missing from docs/cli.md: {absent}"
    launch_absent = sorted(o for o in _options(_launch_parser())
                           if not re.search(rf"`{o}[` =]", text))
    assert not launch_absent, f"launch.py options missing from docs/cli.md: {launch_absent}"


def _jargon() -> list[str]:
    """Patterns a user's page must not show: team diary words, and the names the benchmarks
    give their clips and pairs (read from the code, so a new one is covered)."""
    from localswap.bench.corpus import CLIPS
    from localswap.bench.quality import MEDIA, PAIRS
    ordinary = {"woman", "bald", "blonde", "check", "tune", "backlit", "hoodie", "presenter"}
    names = (set(MEDIA) | set(PAIRS) | set(CLIPS)) - ordinary
    return [r"\bsessions? \d+", r"\bsession-\d+", r"\bissues? #?\d+", r"\bturn \d+",
            r"\bsrcA\b", r"\btgtB\b", r"\b\w+-on-\w+-(source|target)\b",
            *(rf"\b{re.escape(n)}\b" for n in sorted(names))]


@pytest.mark.parametrize("page", USER_DOCS)
def test_user_pages_speak_no_team_jargon(page):
    text = (ROOT / page).read_text()
    found = sorted({m.group(0) for p in _jargon() for m in re.finditer(p, text, re.I)})
    assert not found, f"{page} speaks team jargon: {found}"


def test_jargon_check_catches_what_it_should():
    """The patterns above are not vacuous: they flag the phrases the old README had."""
    old = "it made check4's and check2's open mouths real (session 9, issue 16)"
    hits = {m.group(0) for p in _jargon() for m in re.finditer(p, old, re.I)}
    assert hits == {"check4", "check2", "session 9", "issue 16"}


@pytest.mark.parametrize("page", ("README.md", "docs/cli.md", "docs/quality.md",
                                  "docs/benchmarks.md"))
def test_relative_links_point_to_files(page):
    path = ROOT / page
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", path.read_text())
    local = [link.split("#")[0] for link in links
             if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    assert page != "README.md" or len(local) >= 5      # the README links its docs and picture
    broken = [link for link in local if link and not (path.parent / link).exists()]
    assert not broken, f"{page} links to missing files: {broken}"


def test_readme_keeps_the_test_command():
    """CI and contributors read the test command off the README."""
    assert "Tests: `python -m pytest`" in (ROOT / "README.md").read_text()
