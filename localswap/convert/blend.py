"""Paste a swapped face back into its frame: colour transfer in the crop, then the inverse
transform into a region of the frame around the face, masked and blended there.

A small model's face pasted into a larger one first takes the source's fine detail
(convert.detail) when the model has a detail bank. With `mouth`, where the target's lips
part its own mouth (teeth, tongue) stays inside them. `feather` is a straight alpha blend with
the feathered mask. `poisson` first runs OpenCV's seamless cloning (gradient-domain: the face
takes the frame's tones along the seam), then feathers that result in; it is slower and falls
back to `feather` where OpenCV refuses. Hands in front of the face (convert.occlusion) are
left out of the mask, and out of the colour statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from localswap.convert import color, mask as masks
from localswap.convert.detail import DetailBank, upscaled_warp
from localswap.convert.glasses import keep_mask
from localswap.convert.mouth import keep_share
from localswap.convert.occlusion import hand_mask
from localswap.faces.align import invert, transform_points
from localswap.faces.landmarks import face_hull, face_width

@dataclass
class Look:
    """How a face is put back (the blending part of ConvertSettings)."""
    color: str = "rct"
    blend: str = "feather"
    mask: str = "both"
    erode: int | None = None    # px; None = auto from the face width
    blur: int | None = None
    detail: float = 1.0         # strength of the source's fine detail (0 = off)
    mouth: float = 1.0          # how much of the target's mouth shows where the lips part

    @classmethod
    def of(cls, s) -> "Look":
        """The look a ConvertSettings asks for."""
        return cls(s.color, s.blend, s.mask, s.erode, s.blur, s.detail, s.mouth)


def _roi(inv: np.ndarray, size: int, frame_shape, margin: int,
         hull: np.ndarray | None) -> tuple[int, int, int, int]:
    """The frame region to work on: the crop's footprint, or just around the hull when the
    mask cannot reach past it (a third of the area: compose time goes with it)."""
    pts = hull if hull is not None else \
        transform_points(np.array([[0, 0], [size, 0], [size, size], [0, size]]), inv)
    h, w = frame_shape[:2]
    x0, y0 = np.floor(pts.min(0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(0)).astype(int) + margin
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def paste(frame: np.ndarray, crop: np.ndarray, swapped: np.ndarray,
          learned: np.ndarray | None, landmarks: np.ndarray, mat: np.ndarray,
          look: Look, bank: DetailBank | None = None,
          hands: list[np.ndarray] | None = None,
          glasses: list | None = None, occluder: np.ndarray | None = None
          ) -> tuple[int, int, np.ndarray] | None:
    """Blend `swapped` (the model's RGB uint8 crop for aligned `crop`) into `frame` in place.

    `landmarks` are in frame pixels, `mat` takes the frame to the crop, `learned` is the
    model's mask for the crop (float 0..1) or None; `bank` the model's detail bank or None;
    `hands` (frame pixels) and `glasses` ((x0, y0, alpha) of the target's frames, see
    convert.glasses) stay in front: the swap's mask leaves them out; so does `occluder` (crop
    pixels 0..1, convert.occluders).
    Returns (x0, y0, alpha): the blend mask of the region pasted at x0, y0; None if the face
    lies outside the frame.
    """
    size = crop.shape[0]
    lm_crop = transform_points(landmarks, mat)
    model_face = swapped
    if look.color != "none":
        stats = masks.hull_mask(lm_crop, size, size)
        if hands:       # a hand's colours are not the face's
            stats = stats * (1 - hand_mask([transform_points(h, mat) for h in hands], (0, 0),
                                           (size, size)))
        if occluder is not None:
            stats = stats * (1 - occluder)
        swapped = color.transfer(look.color, swapped, crop, stats)
    fw = face_width(landmarks)
    erode, blur = masks.auto_sizes(fw)
    erode = erode if look.erode is None else look.erode
    blur = blur if look.blur is None else look.blur
    inv = invert(mat)
    bound = face_hull(landmarks) if look.mask != "learned" or learned is None else None
    x0, y0, x1, y1 = _roi(inv, size, frame.shape, max(0, -erode) + blur + 2, bound)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    w, h = x1 - x0, y1 - y0
    to_roi = inv.copy()
    to_roi[:, 2] -= (x0, y0)
    to_face = to_roi
    if bank is not None and look.detail > 0:
        swapped, scale = bank.sharpen(swapped, lm_crop, landmarks.mean(0), fw, look.detail)
        to_face = upscaled_warp(to_roi, scale)
    # cubic: the face is enlarged 2-5x here (linear left it softer: check2 detail 1.01 -> 1.06)
    face = cv2.warpAffine(swapped, to_face, (w, h), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    hull = masks.hull_mask(landmarks - np.float32([x0, y0]), w, h) \
        if look.mask != "learned" or learned is None else None
    warped = None
    if learned is not None and look.mask != "hull":
        warped = cv2.warpAffine(np.ascontiguousarray(learned, np.float32), to_roi, (w, h),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = masks.refine(masks.combine(look.mask, hull, warped), erode, blur)
    if look.mouth > 0:
        # A small model draws teeth and tongue as a pale blur or keeps its lips shut; the
        # target's own, inside its parted lips, are sharp and in place: kept as far as the
        # model's mouth opens less than the target's (convert.mouth).
        inside = masks.mouth_interior(landmarks - np.float32([x0, y0]), (h, w))
        if inside is not None:
            share = look.mouth * keep_share(crop, model_face, lm_crop)
            if share > 0:
                alpha = alpha * (1.0 - share * inside)
    if hands:
        alpha = alpha * (1.0 - hand_mask(hands, (x0, y0), (h, w)))
    if glasses:
        alpha = alpha * (1.0 - keep_mask(glasses, (x0, y0), (h, w)))
    if occluder is not None:
        alpha = alpha * (1.0 - cv2.warpAffine(np.ascontiguousarray(occluder, np.float32),
                                              to_roi, (w, h), flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_CONSTANT))
    region = frame[y0:y1, x0:x1]
    if look.blend == "poisson":
        face = _seamless(face, region, alpha)
    frame[y0:y1, x0:x1] = cv2.blendLinear(face, region, alpha, 1 - alpha)
    return x0, y0, alpha


def _seamless(face: np.ndarray, region: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Poisson-blended face over the region, or `face` unchanged if OpenCV refuses."""
    binary = (alpha > 0.5).astype(np.uint8) * 255
    if binary.sum() == 0:
        return face
    pad = 4   # the clone mask must not touch the image border
    src = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REFLECT101)
    dst = cv2.copyMakeBorder(region, pad, pad, pad, pad, cv2.BORDER_REFLECT101)
    m = cv2.copyMakeBorder(binary, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    m[:pad + 1], m[-pad - 1:], m[:, :pad + 1], m[:, -pad - 1:] = 0, 0, 0, 0
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return face
    # OpenCV places the mask's bounding box (width = max - min) centred on `center`.
    cx = int(xs.min() + (xs.max() - xs.min()) // 2)
    cy = int(ys.min() + (ys.max() - ys.min()) // 2)
    try:
        out = cv2.seamlessClone(src, dst, m, (cx, cy), cv2.NORMAL_CLONE)
    except cv2.error:
        return face
    return out[pad:-pad, pad:-pad]


def draw_label(frame: np.ndarray, text: str = "AI-generated") -> None:
    """A small visible label in the bottom-right corner, in place."""
    h, w = frame.shape[:2]
    scale = max(0.35, h / 1080 * 0.8)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(3, int(th * 0.4))
    x1, y1 = w - pad, h - pad
    x0, y0 = max(0, x1 - tw - 2 * pad), max(0, y1 - th - base - 2 * pad)
    frame[y0:y1, x0:x1] = (frame[y0:y1, x0:x1].astype(np.uint16) * 2 // 5).astype(np.uint8)
    cv2.putText(frame, text, (x0 + pad, y1 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thick, cv2.LINE_AA)
