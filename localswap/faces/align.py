"""Alignment: a similarity transform from 68 landmarks to the mean face, then a square crop.

Face types name how much of the head the crop covers, measured in mean-face units (the mean
face of points 17-67 spans about 1 x 0.9 of them): `face` (brows to chin), `whole_face`
(adds forehead and cheeks: the default, good for swaps that keep the jawline) and `head`
(hair and ears, for head swaps).
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.choices import FACE_TYPE_BOX
from localswap.faces.landmarks import MEAN_FACE, MEAN_FACE_FIRST

DFL_POINTS = list(range(17, 49)) + [54]


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) taking src to dst.

    Returns a 2x3 matrix. Umeyama 1991, "Least-squares estimation of transformation
    parameters between two point patterns".
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = (sig * sign).sum() / var_s if var_s > 0 else 1.0
    mat = np.zeros((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = mu_d - scale * rot @ mu_s
    return mat


def transform_matrix(landmarks: np.ndarray, size: int, face_type: str) -> np.ndarray:
    """2x3 affine taking source-frame pixels to the `size` x `size` aligned crop."""
    if face_type == "dfl_whole_face":
        to_mean = umeyama(np.asarray(landmarks)[DFL_POINTS],
                          MEAN_FACE[np.array(DFL_POINTS) - MEAN_FACE_FIRST])
    else:
        to_mean = umeyama(np.asarray(landmarks)[MEAN_FACE_FIRST:], MEAN_FACE)
    cx, cy, half = FACE_TYPE_BOX[face_type]
    scale = size / (2 * half)
    to_crop = np.array([[scale, 0, (half - cx) * scale], [0, scale, (half - cy) * scale]])
    return compose(to_crop, to_mean)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine applying `inner` then `outer`."""
    a = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return a[:2]


def invert(mat: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(mat, np.float64))


def transform_points(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return (pts @ mat[:, :2].T + mat[:, 2]).astype(np.float32)


def warp_face(frame: np.ndarray, mat: np.ndarray, size: int) -> np.ndarray:
    """The aligned crop; areas outside the frame are filled by reflecting the border."""
    # INTER_AREA is not supported by warpAffine; when shrinking a lot, blur first (anti-alias).
    scale = float(np.sqrt(abs(np.linalg.det(mat[:, :2]))))
    src = frame
    if scale < 0.5:
        k = int(round(0.5 / scale)) * 2 + 1
        src = cv2.GaussianBlur(frame, (k, k), 0)
    return cv2.warpAffine(src, mat, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
