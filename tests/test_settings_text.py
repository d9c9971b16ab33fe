"""The settings as people meet them: the app's Advanced fields speak a user's words (no command
line flags, file paths or team jargon), every field the app offered is still there, once, and
a precision word means the same thing for training and rendering."""
from __future__ import annotations

import re
from dataclasses import fields

import numpy as np
import pytest
import torch

from model_fixtures import tiny_model  # noqa: F401  (fixture)

from localswap import choices, cli
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings

# words a user of the app does not know: the code's and the team's, and where files live
JARGON = ("planner", "laplacian", "benchmarks", "time to quality", "encoder", "decoder",
          "adam", "exponential", "autocast", "landmark", "covariance", "lab mean", "torch",
          "mediapipe's", "h.264", "crf", "ibug", "faceset", "manifest", "iteration k",
          "n iterations", "every k", "0 = planner", "list-people", "check4", "session")
FLAG = re.compile(r"(?<![\w-])--?[a-z][\w-]*")
PATH = re.compile(r"[\w.-]+/[\w.-]+|\.(md|py|json|safetensors|zip|dfm|mp4)\b|`")


def advanced_fields():
    from localswap.ui.new_swap import ADVANCED_GROUPS, ADVANCED_OPEN
    pairs = list(ADVANCED_OPEN)
    for _, _, group in ADVANCED_GROUPS:
        pairs += group
    return pairs


def field_of(cls, name):
    return next(f for f in fields(cls) if f.name == name)


def problems(text: str) -> list[str]:
    low = text.lower()
    found = [f"jargon {w!r}" for w in JARGON if w in low]
    found += [f"flag {m.group()!r}" for m in FLAG.finditer(text)]
    found += [f"path {m.group()!r}" for m in PATH.finditer(text)]
    return found


def test_the_checker_finds_a_flag_a_path_and_jargon():
    assert problems("0 = planner") == ["jargon 'planner'", "jargon '0 = planner'"]
    assert problems("exported to .dfm; --no-guide") == ["flag '--no-guide'", "path '.dfm'"]
    assert problems("(docs/benchmarks.md, time to quality)")[:2] == [
        "jargon 'benchmarks'", "jargon 'time to quality'"]
    assert problems("Laplacian variance of a 128 px crop") == ["jargon 'laplacian'"]
    assert problems("Lower it if the face looks grainy; 0 is off (bf16, fp16).") == []


def test_the_apps_advanced_fields_speak_a_users_words():
    bad = []
    for cls, name in advanced_fields():
        f = field_of(cls, name)
        for what, text in (("help", f.metadata["help"]), ("label", f.metadata["label"])):
            assert text, f"{cls.__name__}.{name} has no {what}"
            bad += [f"{cls.__name__}.{name} {what}: {p}: {text}" for p in problems(text)]
        # the help says what it does and ends as a sentence a person reads
        assert f.metadata["help"][0].isupper() and f.metadata["help"].endswith((".", ")")), name
    assert not bad, "\n".join(bad)


def test_advanced_shows_every_setting_it_showed_before_and_each_once():
    pairs = advanced_fields()
    assert len(pairs) == len(set(pairs)), "a field is shown twice"
    shown = {cls: {n for c, n in pairs if c is cls} for cls in (TrainSettings, ConvertSettings,
                                                                ExtractSettings)}
    hidden = {TrainSettings: {"device", "init_from"},        # "Start from" is its own field
              ConvertSettings: {"device", "start", "end", "person", "person_photo"},
              ExtractSettings: {"device", "role", "person", "person_photo"}}
    for cls, names in shown.items():
        assert names == {f.name for f in fields(cls)} - hidden[cls], cls.__name__


def test_the_cli_keeps_its_flag_level_notes(capsys):
    """The command line still says what 0 means and which flag goes with a setting."""
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 = sized for this device" in out
    assert "--no-guide for a model that can be exported to .dfm" in out
    assert "docs/benchmarks.md" in out            # where Basic's count comes from


def test_precision_is_one_choice_list_for_training_and_rendering(capsys):
    def choices_of(cls):
        return field_of(cls, "precision").metadata["choices"]
    assert choices_of(TrainSettings) is choices_of(ConvertSettings) is choices.PRECISIONS
    assert field_of(TrainSettings, "precision").metadata["help"] == \
        field_of(ConvertSettings, "precision").metadata["help"]
    for command in ("swap", "train", "convert"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--precision {auto,fp32,bf16,fp16}" in text, command
    # `swap --precision bf16` sets the training's and the render's, the same word for both
    args = cli.build_parser().parse_args(["swap", "--source", "b.mp4", "--target", "a.mp4",
                                          "--out", "o.mp4", "--precision", "bf16"])
    assert TrainSettings.from_args(args).precision == "bf16"
    assert ConvertSettings.from_args(args).precision == "bf16"


def test_rendering_runs_in_the_precision_asked_for(tiny_model):  # noqa: F811
    from localswap.convert.swapper import Swapper, half_dtype, run_dtype
    cpu = torch.device("cpu")
    assert run_dtype(cpu, "auto") == half_dtype(cpu)
    assert run_dtype(cpu, "fp32") is None
    assert run_dtype(cpu, "bf16") is torch.bfloat16 and run_dtype(cpu, "fp16") is torch.float16
    crops = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), np.uint8)
    out = {}
    for word in ("fp32", "bf16"):
        swapper = Swapper(tiny_model, "cpu", word)
        assert swapper.dtype is run_dtype(cpu, word)
        lm = [np.full((68, 2), 32.0, np.float32) for _ in crops]
        faces, _ = swapper(crops, lm)
        assert faces.shape == crops.shape and faces.dtype == np.uint8
        out[word] = faces.astype(np.int16)
    # the same model in 16 bits: close to fp32, not identical (it did run in bf16)
    diff = np.abs(out["fp32"] - out["bf16"])
    assert 0 < diff.mean() < 8, diff.mean()
