"""Training parts on real faces: models, augmentation, loss, data cache, checkpoints, plateau."""
from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import torch

from localswap.errors import UserError
from localswap.faces.faceset import Faceset, yaw_bin
from localswap.train import checkpoint
from localswap.train.augment import AugmentSettings, augment
from localswap.train.data import FaceData, yaw_weights
from localswap.train.losses import dssim, face_loss
from localswap.train.models import RESOLUTIONS, Original, build_model, count_params
from localswap.train.plateau import fit_decay
from model_fixtures import one_torch_thread

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a small shared CPU, two threads spin-wait on each other (10x slower
    under load, measured)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def faces_a(tmp_path_factory, faceset_a):
    """A private copy: the trainer writes its cache into the faceset folder."""
    return shutil.copytree(faceset_a, tmp_path_factory.mktemp("parts") / "a")


@pytest.fixture(scope="module")
def data_a(faces_a):
    return FaceData(faces_a, 64, CPU)


def test_colour_match_gives_the_source_the_targets_colours(data_a, faceset_b):
    """Grace Hopper's faces (grey-blue photo) take the astronaut's warm colours inside the
    face mask, as the face at the same place in the other batch has them; the shapes stay."""
    import cv2
    from localswap.train.augment import match_colours
    data_b = FaceData(faceset_b, 64, CPU)
    a, b = data_a.faces[:4, :4], data_b.faces[:4, :4]
    out = match_colours(b, a)
    assert out.dtype == torch.uint8 and out.shape == b.shape
    assert torch.equal(out[:, 3:], b[:, 3:])             # the masks are not touched

    def lab_mean(batch, i):
        rgb = batch[i, :3].permute(1, 2, 0).numpy()
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        return lab[batch[i, 3].numpy() > 127].mean(0)
    for i in range(4):
        before = np.abs(lab_mean(b, i) - lab_mean(a, i)).max()
        after = np.abs(lab_mean(out, i) - lab_mean(a, i)).max()
        assert after < 1.5 and after < before / 3, (before, after)
    # the face's own lightness pattern survives: it is a colour move, not a new face
    grey = lambda t: t[:, :3].float().mean(1).flatten(1)           # noqa: E731
    corr = [np.corrcoef(grey(out)[i], grey(b)[i])[0, 1] for i in range(4)]
    assert min(corr) > 0.95


# -- models -------------------------------------------------------------------------------
def test_original_has_the_reference_layer_sizes():
    with torch.device("meta"):
        m = Original(128)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items() if k.endswith("weight")}
    assert [shapes[f"encoder.{i}.conv.weight"] for i in range(4)] == [
        (128, 3, 5, 5), (256, 128, 5, 5), (512, 256, 5, 5), (1024, 512, 5, 5)]
    assert shapes["encoder.4.fc1.weight"] == (1024, 4 * 4 * 1024)      # dense 1024
    assert shapes["encoder.4.fc2.weight"] == (4 * 4 * 1024, 1024)      # dense 4x4x1024
    assert shapes["encoder.5.conv.weight"] == (512 * 4, 1024, 3, 3)    # upscale 512
    for side in "ab":                                                  # upscale 256/128/64
        assert [shapes[f"decoder_{side}.blocks.{i}.conv.weight"][:2] for i in range(3)] == [
            (256 * 4, 512), (128 * 4, 256), (64 * 4, 128)]
        assert shapes[f"decoder_{side}.rgb.weight"] == (3, 64, 5, 5)
    assert m.decoder_a.mask is None


@pytest.mark.parametrize("res", RESOLUTIONS)
def test_localswap_scales_to_every_resolution(res):
    with torch.device("meta"):
        m = build_model("localswap", res, 16, channels_last=False)
        x = torch.empty(2, 3, res, res)
        rgb_a, mask_a, rgb_b, mask_b = m(x, x)
    assert rgb_a.shape == rgb_b.shape == (2, 3, res, res)
    assert mask_a.shape == mask_b.shape == (2, 1, res, res)


def test_models_run_channels_last_under_autocast(data_a):
    m = build_model("localswap", 64, 8)
    assert m.decoder_a.rgb.weight.is_contiguous(memory_format=torch.channels_last)
    x = data_a.faces[:2, :3].float() / 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgb, mask, _, _ = m(x, x)
    assert rgb.dtype == mask.dtype == torch.float32 and torch.isfinite(rgb).all()
    assert 0 <= rgb.min() and rgb.max() <= 1
    with pytest.raises(ValueError, match="64 px only"):
        build_model("original", 128)
    assert count_params(build_model("original", 64, 16)) < count_params(Original(32))


