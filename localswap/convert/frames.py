"""The frame operations the converters share: the video converter (render.py), photos,
the frame preview and live mode. A frame's faces are picked (large enough, or the largest),
aligned to the model's crop, run through the model in batches, and composed back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from localswap import __version__, media
from localswap.convert.blend import Look, draw_label, paste
from localswap.convert.occlusion import hand_mask
from localswap.convert.swapper import Swapper
from localswap.errors import UserError
from localswap.faces.align import transform_matrix, transform_points, warp_face
from localswap.faces.landmarks import SWAPPABLE_FACE as MIN_FACE, face_width
from localswap.progress import plural

# The converter's steps, each with its busy seconds in ConvertResult.stages.
STEPS = ("decode", "detect", "align", "model", "compose", "encode")


class Cancelled(UserError):
    """The caller asked the conversion to stop; nothing was written."""


@dataclass
class ConvertResult:
    out: str
    model: str = ""
    device: str = ""
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    filled: int = 0                 # faces filled in across detection gaps
    seconds: float = 0.0
    stages: dict = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))  # busy seconds
    people: dict = field(default_factory=dict)    # "person N" -> frames swapped (--person/--map)
    notes: list = field(default_factory=list)     # plain sentences, e.g. who is missing where
    objects: dict = field(default_factory=dict)   # --occlusion auto: faces looked at, found

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = round(self.fps, 2)
        d["stages"] = {k: round(v, 3) for k, v in self.stages.items()}
        return d

    def report(self) -> str:
        busy = ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items())
        return (f"{self.out}: {plural(self.frames, 'frame')}, {plural(self.faces, 'face')} "
                f"swapped in {plural(self.frames_with_faces, 'frame')} ({self.filled} filled "
                "across gaps)\n"
                f"model {self.model} on {self.device}; {self.seconds:.1f} s, "
                f"{self.fps:.1f} frames/s\nbusy time per stage: {busy}"
                + "".join(f"\n{who}: swapped in {plural(n, 'frame')}"
                          for who, n in self.people.items())
                + (f"\nkept an object in front of the face in "
                   f"{plural(self.objects['found'], 'face')}" if self.objects.get("found")
                   else "")
                + "".join(f"\n{note}" for note in self.notes))


@dataclass
class Face:
    landmarks: np.ndarray       # frame pixels, smoothed
    mat: np.ndarray             # frame -> crop
    crop: np.ndarray            # aligned RGB uint8
    swapped: np.ndarray | None = None
    learned: np.ndarray | None = None
    swapper: "Swapper | None" = None     # the model for this face, when people are mapped
    occluder: np.ndarray | None = None   # crop pixels 0..1 kept in front (convert.occluders)


@dataclass
class Frame:
    index: int
    image: np.ndarray           # read-only decoded frame
    faces: list[Face]
    hands: list[np.ndarray] = field(default_factory=list)   # in front of the faces (occlusion)
    glasses: list = field(default_factory=list)   # (x0, y0, alpha) frames kept (convert.glasses)


def synthetic_tag(swapper: Swapper) -> str:
    return (f"Synthetic media: faces replaced by localswap {__version__} using model "
            f"'{swapper.name}' ({swapper.arch}, {swapper.resolution} px)")


def pick_faces(landmarks: list[np.ndarray], which: str) -> list[np.ndarray]:
    lms = [lm for lm in landmarks if face_width(lm) >= MIN_FACE]
    if which == "largest" and lms:
        lms = [max(lms, key=face_width)]
    return lms


class Largest:
    """For --faces largest in a video: the largest tracked face, kept while it stays within
    20% of the largest, so two people of about the same size do not swap back and forth."""

    def __init__(self):
        self.track: int | None = None

    def __call__(self, tracked: list) -> list:
        if not tracked:
            return []
        biggest = max(tracked, key=lambda f: face_width(f.landmarks))
        mine = next((f for f in tracked if f.track == self.track), None)
        if mine is None or face_width(mine.landmarks) < 0.8 * face_width(biggest.landmarks):
            mine, self.track = biggest, biggest.track
        return [mine]


def align_faces(image: np.ndarray, landmarks: list[np.ndarray],
           swapper: Swapper | list[Swapper]) -> list[Face]:
    """Aligned crops; `swapper` is one model for all faces or a list with one per face."""
    per = swapper if isinstance(swapper, list) else [swapper] * len(landmarks)
    faces = []
    for lm, sw in zip(landmarks, per):
        mat = transform_matrix(lm, sw.resolution, sw.face_type)
        faces.append(Face(lm, mat, warp_face(image, mat, sw.resolution),
                           swapper=sw if isinstance(swapper, list) else None))
    return faces


def run_model(swapper: Swapper, faces: list[Face], batch: int, check=None) -> None:
    """Swap `faces` in batches; `check` (a convert.occluders.OccluderCheck) also has the
    model draw the target's face and marks what stands in front of it."""
    groups: dict[int, list[Face]] = {}
    for f in faces:                      # mapped people: one batch per model
        groups.setdefault(id(f.swapper or swapper), []).append(f)
    for group in groups.values():
        model = group[0].swapper or swapper
        for i in range(0, len(group), batch):
            chunk = group[i:i + batch]
            # the landmarks in crop pixels (what a guided model draws its expression map from)
            lms = [transform_points(f.landmarks, f.mat) for f in chunk]
            crops = np.stack([f.crop for f in chunk])
            if check is not None and model.draws_target:
                rgb, mask, own = model.swap_and_draw(crops, lms)
                check(chunk, own, lms)
            else:
                rgb, mask = model(crops, lms)
            for k, f in enumerate(chunk):
                f.swapped = rgb[k]
                f.learned = None if mask is None else mask[k]


