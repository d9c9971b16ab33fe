"""media.py on real encoded videos: probe, streaming decode, H.264 encode with audio."""
import subprocess

import numpy as np
import pytest

from localswap import media
from localswap.errors import UserError


def test_probe_reports_size_fps_duration_audio(video_a):
    info = media.probe(video_a)
    assert (info.width, info.height) == (480, 360)
    assert info.fps == pytest.approx(24, abs=0.01)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.frames == 48
    assert info.has_audio and info.audio_codec == "aac"


def test_read_frames_rgb_every_and_timestamps(video_a):
    all_frames = list(media.read_frames(video_a))
    assert len(all_frames) == 48
    idx, ts, frame = all_frames[10]
    assert (idx, frame.shape, frame.dtype) == (10, (360, 480, 3), np.uint8)
    assert ts == pytest.approx(10 / 24)
    every3 = list(media.read_frames(video_a, every=3))
    assert [i for i, _, _ in every3] == list(range(0, 48, 3))
    # The 3rd decoded frame with every=3 is frame 6 of the full decode.
    assert np.array_equal(every3[2][2], all_frames[6][2])


def test_read_frames_trims_by_time(video_a):
    got = list(media.read_frames(video_a, start=0.5, end=1.0))
    assert got[0][0] == 12 and 11 <= len(got) <= 13


def test_writer_roundtrip_keeps_audio_and_metadata(video_a, tmp_path):
    out = tmp_path / "copy.mp4"
    frames = [f for _, _, f in media.read_frames(video_a)]
    with media.VideoWriter(out, 480, 360, 24, audio_from=video_a,
                           metadata={"comment": "made with localswap test"}) as w:
        for f in frames:
            w.write(f)
    info = media.probe(out)
    assert (info.frames, info.has_audio) == (48, True)
    back = [f for _, _, f in media.read_frames(out)]
    # H.264 at crf 18 keeps the picture close (mean abs error of a few levels).
    assert np.abs(back[20].astype(int) - frames[20].astype(int)).mean() < 4
    probe_txt = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(out)],
                               capture_output=True, text=True).stderr
    assert "made with localswap test" in probe_txt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_writer_failure_leaves_no_file(tmp_path):
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(out, 64, 64, 24) as w:
            w.write(np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_unreadable_videos_give_clear_errors(broken_files, kind):
    with pytest.raises(UserError) as err:
        info = media.probe(broken_files[kind])
        list(media.read_frames(broken_files[kind], info=info))
    assert broken_files[kind].name in str(err.value)


def test_read_image_rejects_non_images(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not a png")
    with pytest.raises(UserError, match="cannot read this image"):
        media.read_image(bad)
