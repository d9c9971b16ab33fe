"""What the command line prints: the GPU plan's precision is the trainer's, the model list
has a header and columns, counts read as words, MediaPipe's start-up lines stay off the
progress bar, and the web app's upload limit flag has a name of its own."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from model_fixtures import tiny_model  # noqa: F401  (fixture)

from localswap import cli
from localswap.convert.frames import ConvertResult
from localswap.progress import duration_text, plural
from localswap.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_command_says_the_precision_training_used(tiny_model, capsys):  # noqa: F811
    """One source of truth: the tiny model was trained on this machine's CPU with the
    default precision; `gpu` must name the same one (the app and the job log do)."""
    trained = json.loads((tiny_model / "manifest.json").read_text())
    assert trained["device"] == "cpu"
    assert cli.main(["gpu", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["device"] == "cpu" and plan["precision"] == trained["precision"]
    assert cli.main(["gpu"]) == 0
    assert f"{trained['precision']} on cpu" in capsys.readouterr().out


def test_models_prints_a_header_and_aligned_columns(tiny_model, tmp_path, capsys):  # noqa: F811
    ws = Workspace(tmp_path / "ws")
    for name in ("a", "a much longer model name"):
        shutil.copytree(tiny_model, ws.path("models", name))
    assert cli.main(["models", "--workspace", str(ws.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["NAME", "ARCH", "PX"]
    # Every column starts where its header does: ARCH, and the SOURCE -> TARGET column.
    for header in ("ARCH", "SOURCE -> TARGET"):
        at = lines[0].index(header)
        for row in lines[1:]:
            assert row[at - 2:at] == "  " and row[at] != " ", (header, row)
    # Right-aligned numbers end where their header ends.
    end = lines[0].index("ITERATIONS") + len("ITERATIONS")
    for row in lines[1:]:
        assert row[:end].endswith("12") and row[end] == " ", row


def test_counts_and_durations_read_as_words():
    assert [plural(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]
    one = ConvertResult(out="o.mp4", frames=1, frames_with_faces=1, faces=1)
    assert "o.mp4: 1 frame, 1 face swapped in 1 frame (" in one.report()
    assert [duration_text(s) for s in (4.24, 42, 185, 3720, None)] == \
        ["4.2 s", "42 s", "3 min 05 s", "1 h 02 min", "—"]


def test_extract_progress_shows_no_mediapipe_lines(video_a, tmp_path):
    """MediaPipe's C++ side writes its start-up lines (TFLite's XNNPACK delegate, absl
    warnings) to the stderr the progress bar draws on; the bar must be all there is."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "localswap", "extract", str(video_a),
                          "--out", str(tmp_path / "fs"), "--size", "128", "--every", "4"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "faces" in out.stderr and "extract" in out.stderr      # the bar itself
    for noise in ("XNNPACK", "absl::InitializeLog", "W0000", "I0000",
                  "inference_feedback_manager", "landmark_projection_calculator"):
        assert noise not in out.stderr, out.stderr[-2000:]
    assert re.search(r"kept \d+ faces? from 12 frames", out.stdout), out.stdout


def _launch():
    spec = importlib.util.spec_from_file_location("launch", ROOT / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_upload_limit_flag_is_max_upload_minutes_and_the_old_one_still_works(capsys):
    launch = _launch()
    args = launch.build_parser().parse_args(["--max-upload-minutes", "4"])
    launch.upload_minutes(args)
    assert args.max_minutes == 4 and capsys.readouterr().err == ""
    args = launch.build_parser().parse_args(["--max-minutes", "3"])
    launch.upload_minutes(args)
    assert args.max_minutes == 3
    assert "--max-minutes is now --max-upload-minutes" in capsys.readouterr().err
    assert "--max-upload-minutes" in launch.build_parser().format_help()
    assert "--max-minutes " not in launch.build_parser().format_help()


def test_the_localswap_command_works_from_any_folder(tmp_path):
    """`pip install .` gives a `localswap` command; run outside the checkout it finds the
    package it installed (a copy of the checkout is built, so no build files land in it)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    shutil.copytree(root / "localswap", src / "localswap",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([str(site / "bin" / "localswap"), "--help"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: localswap") and "swap" in out.stdout
    assert "No module named" not in out.stderr


def test_bench_only_with_an_unknown_section_fails_and_names_the_known_ones(capsys):
    """`bench --only NAME` with a name it does not know exits non-zero with a sentence listing
    the sections, before any benchmark runs; the sections the CLI offers are the suite's."""
    import pytest

    from localswap.bench import suite
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--only", "machin"])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "invalid choice: 'machin'" in err
    assert all(name in err for name in suite.SECTIONS)
    assert cli.BENCH_SECTIONS == tuple(suite.SECTIONS)
    # the suite itself refuses too (the CLI is not its only caller), naming every section
    from localswap.errors import UserError
    with pytest.raises(UserError) as refused:
        suite.run(only=["machine", "corpuss"], progress=lambda _: None)
    assert str(refused.value).startswith("unknown bench section corpuss: the sections are ")
    assert all(name in str(refused.value) for name in suite.SECTIONS)


def test_bench_also_convert_refuses_a_setting_it_does_not_know_before_running(capsys):
    """`bench --also-convert` takes convert settings by name, typed and checked as `convert`
    checks them: a wrong one is one sentence and exit code 2, before any section runs."""
    for given, said in ((["mouth=7"], "mouth must be at most 1.0, not 7.0"),
                        (["nope=1"], "--also-convert nope=1: give SETTING=VALUE, a convert "
                                     "setting ("),
                        (["erode=three"],
                         "--also-convert erode=three: 'three' is not a whole number")):
        assert cli.main(["bench", "--only", "corpus", "--also-convert", *given]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and err.count("\n") == 1, err
