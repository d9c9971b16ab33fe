"""Things other than hands in front of the face (`--occlusion auto`): a real cup (scikit-image's
espresso photo, cut out by bench.objects) in front of a real face (the astronaut), found where
the frame departs from a drawing of the face; the real render and preview with it on."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from localswap.bench import objects
from localswap.bench import samples as mb
from model_fixtures import one_torch_thread, tiny_model  # noqa: F401  (fixture)

SIZE = 128


def _aligned(photo: np.ndarray):
    """(aligned crop, its landmarks in crop pixels, frame->crop matrix, frame landmarks)."""
    from localswap.faces.align import transform_matrix, transform_points, warp_face
    from localswap.faces.detect import make_backend
    backend = make_backend("mediapipe")
    try:
        lm = backend.detect(photo)[0].landmarks
    finally:
        backend.close()
    mat = transform_matrix(lm, SIZE, "face")
    return warp_face(photo, mat, SIZE), transform_points(lm, mat), mat, lm


@pytest.fixture(scope="module")
def cup_scene():
    """The astronaut, the same photo with the cup at her lips, the cup's alpha, and the
    astronaut's face as a model draws it: softer than the photo (blurred, then JPEG-coded
    at quality 40)."""
    from localswap.faces.landmarks import face_width
    photo = mb.astronaut()
    crop, lm_crop, mat, lm = _aligned(photo)
    centre = (float(lm[:, 0].mean()), float(lm[57, 1] + 0.15 * face_width(lm)))
    with_cup, alpha = objects.place(photo, objects.cup(), centre, 0.7 * face_width(lm))
    soft = cv2.GaussianBlur(crop, (0, 0), 1.5)
    _, jpeg = cv2.imencode(".jpg", soft[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 40])
    drawing = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1]
    warp = lambda im: cv2.warpAffine(im, mat, (SIZE, SIZE), flags=cv2.INTER_LINEAR)  # noqa: E731
    return crop, warp(with_cup), warp(alpha) > 0.5, drawing, lm_crop


def test_a_cup_in_front_of_the_face_is_kept_and_nothing_else(cup_scene):
    from localswap.convert.occluders import TRUST, closeness, departure, in_front
    clean, with_cup, cup, drawing, lm = cup_scene
    distance, hull = departure(with_cup, drawing, lm)
    assert closeness(distance, hull) < TRUST
    kept = in_front(distance, hull) > 0.5
    on_face = cup & hull
    assert on_face.sum() > 0.1 * hull.sum()          # the cup covers her mouth and chin
    assert kept[on_face].mean() >= 0.9
    # around the cup the mask grows a little (so its edge is never painted over); beyond
    # that, the face stays swapped
    near = cv2.dilate(cup.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert kept[hull & ~near].mean() <= 0.02
    # the same face without the cup: nothing in front
    distance, hull = departure(clean, drawing, lm)
    assert closeness(distance, hull) < TRUST and not in_front(distance, hull).any()


def test_a_drawing_of_someone_else_is_not_trusted(cup_scene):
    """A model used on a person it was not trained on draws its own target: the check stands
    aside rather than keep half the face."""
    from localswap.convert.occluders import TRUST, closeness, departure
    clean, _, _, _, lm = cup_scene
    other, *_ = _aligned(mb.grace_hopper())
    distance, hull = departure(clean, other, lm)
    assert not closeness(distance, hull) < TRUST


def test_one_encoding_gives_the_swap_and_the_drawing(tiny_model, cup_scene):  # noqa: F811
    from localswap.convert.swapper import Swapper
    clean, with_cup, _, _, lm = cup_scene
    swapper = Swapper(tiny_model, "cpu", "fp32")
    crops = np.stack([cv2.resize(c, (swapper.resolution,) * 2) for c in (clean, with_cup)])
    lms = [lm * swapper.resolution / SIZE] * 2
    rgb, mask = swapper(crops, lms)
    rgb2, mask2, own = swapper.swap_and_draw(crops, lms)
    assert np.array_equal(rgb, rgb2) and (mask is None or np.allclose(mask, mask2))
    assert own.shape == rgb.shape and own.dtype == np.uint8
    assert np.abs(own.astype(int) - rgb.astype(int)).mean() > 1   # the other decoder


def test_auto_renders_a_video_and_says_where_it_could_not_look(tiny_model, cup_scene,  # noqa: F811
                                                             tmp_path):
    """The real render with `auto`: hands and objects. The test's model is too small to draw
    the astronaut it was trained on, so the check stands aside and the result says so."""
    from localswap import media
    from localswap.convert.render import convert
    from localswap.settings import ConvertSettings
    photo = mb.astronaut()
    frames = mb.moving_frames(photo, mb.FACE_CENTRES["astronaut"], 24)
    video = mb.encode(tmp_path / "astronaut.mp4", frames, 24)
    with one_torch_thread():
        result = convert(video, tiny_model, tmp_path / "auto.mp4",
                         ConvertSettings(occlusion="auto", device="cpu"))
        # the caller knows it is someone else (a quick swap's identity check said so)
        other = convert(video, tiny_model, tmp_path / "other.mp4",
                        ConvertSettings(occlusion="auto", device="cpu"), knows_person=False)
    assert result.frames == media.probe(video).frames and result.faces == result.frames
    assert result.objects["faces"] == result.faces and result.objects["looked"] == 0
    assert result.objects["closeness"] > 4.5       # the drawing is far from her face
    assert any("not trained on this person" in n for n in result.notes)
    assert other.objects["looked"] == 0 and other.objects["closeness"] is None
    assert any("not trained on this person" in n for n in other.notes)


def test_the_mask_view_outlines_an_object_kept_in_front(cup_scene):
    from localswap.convert.frames import Face, mask_view
    from localswap.convert.occluders import departure, in_front
    from localswap.faces.align import invert
    clean, with_cup, cup, drawing, lm = cup_scene
    photo = mb.astronaut()
    _, _, mat, lm_frame = _aligned(photo)
    distance, hull = departure(with_cup, drawing, lm)
    face = Face(lm_frame, mat, with_cup, occluder=in_front(distance, hull))
    view = mask_view(photo, [], [], [face])
    magenta = (view[..., 0] > 200) & (view[..., 1] < 80) & (view[..., 2] > 160)
    assert magenta.sum() > 100
    # the outline sits around the cup, where it was drawn in the frame
    ys, xs = np.nonzero(magenta)
    cup_frame = cv2.warpAffine(cup.astype(np.uint8), invert(mat), photo.shape[1::-1])
    cy, cx = np.argwhere(cup_frame).mean(0)
    assert abs(ys.mean() - cy) < 40 and abs(xs.mean() - cx) < 40
