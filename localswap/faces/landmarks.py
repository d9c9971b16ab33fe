"""The 68-point iBUG landmark layout every backend is converted to, and what follows from it.

Indices: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67 ("right" = the subject's
right, on the image's left).
"""
from __future__ import annotations

import cv2
import numpy as np

JAW = list(range(0, 17))
RIGHT_BROW, LEFT_BROW = list(range(17, 22)), list(range(22, 27))
NOSE = list(range(27, 36))
RIGHT_EYE, LEFT_EYE = list(range(36, 42)), list(range(42, 48))
MOUTH = list(range(48, 68))

# MediaPipe FaceMesh (468/478) index for each iBUG-68 point.
MEDIAPIPE_TO_68 = np.array([
    127, 234, 93, 132, 58, 172, 150, 176, 152, 400, 379, 397, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,                                    # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,                                              # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                        # eyes
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,                               # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,                                               # inner lips
])

# WFLW-98 (facexlib's AWing FAN) index for each iBUG-68 point; brows average two WFLW points
# where WFLW traces the brow's upper and lower edge.
_WFLW_JAW = list(range(0, 33, 2))
_WFLW_BROWS = [33, (34, 41), (35, 40), (36, 39), (37, 38), (42, 50), (43, 49), (44, 48),
               (45, 47), 46]
_WFLW_NOSE = list(range(51, 60))
_WFLW_EYES = [60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75]
_WFLW_MOUTH = list(range(76, 96))
WFLW_TO_68 = _WFLW_JAW + _WFLW_BROWS + _WFLW_NOSE + _WFLW_EYES + _WFLW_MOUTH


def from_mediapipe(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float32)[MEDIAPIPE_TO_68, :2]


def from_wflw98(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float32)
    out = [points[list(i)].mean(0) if isinstance(i, tuple) else points[i] for i in WFLW_TO_68]
    return np.stack(out)


# Mean face for points 17-67 in a unit square (the widely used normalised iBUG mean shape).
MEAN_FACE = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482],
    [0.29077, 0.0344891], [0.393397, 0.0773906], [0.586856, 0.0773906],
    [0.689483, 0.0344891], [0.799124, 0.0187482], [0.904991, 0.038915],
    [0.98004, 0.106454], [0.490127, 0.203352], [0.490127, 0.307009],
    [0.490127, 0.409805], [0.490127, 0.515625], [0.36688, 0.587326],
    [0.426036, 0.609345], [0.490127, 0.628106], [0.554217, 0.609345],
    [0.613373, 0.587326], [0.121737, 0.216423], [0.187122, 0.178758],
    [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099],
    [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852],
    [0.793132, 0.178758], [0.858516, 0.216423], [0.79751, 0.244077],
    [0.719335, 0.245099], [0.254149, 0.780233], [0.340985, 0.745405],
    [0.428858, 0.727388], [0.490127, 0.742578], [0.551395, 0.727388],
    [0.639268, 0.745405], [0.726104, 0.780233], [0.642159, 0.864805],
    [0.556721, 0.902192], [0.490127, 0.909281], [0.423532, 0.902192],
    [0.338094, 0.864805], [0.290379, 0.784792], [0.428096, 0.778746],
    [0.490127, 0.785343], [0.552157, 0.778746], [0.689874, 0.784792],
    [0.553364, 0.824182], [0.490127, 0.831803], [0.42689, 0.824182],
], np.float64)
MEAN_FACE_FIRST = 17

# A generic 3D head (mm, y up, z towards the camera) for six stable points, for pose estimates.
# x/y of eyes and mouth follow MEAN_FACE's proportions (117.5 mm per unit); the chin's depth
# was set so that two frontal photos (astronaut, Grace Hopper) read as |pitch| < 2 degrees.
_POSE_IDX = [30, 8, 36, 45, 48, 54]
_POSE_3D = np.array([
    [0.0, 0.0, 0.0], [0.0, -70.0, -20.0], [-43.3, 35.2, -26.0], [43.3, 35.2, -26.0],
    [-27.7, -31.1, -24.1], [27.7, -31.1, -24.1]], np.float64)


