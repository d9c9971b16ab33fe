"""The settings as people meet them: a precision word means the same thing for training and
rendering."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from model_fixtures import tiny_model  # noqa: F401  (fixture)

from localswap import choices, cli
from localswap.settings import ConvertSettings, TrainSettings


def field_of(cls, name):
    return next(f for f in fields(cls) if f.name == name)


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
