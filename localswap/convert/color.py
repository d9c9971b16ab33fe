"""Colour transfer: make the swapped face take the original face's colours and lighting.

Every method measures statistics inside the face mask only (background and hair would skew
them) and then recolours the whole swapped crop. Inputs and output are RGB uint8 crops.
  rct  - Reinhard et al. 2001: per-channel mean and deviation matched in Lab, except that
         the lightness contrast is only ever raised: lowering it to a flatter-lit target's
         washed out the eyes, brows and lips (session 9, docs/benchmarks.md); and the colour
         contrast (a*, b*) is only ever lowered: raising it to a target whose colours vary
         more (glasses frames, lips, a darker skin's red undertone) multiplied the model's
         own colour noise into red blotches on the cheeks, painted lips and pink eye rims
         (a* gain 1.4-1.7; session 13, issue 27)
  lct  - linear transfer: mean and full 3x3 colour covariance matched (PCA square roots)
  hist - per-channel histogram matching
  none - unchanged
"""
from __future__ import annotations

import cv2
import numpy as np

from localswap.choices import COLOR_METHODS

METHODS = COLOR_METHODS
_MIN_PIXELS = 32  # fewer masked pixels than this and the statistics mean nothing


def transfer(method: str, swapped: np.ndarray, original: np.ndarray,
             mask: np.ndarray) -> np.ndarray:
    """`swapped` recoloured towards `original`, statistics taken where `mask` > 0.5."""
    if method not in METHODS:
        raise ValueError(f"unknown colour transfer {method!r}")
    sel = np.asarray(mask) > 0.5
    if method == "none" or int(sel.sum()) < _MIN_PIXELS:
        return swapped
    return {"rct": rct, "lct": lct, "hist": hist}[method](swapped, original, sel)


def rct(swapped: np.ndarray, original: np.ndarray, sel: np.ndarray) -> np.ndarray:
    src = cv2.cvtColor(swapped.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(original.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    s, r = src[sel], ref[sel]
    mu_s, sd_s = s.mean(0), s.std(0)
    mu_r, sd_r = r.mean(0), r.std(0)
    # A flat channel (sd ~ 0) must not blow up into noise: clamp the gain. Lightness keeps
    # at least its own contrast: it is where the eyes, brows, nostrils and lips are drawn;
    # colour at most its own: more turns the model's uncertain tints into painted patches.
    gain = np.clip(sd_r / np.maximum(sd_s, 1e-3), 0.2, 5.0)
    gain[0] = max(gain[0], 1.0)
    gain[1:] = np.minimum(gain[1:], 1.0)
    out = (src - mu_s) * gain + mu_r
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return vecs @ np.diag(np.sqrt(np.maximum(vals, 0))) @ vecs.T


def lct(swapped: np.ndarray, original: np.ndarray, sel: np.ndarray) -> np.ndarray:
    src = swapped.astype(np.float32) / 255
    s, r = src[sel].astype(np.float64), original[sel].astype(np.float64) / 255
    mu_s, mu_r = s.mean(0), r.mean(0)
    eye = np.eye(3) * 1e-4
    qs = _sqrtm(np.cov(s, rowvar=False) + eye)
    qr = _sqrtm(np.cov(r, rowvar=False) + eye)
    m = (qr @ np.linalg.inv(qs)).astype(np.float32)
    out = (src - mu_s.astype(np.float32)) @ m.T + mu_r.astype(np.float32)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def hist(swapped: np.ndarray, original: np.ndarray, sel: np.ndarray) -> np.ndarray:
    out = np.empty_like(swapped)
    levels = np.arange(256, dtype=np.float64)
    for c in range(3):
        cdf_s = np.cumsum(np.bincount(swapped[..., c][sel], minlength=256)).astype(np.float64)
        cdf_r = np.cumsum(np.bincount(original[..., c][sel], minlength=256)).astype(np.float64)
        cdf_s /= cdf_s[-1]
        cdf_r /= cdf_r[-1]
        lut = np.interp(cdf_s, cdf_r, levels)
        out[..., c] = np.clip(lut + 0.5, 0, 255).astype(np.uint8)[swapped[..., c]]
    return out