# -- augmentation -------------------------------------------------------------------------
def test_augment_is_seeded_and_the_target_is_the_unwarped_face(data_a):
    batch = data_a.faces[:4]
    gen = torch.Generator()

    def run(**kw):
        gen.manual_seed(7)
        return augment(batch, gen, AugmentSettings(**kw))
    inp, tgt, masks = run()
    inp2, tgt2, masks2 = run()
    assert torch.equal(inp, inp2) and torch.equal(tgt, tgt2) and torch.equal(masks, masks2)
    assert inp.shape == tgt.shape == (4, 3, 64, 64)
    assert masks.shape == (4, 4, 64, 64)        # face hull, eyes, mouth, expression lines
    # Same affine, same (no) colour: the warp is the only difference between input and target.
    inp_w, tgt_w, _ = run(colour=0.0)
    inp_0, tgt_0, _ = run(colour=0.0, warp=0.0)
    assert torch.equal(tgt_w, tgt_0) and torch.equal(inp_0, tgt_0)
    assert (inp_w - tgt_w).abs().mean() > 0.01
    # Switched off, input and target are the faces as stored.
    inp_off, tgt_off, _ = run(enabled=False)
    assert torch.equal(inp_off, tgt_off)
    assert torch.equal((inp_off * 255).round().to(torch.uint8), batch[:, :3])
    # Masks follow the face: eyes, mouth and the expression lines lie inside the face hull.
    face, eyes_mouth, lines = masks[:, 0], masks[:, 1:3].amax(1), masks[:, 3]
    assert 0.15 < face.mean() < 0.8
    assert (eyes_mouth * (1 - face)).sum() < 0.05 * eyes_mouth.sum()
    assert 0 < lines.sum() and (lines * (1 - face)).sum() < 0.05 * lines.sum()


# -- loss ---------------------------------------------------------------------------------
def test_loss_is_zero_for_a_perfect_face_and_weights_eyes_and_mouth(data_a):
    x = data_a.faces[:4].float() / 255
    img, masks = x[:, :3], x[:, 3:]
    assert dssim(img, img).abs().max() < 1e-5
    assert face_loss(img, masks[:, :1], img, masks) < 1e-5
    noisy_eyes = img + 0.2 * masks[:, 1:2]            # an error only around the eyes
    plain = face_loss(noisy_eyes, None, img, masks, eyes_mouth_weight=0.0)
    weighted = face_loss(noisy_eyes, None, img, masks, eyes_mouth_weight=3.0)
    assert plain > 0 and weighted > plain * 1.5
    # The same error outside the face hull barely counts (only the anti-aliased edge).
    outside = img + 0.2 * (1 - masks[:, :1])
    inside = img + 0.2 * masks[:, :1]
    assert face_loss(outside, None, img, masks) < 0.1 * face_loss(inside, None, img, masks)


# -- data ---------------------------------------------------------------------------------
def test_faceset_cache_is_built_reused_and_rebuilt(faces_a, tmp_path):
    folder = shutil.copytree(faces_a, tmp_path / "fs", ignore=shutil.ignore_patterns(".cache"))
    first = FaceData(folder, 64, CPU)
    assert "built cache" in first.note and first.faces.dtype == torch.uint8
    assert first.faces.shape[1:] == (7, 64, 64)     # RGB, 3 masks, expression lines
    again = FaceData(folder, 64, CPU)
    assert "(cache" in again.note and torch.equal(first.faces, again.faces)
    fs = Faceset.load(folder)                       # the faceset changes: the cache is stale
    fs.remove(fs.faces[0])
    fs.save()
    smaller = FaceData(folder, 64, CPU)
    assert "built cache" in smaller.note and len(smaller) == len(first) - 1
    npy = folder / ".cache" / "train_64.npy"        # a truncated cache is rebuilt
    npy.write_bytes(npy.read_bytes()[:1000])
    assert "built cache" in FaceData(folder, 64, CPU).note


