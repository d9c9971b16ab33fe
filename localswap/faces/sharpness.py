"""How sharp a face is, and which source faces are too soft to learn from.

Two scores per face, both inside the face hull of an aligned crop at the face's own
resolution (at most 128 px across: upscaling a small sharp face would smear it):

- `blur`: variance of the Laplacian. It grows with contrast as well as detail, so faces of
  one clip compare well with each other and faces of different clips do not: a soft
  110 kbit/s webcam scores 15-45, a sharp 720p vlog 400-1000, the same vlog blurred by a
  Gaussian of sigma 3 at 130 px about 28 (docs/benchmarks.md, "Sharpness").
- `fine`: the energy finer than one pixel (the crop less its Gaussian of sigma 1) over the
  energy at 2-4 pixels (a difference of Gaussians). A ratio, so light and contrast cancel.

Neither alone tells a soft webcam from a blurred face: a webcam softened to 15-45 and real
faces blurred by sigma 3 overlap on each (0.06-0.09 on `fine`, 10-30 on `blur`). Their
product `fine * sqrt(blur)` (how much fine detail, times how strong) does: on 34 clips of
real faces at 70-140 px, 18 soft webcams (110 kbit/s) scored 0.32-1.2 and 16 blurred by a
Gaussian of sigma 3 scored 0.12-0.33, the highest a 137 px face (docs/benchmarks.md,
"Sharpness"). Sharp clips score 1.6-23.

The source's rule (`judge_source`): a face is *blurred* when that product is under
DETAIL_FLOOR, and
*soft* when its `blur` is under `soft_share` of the upper decile of its own clip's faces
(photos are one group among themselves): motion blur and focus pulls, judged against what
the camera gives. Soft faces are left out unless that leaves the clip fewer than
KEEP_AT_LEAST faces; then the sharpest soft ones come back. Blurred faces never do.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from localswap.faces.align import warp_face
from localswap.faces.landmarks import face_hull

MEASURE_SIZE = 128      # the scores are taken on a crop of at most this size, whatever --size is
DETAIL_FLOOR = 0.3      # fine * sqrt(blur) under it: blurred, whatever its clip (module doc)
UPPER = 90              # a clip's sharp faces: its upper decile of `blur`
KEEP_AT_LEAST = 48      # a source clip keeps at least this many faces when it has them
SMALL_FACE = 48         # px across: a source face under it is the first left out (after soft)


def scores(frame: np.ndarray, mat: np.ndarray, size: int, landmarks: np.ndarray,
           crop: np.ndarray | None = None) -> tuple[float, float]:
    """(blur, fine) of the face that `mat` (frame -> crop of `size`) aligns; `landmarks` in
    crop space. `crop`, when given, is that crop (saves a warp when it is big enough)."""
    native = size / math.sqrt(abs(np.linalg.det(mat[:2, :2])))   # frame pixels across the crop
    side = int(max(32, min(MEASURE_SIZE, round(native))))
    k = side / size
    if crop is not None and size >= side:
        small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    else:
        small = warp_face(frame, mat * k, side)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mask = np.zeros(gray.shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(face_hull(landmarks * k)).astype(np.int32), 1)
    inside = mask > 0
    if inside.sum() <= 16:
        return 0.0, 0.0
    blur = float(cv2.Laplacian(gray, cv2.CV_32F)[inside].var())
    g1, g2, g4 = (cv2.GaussianBlur(gray, (0, 0), s) for s in (1.0, 2.0, 4.0))
    finest = float((gray - g1)[inside].var())
    middle = float((g2 - g4)[inside].var())
    return blur, finest / max(middle, 1e-6)


def detail(blur: float, fine: float) -> float:
    """fine * sqrt(blur): under DETAIL_FLOOR a face is blurred (module doc)."""
    return fine * math.sqrt(max(blur, 0.0))


def soft_line(blurs: list[float], share: float) -> float:
    """The `blur` score under which a face of this group is soft: `share` of its upper
    decile."""
    return share * float(np.percentile(blurs, UPPER)) if blurs else 0.0


def judge_source(blurs: list[float], fines: list[float], widths: list[float], share: float,
                 small_under: float = 0.0, window: int = 7,
                 keep_at_least: int = KEEP_AT_LEAST) -> list[str]:
    """'keep', 'soft', 'small' or 'blurred' for each face of one group (a clip's faces in
    frame order, or the photos), or 'kept soft' / 'kept small' for a soft or small face
    kept to make up the number: 'soft', 'small' and 'blurred' are left out.

    Blurred: the running median of `detail` over `window` neighbouring faces is under
    DETAIL_FLOOR (one frame's score wavers by +-30% with light and motion; a clip's
    sharpness moves slowly, but for motion blur, which the soft rule catches). Never kept.
    Small: narrower than `small_under` px. Soft: under `soft_line` of the large faces.
    Where that leaves fewer than `keep_at_least`, the sharpest soft faces come back, then
    the largest small ones. share 0 leaves out none for sharpness."""
    n = len(blurs)
    label = np.array(["keep"] * n, dtype=object)
    if share > 0 and n:
        d = np.array([detail(b, f) for b, f in zip(blurs, fines)])
        half = window // 2
        smooth = np.array([np.median(d[max(0, i - half):i + half + 1]) for i in range(n)])
        label[smooth < DETAIL_FLOOR] = "blurred"
    fair = [i for i in range(n) if label[i] != "blurred"]
    small = [i for i in fair if widths[i] < small_under]
    large = [i for i in fair if widths[i] >= small_under]
    line = soft_line([blurs[i] for i in large], share) if share > 0 else 0.0
    soft = [i for i in large if blurs[i] < line]
    back = max(0, min(keep_at_least, len(fair)) - (len(large) - len(soft)))
    order = sorted(soft, key=lambda i: -blurs[i]) + sorted(small, key=lambda i: -widths[i])
    for k, i in enumerate(order):
        what = "small" if widths[i] < small_under else "soft"
        label[i] = f"kept {what}" if k < back else what
    return list(label)