def estimate_pose(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees from 68 image-space points (a pinhole camera guess).

    Yaw > 0: the face turns towards the image's right; pitch > 0: it looks down. A rough
    estimate (six points, a generic head): good for frontal / three-quarter / profile bins.
    """
    pts = np.asarray(landmarks, np.float64)[_POSE_IDX]
    f = float(max(width, height))
    cam = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)
    # Flip y of the model: image y grows downwards.
    model = _POSE_3D * np.array([1, -1, -1])
    ok, rvec, _ = cv2.solvePnP(model, pts, cam, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return 0.0, 0.0, 0.0
    rot, _ = cv2.Rodrigues(rvec)
    sy = np.hypot(rot[0, 0], rot[1, 0])
    pitch = np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    yaw = -np.degrees(np.arctan2(-rot[2, 0], sy))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    pitch = (pitch + 180) % 360 - 180
    if pitch > 90:
        pitch -= 180
    elif pitch < -90:
        pitch += 180
    return float(yaw), float(pitch), float(roll)


def face_hull(landmarks: np.ndarray) -> np.ndarray:
    """Convex hull polygon of the face (jaw + brows lifted a little towards the forehead)."""
    pts = np.asarray(landmarks, np.float32).copy()
    brows = pts[17:27]
    eyes_y = pts[36:48, 1].mean()
    lifted = brows.copy()
    lifted[:, 1] -= (eyes_y - brows[:, 1].mean()) * 0.8
    return cv2.convexHull(np.concatenate([pts[:17], brows, lifted])).reshape(-1, 2)


def region_masks(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """uint8 0/255 masks (size x size) for the face hull, eyes (with brows) and mouth."""
    pts = np.asarray(landmarks, np.float32)
    out = {}
    for name, poly in (("face", face_hull(pts)),
                       ("eyes", cv2.convexHull(pts[RIGHT_EYE + RIGHT_BROW])),
                       ("eyes2", cv2.convexHull(pts[LEFT_EYE + LEFT_BROW])),
                       ("mouth", cv2.convexHull(pts[MOUTH]))):
        m = np.zeros((size, size), np.uint8)
        cv2.fillConvexPoly(m, np.round(poly).astype(np.int32).reshape(-1, 2), 255,
                           lineType=cv2.LINE_AA)
        out[name] = m
    out["eyes"] = np.maximum(out["eyes"], out.pop("eyes2"))
    return out


def eye_ratio(eye: np.ndarray) -> float:
    """Eye aspect ratio (Soukupová & Čech 2016) of one eye's six points: lid gaps over the
    eye's width."""
    gaps = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    width = np.linalg.norm(eye[0] - eye[3])
    return float(gaps / (2 * width)) if width > 0 else 0.0


def eye_opening(landmarks: np.ndarray) -> float:
    """Both eyes' mean aspect ratio, from 68 points."""
    pts = np.asarray(landmarks, np.float64)
    return (eye_ratio(pts[RIGHT_EYE]) + eye_ratio(pts[LEFT_EYE])) / 2


# The smallest face the render swaps (px across): the target's floor, so a target faceset
# keeps every face that will be rendered (smaller detections are left alone there too).
SWAPPABLE_FACE = 12


def face_width(landmarks: np.ndarray) -> float:
    """Face size in pixels from 68 iBUG landmarks: the jaw's ear-to-ear span (points 0 and
    16), steadier than a box under rotation."""
    pts = np.asarray(landmarks)
    return float(np.linalg.norm(pts[16] - pts[0]))


def expression_map(landmarks: np.ndarray, size: int, filled: bool = True) -> np.ndarray:
    """uint8 0/255 (size x size) drawing of the lids, brows and lips: what a face's
    expression is, without its jaw or nose (which carry more of who it is). `filled` also
    paints the eye openings and the inner mouth solid: on a 64 px face an open and a shut eye
    differ by a pixel or two of line, which the decoder's 8-32 px stages (where the guide is
    averaged down) barely see, while a filled opening averages to a value that grows with it.
    Models made before it (manifest without "guide_map") were trained on the lines alone."""
    pts = np.round(np.asarray(landmarks, np.float32) * 16).astype(np.int32)   # 4 fractional bits
    m = np.zeros((size, size), np.uint8)
    thick = max(1, round(size / 64))
    if filled:
        for idx in (RIGHT_EYE, LEFT_EYE, MOUTH[12:]):
            cv2.fillPoly(m, [pts[idx].reshape(-1, 1, 2)], 255, cv2.LINE_AA, 4)
    for idx, closed in ((RIGHT_EYE, True), (LEFT_EYE, True), (RIGHT_BROW, False),
                        (LEFT_BROW, False), (MOUTH[:12], True), (MOUTH[12:], True)):
        cv2.polylines(m, [pts[idx].reshape(-1, 1, 2)], closed, 255, thick, cv2.LINE_AA, 4)
    return m


def mouth_width(lm: np.ndarray) -> float:
    """Corner to corner of the mouth (68-point landmarks), at least 1, in the landmarks' pixels."""
    return max(1.0, float(np.linalg.norm(lm[54] - lm[48])))


def lip_gap(lm: np.ndarray) -> float:
    """How far the inner lips part (68-point landmarks), in the landmarks' pixels."""
    return float(np.linalg.norm(lm[[61, 62, 63]] - lm[[67, 66, 65]], axis=1).mean())


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap (mean of the three inner pairs) over the jaw's width, so it does not
    change with the face's size in the frame."""
    pts = np.asarray(landmarks, np.float64)
    width = face_width(pts)
    return lip_gap(pts) / width if width > 0 else 0.0


def eye_gap(lm: np.ndarray) -> float:
    """How far the eyelids part, both eyes (68-point landmarks), in the landmarks' pixels."""
    return float(np.linalg.norm(lm[[37, 38, 43, 44]] - lm[[41, 40, 47, 46]], axis=1).mean())
