"""The converter's parts on real face crops: colour transfer, masks, blending, smoothing."""
import numpy as np
import pytest

from localswap.bench import samples as mb
from localswap.convert import color
from localswap.convert import mask as masks
from localswap.convert.blend import Look, draw_label, paste
from localswap.convert.smooth import FaceTracker, OneEuro
from localswap.faces.align import transform_matrix, transform_points, warp_face
from localswap.faces.detect import make_backend


@pytest.fixture(scope="module")
def astronaut_face():
    """(frame, 68 landmarks, 2x3 frame->crop matrix, 128 px aligned crop)."""
    frame = mb.astronaut()
    backend = make_backend("mediapipe")
    try:
        det = backend.detect(frame)[0]
    finally:
        backend.close()
    mat = transform_matrix(det.landmarks, 128, "whole_face")
    return frame, det.landmarks, mat, warp_face(frame, mat, 128)


def _hull(lm, mat):
    return masks.hull_mask(transform_points(lm, mat), 128, 128)


@pytest.mark.parametrize("method", ["rct", "lct", "hist"])
def test_colour_transfer_matches_the_original_inside_the_mask(astronaut_face, method):
    _, lm, mat, crop = astronaut_face
    sel = _hull(lm, mat) > 0.5
    # A "swapped" face with the wrong colour: blue-tinted, darker, lower contrast.
    wrong = np.clip(crop.astype(np.float32) * [0.6, 0.7, 1.1] * 0.8 + 20, 0, 255).astype(np.uint8)
    # Wild colours outside the mask must not count.
    ref = crop.copy()
    ref[~sel] = (0, 255, 0)
    out = color.transfer(method, wrong, ref, sel)
    err_before = np.abs(wrong[sel].mean(0) - crop[sel].mean(0)).max()
    err_after = np.abs(out[sel].astype(float).mean(0) - crop[sel].mean(0)).max()
    assert err_before > 25 and err_after < 4, (err_before, err_after)
    sd_err = np.abs(out[sel].astype(float).std(0) - crop[sel].std(0)).max()
    assert sd_err < 6
    assert out.dtype == np.uint8 and out.shape == crop.shape


def test_rct_takes_a_flat_lit_faces_colour_but_keeps_the_swapped_faces_features(astronaut_face):
    import cv2
    _, lm, mat, crop = astronaut_face
    sel = _hull(lm, mat) > 0.5
    # The target's face lit flat (a third of the contrast) and warmer: the swapped face must
    # take its colour but not its flatness, or the eyes, brows and lips fade out.
    mean = crop[sel].astype(np.float32).mean(0)
    flat = np.clip((crop.astype(np.float32) - mean) / 3 + mean * [1.1, 1.0, 0.8], 0, 255)
    flat = flat.astype(np.uint8)
    out = color.transfer("rct", crop, flat, sel)

    def lab(img):
        return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[sel]
    assert abs(lab(out)[:, 0].std() - lab(crop)[:, 0].std()) < 0.5
    assert lab(flat)[:, 0].std() < lab(crop)[:, 0].std() / 2
    assert np.abs(lab(out).mean(0) - lab(flat).mean(0)).max() < 1.5


