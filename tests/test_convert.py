"""Conversion end to end on the fixture videos with a model trained for a few iterations."""
import json
import subprocess
import threading

import cv2
import numpy as np
import pytest
import torch

from localswap.bench import samples as mb
from localswap import media
from localswap.convert.render import Cancelled, convert
from localswap.convert.photos import photo_note
from localswap.convert.swapper import Swapper
from localswap.errors import UserError
from localswap.faces.faceset import Faceset
from localswap.settings import ConvertSettings
from model_fixtures import tiny_model  # noqa: F401  (module-scoped fixture)


def _frames(path):
    return [f for _, _, f in media.read_frames(path)]


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def _metadata(path):
    return subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr


def _regions(entry, shape):
    """(inner face box, far-from-face mask) from a faceset entry's frame bbox."""
    x0, y0, x1, y1 = entry.bbox
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    inner = (slice(int(cy - h / 4), int(cy + h / 4)), slice(int(cx - w / 4), int(cx + w / 4)))
    far = np.ones(shape[:2], bool)
    far[max(0, int(y0 - h * 0.6)):int(y1 + h * 0.6), max(0, int(x0 - w * 0.6)):int(x1 + w * 0.6)] \
        = False
    return inner, far


@pytest.fixture(scope="module")
def converted(tiny_model, video_a, tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "swapped.mp4"
    result = convert(video_a, tiny_model, out, ConvertSettings(mask="hull", label=True))
    return out, result


def test_video_keeps_frames_fps_duration_audio_and_is_tagged(converted, video_a):
    out, result = converted
    src, got = media.probe(video_a), media.probe(out)
    assert got.frames == src.frames == result.frames == 48
    assert got.fps == pytest.approx(src.fps, abs=0.01)
    assert got.duration == pytest.approx(src.duration, abs=0.05)
    assert got.has_audio and got.audio_codec == "aac" and got.codec == "h264"
    meta = _metadata(out)
    assert "yuv420p" in meta
    assert "Synthetic media" in meta and "localswap" in meta and result.model in meta
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert result.frames_with_faces >= 46 and result.faces >= 46
    assert result.stages["detect"] > 0 and result.stages["model"] > 0
    assert result.stages["compose"] > 0 and result.fps > 0


def test_face_changes_and_far_pixels_do_not(converted, video_a, faceset_a):
    out, _ = converted
    before, after = _frames(video_a), _frames(out)
    entries = {f.frame: f for f in Faceset.load(faceset_a).faces}
    checked = 0
    for i in range(0, 48, 6):
        if i not in entries:
            continue
        inner, far = _regions(entries[i], before[i].shape)
        far[-40:, -200:] = False                       # the visible label's corner
        assert _psnr(before[i][far], after[i][far]) > 38, f"frame {i}: background changed"
        diff = np.abs(before[i][inner].astype(int) - after[i][inner].astype(int)).mean()
        assert diff > 8, f"frame {i}: face barely changed ({diff:.1f})"
        checked += 1
    assert checked >= 6
    label = np.abs(before[5][-30:, -120:].astype(int) - after[5][-30:, -120:].astype(int))
    assert label.mean() > 20                           # the label is there


def test_no_face_video_passes_through(tiny_model, video_no_face, tmp_path):
    out = tmp_path / "same.mp4"
    result = convert(video_no_face, tiny_model, out)
    assert result.frames_with_faces == 0 and result.faces == 0
    before, after = _frames(video_no_face), _frames(out)
    assert len(after) == len(before) == 24
    # Untouched: the same pictures as a plain decode + re-encode (x264 is deterministic), and
    # that re-encode is close to the input.
    plain = tmp_path / "plain.mp4"
    with media.VideoWriter(plain, 480, 360, 24, audio_from=video_no_face) as w:
        for f in before:
            w.write(f)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(plain), after))
    assert np.mean([_psnr(a, b) for a, b in zip(before, after)]) > 36
    assert media.probe(out).has_audio


def test_cancel_leaves_no_file(tiny_model, video_a, tmp_path):
    out = tmp_path / "cancelled.mp4"
    cancel = threading.Event()

    def progress(done, total, message="", **info):
        if done >= 8:
            cancel.set()

    threads = torch.get_num_threads()
    with pytest.raises(Cancelled):
        convert(video_a, tiny_model, out, progress=progress, cancel=cancel)
    assert list(tmp_path.iterdir()) == []
    assert torch.get_num_threads() == threads      # the converter's thread limit is undone


def test_failure_in_a_stage_leaves_no_file(tiny_model, video_a, tmp_path):
    swapper = Swapper(tiny_model, "cpu")
    swapper.resolution = 96        # crops the 64 px model cannot take: the model stage fails
    with pytest.raises(RuntimeError):
        convert(video_a, swapper, tmp_path / "failed.mp4")
    assert list(tmp_path.iterdir()) == []