def compose(frame: Frame, look: Look, label: bool,
            swapper: Swapper | None = None, masks: list | None = None) -> np.ndarray:
    """The frame with its swapped faces pasted; `swapper` lends its detail bank (a mapped
    face uses its own model's). Each face's blend mask, (x0, y0, alpha), is appended to
    `masks` when one is given."""
    if not frame.faces and not label:
        return frame.image
    image = frame.image.copy()
    for f in frame.faces:
        model = f.swapper or swapper
        placed = paste(image, f.crop, f.swapped, f.learned, f.landmarks, f.mat, look,
                       getattr(model, "detail", None), frame.hands, frame.glasses,
                       f.occluder)
        if masks is not None and placed is not None:
            masks.append(placed)
    if label:
        draw_label(image)
    return image


def mask_view(image: np.ndarray, masks: list, hands: list[np.ndarray],
              faces: list[Face] = ()) -> np.ndarray:
    """`image` with where the swap goes tinted green (as strongly as it replaces the frame),
    each hand kept in front outlined in orange and each other thing kept in front (a face's
    `occluder`) in magenta: the frame preview's mask view."""
    out = image.astype(np.float32)
    green = np.float32([40, 220, 90])
    for x0, y0, alpha in masks:
        h, w = alpha.shape
        a = 0.5 * alpha[..., None]
        out[y0:y0 + h, x0:x0 + w] = out[y0:y0 + h, x0:x0 + w] * (1 - a) + green * a
    out = np.clip(out, 0, 255).astype(np.uint8)
    if hands:
        _outline(out, hand_mask(hands, (0, 0), image.shape), (255, 150, 0))
    for f in faces:
        if f.occluder is not None:
            _outline(out, cv2.warpAffine(np.ascontiguousarray(f.occluder, np.float32), f.mat,
                                         image.shape[1::-1],
                                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP),
                     (230, 40, 200))
    return out


def _outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Draw the outline of `mask` (frame pixels, 0..1) on `image` in place."""
    contours, _ = cv2.findContours((mask > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, colour, max(2, round(min(image.shape[:2]) / 240)),
                     cv2.LINE_AA)


def check_paths(inp: Path, out: Path, video: bool) -> None:
    if out.resolve() == inp.resolve():
        raise UserError(f"{out}: the output would overwrite the input; pick another name")
    if video and out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise UserError(f"{out.name}: a video is written as H.264 mp4; name it .mp4")
    if not video and not media.is_image(out):
        raise UserError(f"{out.name}: a photo is written as an image; name it .png or .jpg")
