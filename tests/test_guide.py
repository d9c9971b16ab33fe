"""The expression guide (issue 16): the decoders also see where the lids, brows and lips are.
Real faces from the packaged photos, the real trainer, converter and .dfm exporter."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from localswap.convert.render import convert
from localswap.convert.swapper import open_swapper
from localswap.errors import UserError
from localswap.faces.faceset import Faceset
from localswap.faces.landmarks import LEFT_EYE, MOUTH, RIGHT_EYE, expression_map
from localswap.models.dfm_export import export_dfm
from localswap.settings import ConvertSettings, TrainSettings
from localswap.train.data import FaceData
from localswap.train.models import build_model
from localswap.train.trainer import train
from model_fixtures import one_torch_thread

TINY = dict(resolution=64, width=8, batch=4, precision="fp32", device="cpu",
            save_minutes=0.0, preview_seconds=0.0, preview_every=5)


@pytest.fixture(scope="module")
def guided(tmp_path_factory, faceset_a, faceset_b):
    root = tmp_path_factory.mktemp("guide")
    src, tgt = shutil.copytree(faceset_b, root / "b"), shutil.copytree(faceset_a, root / "a")
    with one_torch_thread():
        train(src, tgt, root / "m", TrainSettings(iterations=10, guide=True, **TINY))
    return src, tgt, root / "m"


def test_the_map_draws_lids_and_lips_and_nothing_of_jaw_or_nose(faceset_a):
    fs = Faceset.load(faceset_a)
    lm = fs.faces[0].landmarks_array() * (128 / fs.size)
    m = expression_map(lm, 128)
    assert m.dtype == np.uint8 and m.shape == (128, 128)
    at = lambda idx: [m[int(round(y)), int(round(x))] for x, y in lm[idx]]  # noqa: E731
    assert min(at(RIGHT_EYE + LEFT_EYE + MOUTH)) > 100       # every lid and lip point is drawn
    assert max(at(list(range(0, 17)) + [30, 33])) == 0          # jaw and nose are not
    assert 0.01 < (m > 0).mean() < 0.15                          # lines, not filled shapes
    # The map follows the face: a mouth opened by 6 px moves the lower lip's line.
    opened = lm.copy()
    opened[[56, 57, 58, 65, 66, 67]] += [0, 6]
    assert (expression_map(opened, 128) != m).sum() > 20


def test_training_data_carries_the_map_and_the_guided_model_is_recorded(guided):
    src, tgt, model = guided
    data = FaceData(tgt, 64, torch.device("cpu"))
    assert data.faces.shape[1] == 7 and data.faces[:, 6].float().mean() > 1
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["guided"] is True and manifest["iteration"] == 10


def test_a_guided_model_renders_a_video_and_needs_landmarks(guided, video_a, tmp_path):
    _, _, model = guided
    result = convert(video_a, model, tmp_path / "out.mp4", ConvertSettings(device="cpu"))
    assert result.frames > 0 and result.faces > 0
    swapper = open_swapper(model, "cpu", "auto")
    crops = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(UserError, match="expression-guided"):
        swapper(crops)
    # The guide steers the output: the same face with another expression map renders otherwise.
    fs = Faceset.load(guided[1])
    lm = fs.faces[0].landmarks_array() * (64 / fs.size)
    shut = lm.copy()
    shut[[37, 38, 43, 44]] = lm[[41, 40, 47, 46]]              # upper lids onto the lower ones
    rgb_open, _ = swapper(crops, [lm])
    rgb_shut, _ = swapper(crops, [shut])
    assert not np.array_equal(rgb_open, rgb_shut)


def test_guide_is_fixed_once_the_model_exists_and_cannot_go_to_dfm(guided, tmp_path):
    src, tgt, model = guided
    with one_torch_thread():
        more = train(src, tgt, model, TrainSettings(iterations=12, guide=False, **TINY))
    assert more.iteration == 12
    assert json.loads((model / "manifest.json").read_text())["guided"] is True
    out = tmp_path / "m.dfm"
    with pytest.raises(UserError, match="expression-guided.*--no-guide"):
        export_dfm(model, out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_unguided_model_ignores_maps_and_a_guided_one_refuses_none():
    x = torch.rand(2, 3, 64, 64)
    plain, guided = build_model("localswap", 64, 8), build_model("localswap", 64, 8, guided=True)
    assert not plain.guided and guided.guided
    assert plain.decode(plain.encode(x), "b", torch.rand(2, 1, 64, 64))[0].shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="expression map"):
        guided.decode(guided.encode(x), "b")