def test_all_faces_or_only_the_largest(tiny_model, video_two_faces, tmp_path):
    both = convert(video_two_faces, tiny_model, tmp_path / "all.mp4", ConvertSettings())
    one = convert(video_two_faces, tiny_model, tmp_path / "one.mp4",
                  ConvertSettings(faces="largest"))
    assert both.faces >= 1.8 * both.frames and one.faces == one.frames == 24
    before, largest = _frames(video_two_faces), _frames(tmp_path / "one.mp4")
    inset = (slice(10, 160), slice(320, 470))          # the small still face, top right
    assert min(_psnr(a[inset], b[inset]) for a, b in zip(before, largest)) > 36


def test_start_end_trim_video_and_audio(tiny_model, video_a, tmp_path):
    out = tmp_path / "trim.mp4"
    result = convert(video_a, tiny_model, out, ConvertSettings(start=0.5, end=1.5))
    info = media.probe(out)
    assert 23 <= result.frames <= 25 and info.frames == result.frames
    assert info.duration == pytest.approx(1.0, abs=0.1) and info.has_audio


def test_photo_in_photo_out(tiny_model, tmp_path):
    src = tmp_path / "astronaut.png"
    media.write_image(src, mb.astronaut())
    for name in ("out.png", "out.jpg"):
        result = convert(src, tiny_model, tmp_path / name, ConvertSettings(mask="hull"))
        assert result.frames == 1 and result.faces == 1
        out = media.read_image(tmp_path / name)
        assert out.shape == mb.astronaut().shape
        assert "Synthetic media" in photo_note(tmp_path / name)
        face = (slice(80, 160), slice(180, 260))
        assert np.abs(out[face].astype(int) - mb.astronaut()[face].astype(int)).mean() > 8
        assert _psnr(out[300:, :100], mb.astronaut()[300:, :100]) > 35


def test_bad_inputs_give_clear_errors(tiny_model, video_a, broken_files, tmp_path):
    with pytest.raises(UserError, match="not a localswap model"):
        convert(video_a, tmp_path, tmp_path / "x.mp4")
    with pytest.raises(UserError, match="name it .mp4"):
        convert(video_a, tiny_model, tmp_path / "x.png")
    with pytest.raises(UserError, match="overwrite the input"):
        convert(video_a, tiny_model, video_a)
    with pytest.raises(UserError, match="truncated|cannot read"):
        convert(broken_files["truncated"], tiny_model, tmp_path / "x.mp4")
    with pytest.raises(UserError, match="end"):
        ConvertSettings(start=2, end=1).validate()
    assert not list(tmp_path.glob("*.mp4"))


def test_swapper_batches_give_the_same_faces(tiny_model, faceset_a):
    swapper = Swapper(tiny_model, "cpu")
    fs = Faceset.load(faceset_a)
    crops = np.stack([cv2.resize(media.read_image(fs.image_path(f)), (64, 64))
                      for f in fs.faces[:5]])
    lms = [f.landmarks_array() * (64 / fs.size) for f in fs.faces[:5]]   # the guide's lines
    rgb, mask = swapper(crops, lms)
    one, _ = swapper(crops[2:3], lms[2:3])
    assert rgb.shape == (5, 64, 64, 3) and rgb.dtype == np.uint8
    assert mask is None or mask.shape == (5, 64, 64)
    assert np.abs(one[0].astype(int) - rgb[2].astype(int)).max() <= 1


def test_face_missed_for_a_few_frames_is_filled_from_its_track(tiny_model, tmp_path):
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 30)
    for k in (20, 21, 22):               # motion-blur-like frames the detector cannot read
        frames[k] = cv2.GaussianBlur(frames[k], (0, 0), 14)
    video = mb.encode(tmp_path / "gap.mp4", frames, 24)
    filled = convert(video, tiny_model, tmp_path / "filled.mp4", ConvertSettings(mask="hull"))
    plain = convert(video, tiny_model, tmp_path / "plain.mp4",
                    ConvertSettings(mask="hull", fill_gap=0))
    assert filled.filled == 3 and filled.frames_with_faces == 30
    assert plain.filled == 0 and plain.frames_with_faces == 27
    before, after, unfilled = (_frames(p) for p in (video, tmp_path / "filled.mp4",
                                                    tmp_path / "plain.mp4"))
    face = (slice(140, 200), slice(210, 270))     # the centre of the face (frame middle)
    for k in (20, 21, 22):
        assert np.abs(after[k][face].astype(int) - before[k][face].astype(int)).mean() > 8
        assert _psnr(unfilled[k], before[k]) > 38  # without filling: the original face


def test_damaged_weights_fall_back_to_the_backup(tiny_model, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    assert (model / "backup" / "model.safetensors").is_file()   # the trainer's best save
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])   # an interrupted copy
    swapper = Swapper(model, "cpu")
    lm = np.array(json.loads((model / "manifest.json").read_text())["expression"]["a"]["median"])
    rgb, _ = swapper(np.zeros((1, 64, 64, 3), np.uint8), [lm * 64])
    assert rgb.shape == (1, 64, 64, 3)
    (model / "backup" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="no usable weights"):
        Swapper(model, "cpu")