def test_yaw_balanced_sampling_when_skewed(faces_a, tmp_path):
    folder = shutil.copytree(faces_a, tmp_path / "fs", ignore=shutil.ignore_patterns(".cache"))
    index = json.loads((folder / "faceset.json").read_text())
    n = len(index["faces"])
    for i, face in enumerate(index["faces"]):       # mostly frontal, two profile faces
        face["yaw"] = 60.0 if i < 2 else 0.0
    (folder / "faceset.json").write_text(json.dumps(index))
    data = FaceData(folder, 64, CPU)
    assert data.balanced and data.pose_counts == {"profile": 2, "frontal": n - 2}
    gen = torch.Generator().manual_seed(0)
    idx = torch.multinomial(data.weights, 20000, replacement=True, generator=gen)
    origin = torch.tensor(data.origin)          # a synthetic blink counts as its face
    share = (origin[idx] < 2).float().mean().item()
    expected = np.sqrt(2) / (np.sqrt(2) + np.sqrt(n - 2))
    assert abs(share - expected) < 0.02 and share > 2 / n * 1.5
    w, counts, balanced = yaw_weights([0.0] * 10 + [20.0] * 10)
    assert not balanced and np.allclose(w, 0.05) and yaw_bin(20.0) == "three_quarter"


# -- checkpoints --------------------------------------------------------------------------
def _stepped_model():
    torch.manual_seed(0)
    model = build_model("localswap", 64, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(2, 3, 64, 64)
    rgb_a, _, rgb_b, _ = model(x, x)
    (rgb_a.mean() + rgb_b.mean()).backward()
    opt.step()
    return model, opt


def test_checkpoint_round_trip_is_exact_and_never_a_pickle(tmp_path):
    model, opt = _stepped_model()
    checkpoint.save(tmp_path, model, opt, {"iteration": 1}, backup=True)
    for name in (checkpoint.MODEL_FILE, checkpoint.OPTIMIZER_FILE):
        head = (tmp_path / name).read_bytes()[:9]
        assert struct.unpack("<Q", head[:8])[0] > 0 and head[8:9] == b"{"   # safetensors
    loaded = checkpoint.load(tmp_path)
    assert not loaded.from_backup and loaded.manifest["iteration"] == 1
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model[k], v)
    fresh, opt2 = _stepped_model()
    opt2.load_state_dict(loaded.optimizer)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, st in a["state"].items():
        for key, value in st.items():
            assert torch.equal(value, b["state"][pid][key])


