"""The source's own fine detail on the swapped face.

A 64 px model pasted into a 150-300 px face is soft: eyelashes, nostril rims and lip lines
are finer than one model pixel. The source's faceset has them, in sharp 256 px crops of the
same person. For each swapped face the bank picks the source crop nearest in pose and eye
opening, and one for the mouth (nearest in lip gap), warps them triangle by triangle onto the
output's landmarks, and adds their fine band of lightness (finer than half a model pixel) to
the enlarged output: half on the mouth, and none where the photo's lips part unlike the
face's. Colour and shape stay the model's; only the fine texture comes from the photo.

A model dir keeps its bank in `detail/` (PNG crops + bank.json), written when training
starts (train.detail_bank), so a model copied elsewhere brings it along; an older model falls
back to its source faceset when that is still on disk.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from localswap.faces.landmarks import eye_gap, lip_gap, mouth_width
# the bank on disk and the landmark weights of "nearest", shared with its writer (training)
from localswap.train.detail_bank import BANK_DIR, BANK_FILE, FACE_WEIGHTS, MOUTH_WEIGHTS

HI = 256                 # the bank's working size (faceset crops are 256 px)
BAND = 0.5               # the band kept: finer than this many model pixels (Gaussian sigma)
# and how parted the eyelids and the lips are: by the landmarks alone, on the tuning pair
# the crops' eye opening did not follow the target's at all (correlation -0.14; 0.83 with
# this), so the lashes drew their own blinks; check4's crops matched a mouth the source held
# shut to one the target opened wide in a third of the frames (6% with this)
EYE_WEIGHT = 100.0
GAP_WEIGHT = 30.0
MAP_STEP = 2
# the warp map's fixed points (the crop's corners and edge middles), and the map's grid: 2 px,
# then enlarged: it is linear inside each triangle, so this is within 0.2 levels of the exact
# band on average; every pixel took 24 of 31 ms a face
_EDGE = np.float32([[x, y] for x in (0, HI / 2, HI - 1) for y in (0, HI / 2, HI - 1)
                    if (x, y) != (HI / 2, HI / 2)])
_GRID = ((np.mgrid[0:HI // MAP_STEP, 0:HI // MAP_STEP][::-1].reshape(2, -1).T + 0.5)
         * MAP_STEP - 0.5).astype(np.float32)                                      # (x, y)
STAY = 1.15              # keep last frame's crop unless another is this much nearer
# lip-gap differences (/ mouth width) at which the mouth keeps all its detail, and none
MOUTH_OK = 0.05
MOUTH_OFF = 0.12
# and at most this much there even then: glossy lips warped from a photo still drew bright
# rims around an open mouth in check4
MOUTH_KEEP = 0.5


class DetailBank:
    """Sharp crops of the source with their landmarks (in crop pixels of `size`)."""

    def __init__(self, folder: Path, info: dict):
        self.folder = folder
        self.face_type = info.get("face_type")
        self.size = int(info["size"])
        faces = info["faces"]
        self.images = [f["image"] for f in faces]
        self.landmarks = np.array([f["landmarks"] for f in faces], np.float32) \
            * (HI / self.size)
        self.gaps = np.float32([lip_gap(lm) for lm in self.landmarks])
        self.eyes = np.float32([eye_gap(lm) for lm in self.landmarks])
        self._cache: dict[int, np.ndarray] = {}
        self._last: list = []          # (centre, width, (face crop, mouth crop)) per face

    @classmethod
    def open(cls, model_dir: Path, manifest: dict) -> "DetailBank | None":
        """The model's bank, else its source faceset's crops; None when neither is there or
        they do not fit the model (another face type, or not sharper than the model)."""
        folder, name = Path(model_dir) / BANK_DIR, BANK_FILE
        if not (folder / name).is_file():
            path = ((manifest.get("facesets") or {}).get("source") or {}).get("path")
            folder, name = (Path(path), "faceset.json") if path else (folder, name)
        try:
            info = json.loads((folder / name).read_text())
            faces = [f for f in info["faces"] if len(f.get("landmarks") or []) == 68]
            info = dict(info, faces=faces)
            ok = (faces and info.get("face_type") == manifest.get("face_type")
                  and int(info["size"]) >= 2 * int(manifest.get("resolution", HI)))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(folder, info) if ok else None

    def image(self, i: int) -> np.ndarray:
        if i not in self._cache:
            bgr = cv2.imread(str(self.folder / self.images[i]), cv2.IMREAD_COLOR)
            if bgr is None:       # a damaged or deleted crop: no detail from it, no failed render
                bgr = np.full((HI, HI, 3), 128, np.uint8)
            if bgr.shape[0] != HI:
                bgr = cv2.resize(bgr, (HI, HI), interpolation=cv2.INTER_AREA
                                 if bgr.shape[0] > HI else cv2.INTER_CUBIC)
            self._cache[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return self._cache[i]

    def distances(self, lm_hi: np.ndarray, part: str = "face") -> np.ndarray:
        """How unlike each crop is to a face with these landmarks: its pose and eyes
        (`face`), or its pose and mouth (`mouth`)."""
        if part == "mouth":
            return (((self.landmarks - lm_hi[None]) ** 2).sum(-1) * MOUTH_WEIGHTS).sum(-1) \
                + GAP_WEIGHT * (self.gaps - lip_gap(lm_hi)) ** 2
        return (((self.landmarks - lm_hi[None]) ** 2).sum(-1) * FACE_WEIGHTS).sum(-1) \
            + EYE_WEIGHT * (self.eyes - eye_gap(lm_hi)) ** 2

    def pick(self, lm_hi: np.ndarray, centre: np.ndarray, width: float) -> tuple[int, int]:
        """The nearest crop for the face and for the mouth; for each, the same as this
        face's last one unless another is clearly nearer (a new crop every frame would make
        the texture flicker)."""
        last = next((k for c, w, k in self._last
                     if np.linalg.norm(c - centre) < 0.5 * max(w, width)), None)
        chosen = []
        for n, part in enumerate(("face", "mouth")):
            d = self.distances(lm_hi, part)
            best = int(np.argmin(d))
            if last is not None and d[last[n]] <= STAY * d[best]:
                best = last[n]
            chosen.append(best)
        self._last = [(c, w, k) for c, w, k in self._last
                      if np.linalg.norm(c - centre) >= 0.5 * max(w, width)][-15:]
        self._last.append((centre, width, tuple(chosen)))
        return chosen[0], chosen[1]

    def band(self, i: int, lm_hi: np.ndarray, sigma: float) -> np.ndarray:
        """Crop i's lightness warped onto `lm_hi`, less its own blur: (HI, HI) around 0,
        above on highlights, below on lashes and nostril rims."""
        from scipy.interpolate import LinearNDInterpolator
        n = HI // MAP_STEP
        where = LinearNDInterpolator(np.vstack([lm_hi, _EDGE]),
                                     np.vstack([self.landmarks[i], _EDGE]))(_GRID)
        where = np.where(np.isfinite(where), where, _GRID).reshape(n, n, 2).astype(np.float32)
        where = cv2.resize(where, (HI, HI), interpolation=cv2.INTER_LINEAR)
        light = cv2.remap(self.image(i), where[..., 0], where[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
        return light - cv2.GaussianBlur(light, (0, 0), sigma)

    def mouth_keep(self, j: int, lm_hi: np.ndarray) -> float:
        """How much of crop j's detail the mouth takes: MOUTH_KEEP, fading to none when the
        crop's lips part by more or less than the face's (over MOUTH_OK of the mouth's
        width): the photo's teeth and lip lines would be drawn across the model's mouth as
        cracks (check4: a wide-open mouth the source never made)."""
        width = mouth_width(lm_hi)
        off = abs(lip_gap(lm_hi) - self.gaps[j]) / width
        return MOUTH_KEEP * float(np.clip((MOUTH_OFF - off) / (MOUTH_OFF - MOUTH_OK), 0, 1))

    def sharpen(self, swapped: np.ndarray, lm_crop: np.ndarray, centre: np.ndarray,
                width: float, strength: float = 1.0) -> tuple[np.ndarray, float]:
        """The model's (R, R, 3) uint8 face -> (HI, HI, 3) with the source's fine detail,
        and the scale from model to bank pixels."""
        scale = HI / swapped.shape[0]
        lm_hi = (lm_crop + 0.5) * scale - 0.5          # cv2.resize's pixel centres
        up = cv2.resize(swapped, (HI, HI), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        i, j = self.pick(lm_hi, centre, width)
        face = self.band(i, lm_hi, BAND * scale)
        mouth = face if j == i else self.band(j, lm_hi, BAND * scale)
        area = mouth_area(lm_hi)
        fine = face * (1.0 - area) + mouth * (area * self.mouth_keep(j, lm_hi))
        return np.clip(up + strength * fine[..., None], 0, 255).astype(np.uint8), scale


def mouth_area(lm_hi: np.ndarray) -> np.ndarray:
    """(HI, HI) float: 1 on the lips and a little around them, fading out."""
    width = mouth_width(lm_hi)
    area = np.zeros((HI, HI), np.float32)
    cv2.fillPoly(area, [np.round(lm_hi[48:60]).astype(np.int32)], 1.0)
    grow = max(1, int(round(0.15 * width)))
    return cv2.GaussianBlur(cv2.dilate(area, np.ones((2 * grow + 1,) * 2, np.uint8)),
                            (0, 0), grow)


def upscaled_warp(to_roi: np.ndarray, scale: float) -> np.ndarray:
    """The crop->region affine for a crop resized by `scale` (pixel centres kept)."""
    a, b = to_roi[:, :2], to_roi[:, 2]
    out = np.empty_like(to_roi)
    out[:, :2] = a / scale
    out[:, 2] = b + a @ np.full(2, 0.5 / scale - 0.5)
    return out
