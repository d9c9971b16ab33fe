"""Extraction on real videos and photos built from packaged face photos."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from localswap.bench import samples as mb
from localswap.errors import NoFacesError, UserError
from localswap.faces.extract import extract
from localswap.faces.faceset import Faceset
from localswap.settings import ExtractSettings


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "localswap", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_motion_video_faces_found_and_aligned(faceset_a):
    fs = Faceset.load(faceset_a)
    assert fs.face_type == "face" and fs.size == 128
    frames = {f.frame for f in fs.faces}
    assert len(frames) >= 0.95 * 48
    # The same face, moved and rotated in the frame, lands in the same place in every crop.
    eyes = np.array([[f.landmarks_array()[36:42].mean(0), f.landmarks_array()[42:48].mean(0)]
                     for f in fs.faces])
    spread = np.abs(eyes - np.median(eyes, axis=0)).max()
    assert spread < 4.0, f"eye centres wander {spread:.1f} px across crops"
    # In the frame itself the face really moves (so the test above means something).
    centres = np.array([(f.bbox[0] + f.bbox[2]) / 2 for f in fs.faces])
    assert centres.max() - centres.min() > 20
    for f in fs.faces[:3]:
        img = cv2.imread(str(fs.image_path(f)))
        assert img.shape == (128, 128, 3)
        assert len(f.transform) == 2 and len(f.landmarks) == 68
        assert f.blur > 30 and f.face_size > 48 and abs(f.yaw) < 30


def test_faceset_json_roundtrip(faceset_a, tmp_path):
    data = json.loads((faceset_a / "faceset.json").read_text())
    assert set(data) >= {"version", "face_type", "size", "faces"}
    entry = data["faces"][0]
    for key in ("image", "source", "frame", "timestamp", "bbox", "landmarks", "yaw", "pitch",
                "roll", "blur", "face_size", "transform"):
        assert key in entry
    fs = Faceset.load(faceset_a)
    fs.path = tmp_path
    fs.save()
    assert json.loads((tmp_path / "faceset.json").read_text()) == data


def test_rerun_is_idempotent_and_adds_new(video_a, video_b, tmp_path):
    out = tmp_path / "fs"
    s = ExtractSettings(size=96, every=4)
    first = extract([video_a], out, s)
    assert first.faces_kept == 12
    again = extract([video_a], out, s)
    assert again.faces_kept == 0 and again.frames_skipped == 12 and again.faces_total == 12
    more = extract([video_a, video_b], out, s)
    assert more.faces_kept == 12 and more.faces_total == 24
    fs = Faceset.load(out)
    assert len({f.image for f in fs.faces}) == 24
    assert len(list(out.glob("*.png"))) == 24


def test_several_faces_keep_the_main_person(video_two_faces, tmp_path):
    summary = extract([video_two_faces], tmp_path / "fs", ExtractSettings(size=96))
    fs = Faceset.load(tmp_path / "fs")
    assert summary.multi_face_frames >= 20
    frames = [f.frame for f in fs.faces]
    assert len(frames) == len(set(frames)) >= 22          # one face per frame
    # The other face of each frame is left out, but the frame is not: a face was kept there
    # (rejected counts frames, one reason each, adding up to the frames read).
    assert summary.other_faces >= 20 and not summary.rejected.get("other_person")
    # The kept face is the large moving astronaut, not the small still inset.
    assert np.median([f.face_size for f in fs.faces]) > 80
    assert len(list((tmp_path / "fs").glob("*.png"))) == len(fs)


def test_photos_folder_and_mixed_inputs(video_b, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(mb.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "hopper.jpg"), cv2.cvtColor(mb.grace_hopper(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "coffee.jpg"), cv2.cvtColor(mb.no_face(), cv2.COLOR_RGB2BGR))
    s = extract([photos, video_b], tmp_path / "fs", ExtractSettings(size=64, every=8))
    assert s.faces_kept == 2 + 6
    assert s.rejected["no_face"] == 1
    assert {f.frame for f in Faceset.load(tmp_path / "fs").faces if f.source.endswith(".png")} \
        == {0}


def test_blurred_video_rejected_as_blurry(tmp_path):
    frames = [cv2.GaussianBlur(f, (0, 0), 4) for f in
              mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 12)]
    video = mb.encode(tmp_path / "blurred.mp4", frames)
    with pytest.raises(NoFacesError, match=r"blurry 1[0-2]\b"):
        extract([video], tmp_path / "fs", ExtractSettings(size=64))
    assert not (tmp_path / "fs").exists()


def test_small_faces_rejected_by_min_face(video_a, tmp_path):
    with pytest.raises(NoFacesError, match="too small"):
        extract([video_a], tmp_path / "fs", ExtractSettings(size=64, every=8, min_face=400))


def test_cli_no_face_video_exit_2(video_no_face, tmp_path):
    r = run_cli("extract", video_no_face, "--out", tmp_path / "fs")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    # One sentence naming the file, what was found and what to do.
    assert last.startswith("error: coffee.mp4: no usable face found in 24 frames")
    assert "no face 24" in last and "use a video or photos where one face" in last
    assert not (tmp_path / "fs").exists()


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_cli_corrupt_input_exit_2_nothing_written(broken_files, video_a, tmp_path, kind):
    r = run_cli("extract", video_a, broken_files[kind], "--out", tmp_path / "fs")
    assert r.returncode == 2
    assert broken_files[kind].name in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "fs").exists()


def test_cli_unsupported_file_type(tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("hello")
    r = run_cli("extract", doc, "--out", tmp_path / "fs")
    assert r.returncode == 2 and "not a supported video" in r.stderr


def test_cli_extract_summary(video_b, tmp_path):
    r = run_cli("extract", video_b, "--out", tmp_path / "fs", "--size", "64", "--every", "6",
                "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["faces_kept"] == 8 and summary["frames_read"] == 8
    assert summary["yaw"]["frontal"] + summary["yaw"]["three_quarter"] == 8
    assert summary["fps"] > 0


def test_settings_validation():
    with pytest.raises(UserError, match="face_type"):
        ExtractSettings(face_type="torso").validate()
    with pytest.raises(UserError, match="every"):
        ExtractSettings(every=0).validate()


def test_pose_estimate_signs():
    from localswap.faces.landmarks import estimate_pose
    from localswap.faces.mediapipe_backend import MediaPipeBackend
    backend = MediaPipeBackend()
    photo = mb.astronaut()
    lm = backend.detect(photo)[0].landmarks
    yaw, pitch, _ = estimate_pose(lm, 512, 512)
    assert abs(yaw) < 10 and abs(pitch) < 10          # a frontal portrait
    turned = lm.copy()
    turned[27:36, 0] += 8                              # nose towards the image's right
    assert estimate_pose(turned, 512, 512)[0] > yaw + 4
    # The mirror image turns the other way by as much: the two yaws lie either side of the
    # estimator's frontal reading. (With the refined mesh that reading is ~4.5 degrees off
    # zero on this photo: 5.8 and 3.2 for a face turned ~1.3 degrees.)
    mirrored = backend.detect(np.ascontiguousarray(photo[:, ::-1]))[0].landmarks
    yaw_m = estimate_pose(mirrored, 512, 512)[0]
    assert abs((yaw + yaw_m) / 2) < 10 and abs(yaw - yaw_m) < 2 * 10


def test_disk_full_keeps_what_was_saved(video_a, video_b, tmp_path, monkeypatch):
    from disk import small_disk
    from localswap import media
    from localswap.errors import DiskFullError
    with small_disk(tmp_path / "disk", 900) as disk:
        if disk is None:  # no tmpfs here: fail the writes the way a full disk does
            import errno
            real, calls = media.write_image, []

            def filling(path, rgb, png_level=1):
                calls.append(path)
                if len(calls) > 14:
                    raise OSError(errno.ENOSPC, "No space left on device")
                real(path, rgb, png_level)
            monkeypatch.setattr(media, "write_image", filling)
            disk = tmp_path / "disk"
        out = disk / "fs"
        first = extract([video_a], out, ExtractSettings(size=128, every=8))
        assert first.faces_kept == 6
        before = {f.image for f in Faceset.load(out).faces}
        with pytest.raises(DiskFullError, match="disk full"):
            extract([video_b], out, ExtractSettings(size=128))
        after = Faceset.load(out)
        # Nothing earlier is lost, and every indexed face has its image on disk.
        assert before <= {f.image for f in after.faces}
        assert all(after.image_path(f).stat().st_size > 0 for f in after.faces)
