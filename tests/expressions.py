"""A real photo's expression changed by local warps: eyes narrowed, the mouth opened or shut."""
import cv2
import numpy as np


def expression_warp(img, lm, eye, mouth):
    """Narrow both eyes by `eye` (< 1) and open the mouth by `mouth` (> 1; < 1 shuts it),
    locally (`lm`: the 68 landmarks of `img`)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy = np.zeros((h, w), np.float32)
    for pts, scale, reach in ((lm[36:42], eye, (0.8, 0.7)), (lm[42:48], eye, (0.8, 0.7)),
                              (lm[60:68], mouth, (0.5, 0.45))):
        c = pts.mean(0)
        size = np.linalg.norm(pts[0] - pts[len(pts) // 2]) * (1 if len(pts) == 6 else 1.6)
        g = np.exp(-(((xx - c[0]) / (reach[0] * size)) ** 2
                     + ((yy - c[1]) / (reach[1] * size)) ** 2))
        dy += g * (yy - c[1]) * (1 / scale - 1)
    return cv2.remap(img, xx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
