"""A real object carried in front of a real face: scikit-image's photo of an espresso cup
(`skimage.data.coffee`, public domain), cut out with GrabCut and moved over a clip's face as
a person drinking does (up from below the chin to the mouth and down again, a little to the
side), with the truth of where it is in every frame. Its colours (brown rim of coffee, white
china) lie near and far from skin, so it tests more than a colour key would.

No clip in the registry packages shows a cup, a microphone or a phone over a face; this puts
one there, on footage that is otherwise real.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from localswap import media
from localswap.faces.landmarks import face_hull, face_width

PERIOD = 75          # frames from one sip to the next
WIDTH = 0.7          # the cup's width in face widths


def cup() -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, alpha float32) of the cup in `skimage.data.coffee`, cropped to it."""
    from skimage import data
    image = data.coffee()
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), mask, (160, 10, 270, 300),
                np.zeros((1, 65)), np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_RECT)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
    fg = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(fg)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    return image[box], fg[box].astype(np.float32)


def place(frame: np.ndarray, thing: tuple[np.ndarray, np.ndarray], centre: tuple[float, float],
          width: float) -> tuple[np.ndarray, np.ndarray]:
    """(the frame with `thing` drawn at `centre`, `width` px wide; its alpha in the frame)."""
    rgb, alpha = thing
    scale = width / rgb.shape[1]
    rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.GaussianBlur(cv2.resize(alpha, rgb.shape[1::-1]), (0, 0), 0.7)
    out, full = frame.copy(), np.zeros(frame.shape[:2], np.float32)
    h, w = rgb.shape[:2]
    x0, y0 = int(centre[0] - w / 2), int(centre[1] - h / 2)
    X0, Y0 = max(x0, 0), max(y0, 0)
    X1, Y1 = min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if X1 > X0 and Y1 > Y0:
        a = alpha[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0, None]
        region = out[Y0:Y1, X0:X1].astype(np.float32)
        out[Y0:Y1, X0:X1] = (region * (1 - a) + rgb[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0] * a
                             ).astype(np.uint8)
        full[Y0:Y1, X0:X1] = a[..., 0]
    return out, full


def with_cup(video: Path, out: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Write `video` with the cup carried over its face to `out` (audio kept); return frame
    index -> (the cup's pixels inside the face, the face hull), for frames where it covers at
    least 50 face pixels (the shape `bench.occlusion.measure` reads)."""
    from localswap.faces.detect import make_backend
    info = media.probe(video)
    thing, backend = cup(), make_backend("mediapipe", video=True)
    truth = {}
    try:
        with media.VideoWriter(out, info.width, info.height, info.fps, audio_from=video,
                               crf=16) as writer:
            for index, _, frame in media.read_frames(video):
                faces = backend.detect(frame)
                if not faces:
                    writer.write(frame)
                    continue
                lm = faces[0].landmarks
                fw = face_width(lm)
                lift = np.sin(np.pi * index / PERIOD) ** 2      # 0 below the chin, 1 at the lips
                centre = (float(lm[:, 0].mean() + 0.15 * fw * np.sin(index / 20)),
                          float(lm[57, 1] + fw * (1.3 - 1.2 * lift)))
                drawn, alpha = place(frame, thing, centre, WIDTH * fw)
                writer.write(drawn)
                hull = np.zeros(frame.shape[:2], np.uint8)
                cv2.fillConvexPoly(hull, np.round(face_hull(lm)).astype(np.int32), 1)
                inside = (alpha > 0.5) & hull.astype(bool)
                if inside.sum() >= 50:
                    truth[index] = (inside, hull.astype(bool))
    finally:
        backend.close()
    return truth