def test_rct_never_raises_the_swapped_faces_colour_contrast(astronaut_face):
    """A model's face has softer colours than the target's (whose dark glasses frames, red
    lips and warm cheeks spread a* and b* wider): matching the spread multiplied the model's
    faint tints into red blotches and painted lips (issue 27). The mean still moves."""
    import cv2
    _, lm, mat, crop = astronaut_face
    sel = _hull(lm, mat) > 0.5

    def lab(img):
        return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)

    def from_lab(v):
        return np.clip(cv2.cvtColor(v, cv2.COLOR_LAB2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
    base = lab(crop)
    mean = base[sel].mean(0)
    soft, vivid = base.copy(), base.copy()
    soft[..., 1:] = (base[..., 1:] - mean[1:]) * 0.5 + mean[1:]            # the model's face
    vivid[..., 1:] = (base[..., 1:] - mean[1:]) * 1.6 + mean[1:] + [6, 4]  # the target's
    soft, vivid = from_lab(soft), from_lab(vivid)
    out = color.transfer("rct", soft, vivid, sel)
    spread = lambda img: lab(img)[sel][:, 1:].std(0)           # noqa: E731
    assert (spread(vivid) > 2.5 * spread(soft)).all()
    assert (spread(out) <= spread(soft) * 1.05 + 0.2).all(), (spread(out), spread(soft))
    assert np.abs(lab(out)[sel][:, 1:].mean(0) - lab(vivid)[sel][:, 1:].mean(0)).max() < 1.5


def test_colour_none_and_tiny_masks_leave_the_face_alone(astronaut_face):
    _, _, _, crop = astronaut_face
    other = crop[::-1].copy()
    assert color.transfer("none", crop, other, np.ones(crop.shape[:2])) is crop
    assert color.transfer("rct", crop, other, np.zeros(crop.shape[:2])) is crop


def test_mask_erode_blur_and_combine(astronaut_face):
    frame, lm, _, _ = astronaut_face
    h, w = frame.shape[:2]
    hull = masks.hull_mask(lm, w, h)
    area = (hull > 0.5).sum()
    assert area > 5000
    assert (masks.refine(hull, 10, 0) > 0.5).sum() < 0.85 * area
    assert (masks.refine(hull, -10, 0) > 0.5).sum() > 1.1 * area
    soft = masks.refine(hull, 0, 20)
    edge = (soft > 0.05) & (soft < 0.95)
    assert edge.sum() > 0.1 * area            # a real feathered band, not a hard edge
    assert (hull[edge] > 0).any() and (hull[edge] == 0).any()   # on both sides of the line
    learned = np.zeros_like(hull)
    learned[:, : w // 2 - 20] = 1              # "the model says": only the image's left part
    both = masks.combine("both", hull, learned)
    assert both.max() == 1 and both[:, w // 2 - 20:].max() == 0
    assert masks.combine("learned", hull, None) is hull   # no learned mask: the hull


@pytest.mark.parametrize("blend", ["feather", "poisson"])
def test_paste_changes_the_face_and_nothing_far_from_it(astronaut_face, blend):
    frame, lm, mat, crop = astronaut_face
    swapped = 255 - crop                       # unmistakably different
    out = frame.copy()
    x0, y0, alpha = paste(out, crop, swapped, None, lm, mat, Look(color="none", blend=blend))
    hull = masks.hull_mask(lm, frame.shape[1], frame.shape[0])
    inner = masks.refine(hull, int(0.1 * np.ptp(lm[:, 0])), 0) > 0.5
    diff = np.abs(out.astype(int) - frame.astype(int)).max(2)
    assert diff[inner].mean() > 60
    grown = masks.refine(hull, -int(0.15 * np.ptp(lm[:, 0])), 0) > 0
    assert diff[~grown].max() == 0, "pixels away from the face changed"
    assert alpha.shape[0] > 50 and 0 < alpha.max() <= 1


def test_the_targets_own_open_mouth_stays_inside_the_parted_lips(astronaut_face):
    """Her lips part over her teeth: with `mouth` the teeth inside them stay hers while the lips
    and the rest of the face are swapped; at 0 the model's mouth covers them; a shut mouth
    keeps nothing of the target."""
    import cv2
    frame, lm, mat, crop = astronaut_face
    kept, covered = frame.copy(), frame.copy()
    paste(kept, crop, 255 - crop, None, lm, mat, Look(color="none", mouth=1.0))
    paste(covered, crop, 255 - crop, None, lm, mat, Look(color="none", mouth=0.0))
    inside = masks.mouth_interior(lm, frame.shape[:2])
    assert inside is not None
    core, half = inside > 0.99, inside > 0.5
    assert core.sum() >= 8 and half.sum() >= 40     # a 43 px mouth parted by 6 px
    kept_diff = np.abs(kept.astype(int) - frame.astype(int)).max(2)
    covered_diff = np.abs(covered.astype(int) - frame.astype(int)).max(2)
    assert kept_diff[core].max() <= 2 and covered_diff[core].mean() > 60
    assert kept_diff[half].mean() < 0.5 * covered_diff[half].mean()
    lips = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(lm[48:60]).astype(np.int32)], 1)
    opening = np.zeros_like(lips)
    cv2.fillPoly(opening, [np.round(lm[60:68]).astype(np.int32)], 1)
    lips = (lips > 0) & (cv2.dilate(opening, np.ones((5, 5), np.uint8)) == 0)
    assert lips.sum() > 50 and kept_diff[lips].mean() > 60            # the lips are swapped
    assert np.array_equal(kept[inside == 0], covered[inside == 0])    # and all but the opening
    shut = lm.copy()
    shut[[65, 66, 67]] = shut[[63, 62, 61]]
    assert masks.mouth_interior(shut, frame.shape[:2]) is None


def test_the_targets_mouth_is_kept_as_far_as_the_models_opens_less(astronaut_face):
    """convert.mouth: a model face with the lips shut over her parted ones keeps all of her
    open mouth; one that opens wider than hers keeps none; the same opening keeps half; a
    face that cannot be read keeps it all. Model faces are her own photo with the mouth
    warped shut or open (tests/expressions.py)."""
    from expressions import expression_warp
    from localswap.convert import mouth
    frame, lm, mat, crop = astronaut_face
    lmc = transform_points(lm, mat)
    shut, wide = expression_warp(crop, lmc, 1.0, 0.3), expression_warp(crop, lmc, 1.0, 2.0)
    assert mouth.opening(shut) < 0.5 * mouth.opening(crop) < mouth.opening(wide) / 3
    assert mouth.keep_share(crop, shut, lmc) == 1.0
    assert mouth.keep_share(crop, wide, lmc) == 0.0
    assert mouth.keep_share(crop, crop, lmc) == pytest.approx(0.5, abs=0.01)
    assert mouth.opening(np.full_like(crop, 128)) is None
    assert mouth.keep_share(crop, np.full_like(crop, 128), lmc) == 1.0
    # in the paste: where the lips part, the blend mask opens for the shut model face only
    core = masks.mouth_interior(lm, frame.shape[:2]) > 0.99
    def alpha(face, keep):
        x0, y0, a = paste(frame.copy(), crop, face, None, lm, mat, Look(color="none", mouth=keep))
        return a[core[y0:y0 + a.shape[0], x0:x0 + a.shape[1]]]
    assert alpha(shut, 0.0).min() > 0.9 and alpha(shut, 1.0).max() < 0.02
    assert np.array_equal(alpha(wide, 1.0), alpha(wide, 0.0))


def test_paste_learned_mask_limits_the_swap(astronaut_face):
    frame, lm, mat, crop = astronaut_face
    learned = np.zeros((128, 128), np.float32)
    learned[:, :64] = 1                        # left half of the crop only
    out = frame.copy()
    paste(out, crop, 255 - crop, learned, lm, mat, Look(color="none", mask="both", blur=0,
                                                       erode=0))
    diff = np.abs(out.astype(int) - frame.astype(int)).max(2)
    nose_x = int(lm[30, 0])
    rows = slice(int(lm[36:48, 1].mean()), int(lm[57, 1]))
    left = diff[rows, int(lm[2, 0]) + 5: nose_x - 8]
    right = diff[rows, nose_x + 8: int(lm[14, 0]) - 5]
    assert left.mean() > 60 and right.mean() < 5


def test_label_is_small_and_in_the_corner():
    frame = np.full((360, 480, 3), 128, np.uint8)
    draw_label(frame)
    changed = np.argwhere((frame != 128).any(2))
    assert changed.size and changed[:, 0].min() > 300 and changed[:, 1].min() > 300


def test_one_euro_steadies_a_still_face_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    still = OneEuro(1.5, 4.0)
    raw = 100 + rng.normal(0, 0.02, (48, 68, 2))          # jitter of 2% of a face width
    out = np.array([still(x, i / 24) for i, x in enumerate(raw)])
    assert out[12:].std(0).mean() < 0.4 * raw[12:].std(0).mean()
    moving = OneEuro(1.5, 4.0)
    track = [moving(np.full((68, 2), 2.0 * i / 24), i / 24) for i in range(48)]  # 2 widths/s
    lag = 2.0 * 47 / 24 - track[-1][0, 0]
    assert lag < 0.1, f"lags {lag:.3f} face widths behind"


def _face(x, y, w=100.0):
    """68 'landmarks' spread over a box, enough for matching and widths."""
    pts = np.zeros((68, 2), np.float32)
    pts[:, 0] = x + np.linspace(0, w, 68)
    pts[:, 1] = y + np.linspace(0, w, 68)[::-1]
    pts[0], pts[16] = (x, y + w / 2), (x + w, y + w / 2)
    return pts


def test_tracker_fills_short_gaps_and_lets_long_ones_go():
    tr = FaceTracker(strength=0, max_gap=3)
    out = []
    for i in range(12):
        # frames 4, 5 miss the face (short gap); frames 8-11 miss it (longer than max_gap)
        seen = [] if i in (4, 5) or i >= 8 else [_face(10 + 5 * i, 20)]
        out += tr.push(i, i / 24, f"frame{i}", seen)
    out += tr.finish()
    assert [o[0] for o in out] == list(range(12))
    assert [o[1] for o in out] == [f"frame{i}" for i in range(12)]
    faces = {o[0]: o[2] for o in out}
    assert all(len(faces[i]) == 1 for i in range(8))
    assert faces[4][0].filled and faces[5][0].filled and not faces[3][0].filled
    # Interpolated between frames 3 and 6.
    assert faces[4][0].landmarks[0, 0] == pytest.approx(10 + 5 * 4, abs=1e-3)
    assert all(faces[i] == [] for i in range(8, 12))
    assert tr.filled == 2
    assert len(tr.pending) == 0


def test_tracker_keeps_two_faces_apart_and_holds_few_frames():
    tr = FaceTracker(strength=0.5, max_gap=2)
    ids = set()
    for i in range(10):
        ready = tr.push(i, i / 24, i, [_face(300, 50), _face(10 + i, 40)])
        assert len(tr.pending) <= 3
        for _, _, faces in ready:
            ids.update(f.track for f in faces)
            xs = sorted(f.landmarks[0, 0] for f in faces)
            assert xs[1] == pytest.approx(300, abs=1)
    assert ids == {1, 2}