def test_damaged_checkpoint_falls_back_to_the_backup(tmp_path):
    model, opt = _stepped_model()
    checkpoint.save(tmp_path, model, opt, {"iteration": 5}, backup=True)
    checkpoint.save(tmp_path, model, opt, {"iteration": 9})
    data = (tmp_path / checkpoint.MODEL_FILE).read_bytes()
    (tmp_path / checkpoint.MODEL_FILE).write_bytes(data[: len(data) // 2])      # truncated
    loaded = checkpoint.load(tmp_path)
    assert loaded.from_backup and loaded.manifest["iteration"] == 5
    assert "does not match the manifest" in loaded.problems[0]
    flipped = bytearray((tmp_path / "backup" / checkpoint.OPTIMIZER_FILE).read_bytes())
    flipped[-3] ^= 0xFF                                                    # one bit-rotten byte
    (tmp_path / "backup" / checkpoint.OPTIMIZER_FILE).write_bytes(bytes(flipped))
    with pytest.raises(UserError, match="no usable checkpoint"):
        checkpoint.load(tmp_path)


# -- plateau ------------------------------------------------------------------------------
def test_decay_fit_estimates_the_remaining_improvement():
    t = np.arange(0, 4000, 100)
    y = 0.2 + 0.6 * np.exp(-t / 700) + np.random.default_rng(0).normal(0, 0.003, len(t))
    fit = fit_decay(t, y)
    assert abs(fit.floor - 0.2) < 0.01 and 500 < fit.tau < 900
    assert fit.remaining < 0.05 and "further improvement" in fit.describe()
    early = fit_decay(t[:10], y[:10])
    assert early.remaining > 0.3
    assert fit_decay(t[:5], y[:5]) is None and fit_decay(t, t * 0.001) is None


# -- recipe: ICNR upscales, learning-rate schedule, sharpening phase, previews ---------------
def test_upscales_start_without_a_checkerboard():
    """ICNR: at initialisation each pixel-shuffle block of 2x2 outputs is one value."""
    from localswap.train.models import Up
    torch.manual_seed(0)
    model = build_model("localswap", 64, 8, channels_last=False)
    ups = [m for m in model.modules() if isinstance(m, Up)]
    assert len(ups) >= 4
    for up in ups:
        x = torch.randn(2, up.conv.in_channels, 5, 5)
        y = up(x)
        blocks = y.unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)   # (N, C, H/2, W/2, 4)
        assert torch.allclose(blocks, blocks[..., :1].expand_as(blocks))
        assert y.std() > 0.05                                     # and not all zeros


def test_learning_rate_warms_up_peaks_and_decays_on_iterations_or_time():
    from localswap.settings import TrainSettings
    from localswap.train import schedule
    s = TrainSettings(iterations=10_000, lr=2e-4, warmup=200)
    lr = lambda it: schedule.learning_rate(s, it, schedule.progress(s, it, 0.0))  # noqa: E731
    assert lr(0) == pytest.approx(2e-4 / 200) and lr(99) == pytest.approx(1e-4)
    assert lr(200) == pytest.approx(2e-4, rel=1e-3)
    assert lr(5000) == pytest.approx(2e-4 * (0.1 + 0.9 * 0.5), rel=1e-6)   # half-way down
    assert lr(10_000) == pytest.approx(2e-5)
    assert all(lr(i) >= lr(i + 500) for i in range(200, 9500, 500))
    # A time budget (Basic mode): progress follows the clock when it is ahead.
    t = TrainSettings(iterations=10 ** 7, lr=2e-4, max_minutes=10.0)
    assert schedule.progress(t, 5000, 300.0) == pytest.approx(0.5)
    assert schedule.learning_rate(t, 5000, 1.0) == pytest.approx(2e-5)
    flat = TrainSettings(iterations=1000, lr=2e-4, schedule="constant")
    assert schedule.learning_rate(flat, 900, 0.9) == 2e-4
    assert schedule.learning_rate(TrainSettings(iterations=40, warmup=200, lr=2e-4), 0, 0.0) \
        == pytest.approx(2e-4 / 4)                       # a 40-iteration run warms up over 4


def test_the_automatic_learning_rate_falls_with_the_model_size():
    from localswap.settings import TrainSettings
    from localswap.train import schedule
    assert TrainSettings().lr == 0                                  # 0 = auto
    assert schedule.auto_lr(64) == pytest.approx(1e-3)              # what 64 px was tuned at
    assert schedule.auto_lr(96) < 3.1e-4                            # 1e-3 diverged, 3e-4 trained
    rates = [schedule.auto_lr(r) for r in (64, 96, 128, 160, 192, 256, 512)]
    assert rates == sorted(rates, reverse=True) and rates[-1] == pytest.approx(5e-5)


def test_sharpening_phase_switches_warp_off_at_the_end():
    from localswap.settings import TrainSettings
    from localswap.train import schedule
    s = TrainSettings(sharpen=0.25)
    assert schedule.warp_on(s, 0.0) and schedule.warp_on(s, 0.74)
    assert not schedule.warp_on(s, 0.75) and not schedule.warp_on(s, 1.0)
    assert not schedule.warp_on(TrainSettings(warp=False), 0.0)
    assert schedule.warp_on(TrainSettings(sharpen=0.0), 0.99)


def test_preview_shows_the_original_crop_outside_the_face(data_a):
    from localswap.train.preview import grid_image, preview_rows
    torch.manual_seed(0)
    model = build_model("localswap", 64, 8)
    faces = data_a.first(3)
    rows = preview_rows(model, faces, faces[:2])       # B has fewer faces: blank cells
    a, hull = faces[:, :3].float() / 255, faces[:, 3:4].float() / 255
    outside = torch.nn.functional.max_pool2d(hull, 9, stride=1, padding=4) == 0
    assert outside.sum() > 500
    for row in rows[1:3]:                              # A>A and A>B: A's crop outside the hull
        assert torch.equal(row.expand_as(a)[outside.expand_as(a)], a[outside.expand_as(a)])
    inside = hull > 0.99
    assert (rows[2] - a).abs()[inside.expand_as(a)].mean() > 0.05   # the model's face inside
    grid = grid_image(rows)
    assert grid.shape[:2] == (6 * 64, 56 + 3 * 64)
    assert grid[3 * 64:, 56 + 2 * 64:].max() == 0      # B's missing third face is blank
