"""The expression guide (issue 16): the decoders also see where the lids, brows and lips are.
Real faces from the packaged photos, the real trainer, converter and .dfm exporter."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from localswap.convert.render import convert
from localswap.convert.swapper import open_swapper
from localswap.errors import UserError
from localswap.faces.faceset import Faceset
from localswap.faces.landmarks import (LEFT_EYE, MOUTH, RIGHT_EYE, expression_map, eye_ratio,
                                       region_masks)
from localswap.faces.retarget import expression_stats, retarget
from localswap.models.dfm_export import export_dfm
from localswap.settings import ConvertSettings, TrainSettings
from localswap.train.data import FaceData
from localswap.train.blink import blink
from localswap.train.hide import hide_features
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
    m = expression_map(lm, 128, filled=False)
    assert m.dtype == np.uint8 and m.shape == (128, 128)
    at = lambda idx: [m[int(round(y)), int(round(x))] for x, y in lm[idx]]  # noqa: E731
    assert min(at(RIGHT_EYE + LEFT_EYE + MOUTH)) > 100       # every lid and lip point is drawn
    assert max(at(list(range(0, 17)) + [30, 33])) == 0          # jaw and nose are not
    assert 0.01 < (m > 0).mean() < 0.15                          # lines, not filled shapes
    # The map follows the face: a mouth opened by 6 px moves the lower lip's line.
    opened = lm.copy()
    opened[[56, 57, 58, 65, 66, 67]] += [0, 6]
    assert (expression_map(opened, 128, filled=False) != m).sum() > 20


def test_the_filled_map_paints_openings_that_shrink_as_an_eye_shuts(faceset_a):
    fs = Faceset.load(faceset_a)
    lm = fs.faces[0].landmarks_array() * (64 / fs.size)
    lines, filled = expression_map(lm, 64, filled=False), expression_map(lm, 64)
    assert (filled >= lines).all() and filled.sum() > lines.sum()     # lines plus openings
    shut = lm.copy()
    for idx in (RIGHT_EYE, LEFT_EYE):         # upper lid onto the lower: the eye shut
        shut[[idx[1], idx[2]]] = shut[[idx[5], idx[4]]]
    eyes = region_masks(lm, 64)["eyes"] > 0
    painted = lambda pts: float(expression_map(pts, 64)[eyes].sum())   # noqa: E731
    # at 64 px the lines of an open and a shut eye differ by a pixel or two; the filled
    # opening gives the decoder's coarse stages (8-32 px, the map averaged down) a value
    # that falls as the eye shuts
    assert painted(shut) < 0.8 * painted(lm)
    coarse = lambda m: cv2.resize(m.astype(np.float32), (8, 8), interpolation=cv2.INTER_AREA)  # noqa: E731
    drop_filled = np.abs(coarse(expression_map(lm, 64)) - coarse(expression_map(shut, 64))).sum()
    drop_lines = np.abs(coarse(lines) - coarse(expression_map(shut, 64, filled=False))).sum()
    assert drop_filled > 1.5 * drop_lines


def test_training_data_carries_the_map_and_the_guided_model_is_recorded(guided):
    src, tgt, model = guided
    data = FaceData(tgt, 64, torch.device("cpu"))
    assert data.faces.shape[1] == 7 and data.faces[:, 6].float().mean() > 1
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["guided"] is True and manifest["iteration"] == 10
    assert manifest["guide_hides"] is True and manifest["guide_map"] == "filled"
    assert manifest["lr"] == pytest.approx(1e-3)            # the automatic rate for 64 px
    # each person's expression statistics, for conversion to map the target's onto the source's
    for side, data in (("a", data), ("b", FaceData(src, 64, torch.device("cpu")))):
        stats = manifest["expression"][side]
        assert stats["faces"] == data.real and len(stats["median"]) == 68
        assert 0.05 < stats["eye"] < 0.5                           # an open eye's aspect ratio
        # synthetic blinks follow the real faces: a quarter more, shut or nearly
        assert len(data) == data.real + round(0.25 * data.real)
        lines = data.faces[data.real:, 6].float().mean()
        assert lines > 1 and data.weights.shape[0] == len(data)


def _crop(faceset, size: int):
    fs = Faceset.load(faceset)
    img = cv2.imread(str(fs.image_path(fs.faces[0])), cv2.IMREAD_COLOR)[:, :, ::-1]
    crop = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return crop, fs.faces[0].landmarks_array() * (size / fs.size)


def test_hiding_leaves_nothing_of_the_eyes_and_mouth_and_keeps_the_rest(faceset_a):
    crop, lm = _crop(faceset_a, 64)
    masks = region_masks(lm, 64)
    x = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255
    regions = torch.from_numpy(np.stack([masks["eyes"], masks["mouth"]]))[None].float() / 255
    hidden = hide_features(x, regions)
    inside = regions.amax(1, keepdim=True).expand_as(x) > 0
    # whatever the eyes and the mouth hold (here: noise) does not reach the encoder
    y = x.clone()
    y[inside] = torch.rand(int(inside.sum()))
    assert torch.allclose(hide_features(y, regions), hidden, atol=1e-5)
    assert (hidden - x)[inside].abs().mean() > 0.02               # they were replaced
    # far from them the face is untouched
    near = cv2.dilate(np.maximum(masks["eyes"], masks["mouth"]), np.ones((9, 9), np.uint8))
    far = torch.from_numpy(near == 0)[None, None].expand_as(x)
    assert torch.equal(hidden[far], x[far])


def test_retarget_puts_the_targets_movement_in_the_sources_geometry_and_scale(
        faceset_a, faceset_b):
    stats = {}
    for side, path in (("a", faceset_a), ("b", faceset_b)):
        fs = Faceset.load(path)
        stats[side] = expression_stats([f.landmarks_array() / fs.size for f in fs.faces])
    stats["b"]["eye"] = 1.5 * stats["a"]["eye"]       # her eyes rest wider open than his
    _, lm = _crop(faceset_a, 64)
    out = retarget(lm, 64, stats["a"], stats["b"])
    # the jaw (not drawn, not moved) lands on the source's median jaw plus the target's offset
    expect = (np.array(stats["b"]["median"]) + lm / 64 - np.array(stats["a"]["median"]))[:17]
    assert np.allclose(out[:17] / 64, expect, atol=1e-5)
    # eye openings scale by the ratio of the medians: his blink is her blink, his open hers
    for k in (0.2, 0.5, 1.0, 1.5):
        moved = lm.copy()
        for eye in (RIGHT_EYE, LEFT_EYE):
            c = moved[eye][:, 1].mean()
            moved[eye, 1] = c + (moved[eye, 1] - c) * k
        his = eye_ratio(moved[RIGHT_EYE])
        hers = eye_ratio(retarget(moved, 64, stats["a"], stats["b"])[RIGHT_EYE])
        assert hers == pytest.approx(1.5 * his, abs=0.01)


def test_a_synthetic_blink_shuts_the_eyes_and_leaves_the_rest(faceset_b):
    crop, lm = _crop(faceset_b, 64)
    opened = eye_ratio(lm[RIGHT_EYE])
    masks = region_masks(lm, 64)
    near = cv2.dilate(masks["eyes"], np.ones((9, 9), np.uint8)) > 0
    ratios = []
    for closure in (0.6, 1.0):
        shut, moved = blink(crop, lm, closure)
        ratios.append(eye_ratio(moved[RIGHT_EYE]))
        assert np.array_equal(shut[~near], crop[~near])           # only around the eyes
        diff = np.abs(shut.astype(int) - crop.astype(int))[masks["eyes"] > 0].mean()
        assert diff > 3                                            # the eyes did change
        assert np.allclose(moved[:36], lm[:36], atol=1e-4)       # nothing but the lids moves
        assert np.allclose(moved[48:], lm[48:], atol=1e-4)
    assert ratios[1] < 0.03 < ratios[0] < opened                  # shut, and half shut


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
    # ... and the crop's own eyes and mouth are hidden from it: painting them changes nothing
    crop, lm = _crop(guided[1], 64)
    masks = region_masks(lm, 64)
    painted = crop.copy()
    painted[np.maximum(masks["eyes"], masks["mouth"]) > 0] = (255, 0, 255)
    a, _ = swapper(crop[None], [lm])
    b, _ = swapper(painted[None], [lm])
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


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


def test_a_model_from_before_filled_maps_keeps_its_lines(guided, tmp_path):
    """Guided models of session 5 learned from line maps; their manifests have no
    "guide_map". Resumed, they train on lines (their own cache), and conversion draws lines."""
    src, tgt, model = guided
    old = shutil.copytree(model, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["guide_map"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    crop, lm = _crop(tgt, 64)
    # the same weights, the map drawn as each manifest says
    lines = open_swapper(old, "cpu")(crop[None], [lm])[0].astype(int)
    filled = open_swapper(model, "cpu")(crop[None], [lm])[0].astype(int)
    assert np.abs(lines - filled).max() > 0
    with one_torch_thread():
        train(src, tgt, old, TrainSettings(iterations=manifest["iteration"] + 2, **TINY))
    assert json.loads((old / "manifest.json").read_text())["guide_map"] == "lines"
    assert (Faceset.load(tgt).path / ".cache" / "train_64_lines.npy").exists()


def test_an_unguided_model_ignores_maps_and_a_guided_one_refuses_none():
    x = torch.rand(2, 3, 64, 64)
    plain, guided = build_model("localswap", 64, 8), build_model("localswap", 64, 8, guided=True)
    assert not plain.guided and guided.guided
    # hiding goes with the guide only, and a guided model made before it existed stays as it was
    assert not guided.hides and not build_model("localswap", 64, 8, hides=True).hides
    assert build_model("localswap", 64, 8, guided=True, hides=True).hides
    assert plain.decode(plain.encode(x), "b", torch.rand(2, 1, 64, 64))[0].shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="expression map"):
        guided.decode(guided.encode(x), "b")
