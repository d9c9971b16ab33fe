"""A faceset on disk: aligned PNG crops plus `faceset.json` (JSON only, written atomically).

faceset.json = {"version": 1, "face_type": ..., "size": ..., "landmarks": "ibug68",
                "faces": [FaceEntry as dict, ...]}
Landmarks are stored in crop space as the 68-point iBUG layout, whatever backend found them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from localswap.errors import UserError
from localswap.workspace import atomic_write_bytes

VERSION = 1
INDEX_FILE = "faceset.json"


@dataclass
class FaceEntry:
    image: str                      # PNG file name inside the faceset folder
    source: str                     # input file the face came from (absolute path)
    frame: int                      # frame index in the source (0 for photos)
    timestamp: float                # seconds into the source (0 for photos)
    bbox: list[float]               # x0, y0, x1, y1 in source-frame pixels
    landmarks: list[list[float]]    # 68 x 2, crop space
    yaw: float                      # degrees, + = face turned to the image's right
    pitch: float
    roll: float
    blur: float                     # sharpness score (higher = sharper)
    face_size: float                # face width in source pixels
    transform: list[list[float]]    # 2x3 affine, source frame -> crop
    score: float = 1.0              # detector confidence
    track: int = 0                  # track id within its source video
    fine: float = 0.0               # fine-detail ratio (faces.sharpness; 0 = not measured)
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.source, self.frame)

    def landmarks_array(self) -> np.ndarray:
        return np.asarray(self.landmarks, np.float32)

    def transform_array(self) -> np.ndarray:
        return np.asarray(self.transform, np.float64)


def yaw_bin(yaw: float) -> str:
    """Practitioners' split of poses: frontal (<15 deg), three-quarter (<45), profile."""
    a = abs(yaw)
    return "frontal" if a < 15 else "three_quarter" if a < 45 else "profile"


class Faceset:
    def __init__(self, path: str | Path, face_type: str, size: int,
                 faces: list[FaceEntry] | None = None):
        self.path = Path(path)
        self.face_type = face_type
        self.size = int(size)
        self.faces = faces or []

    @classmethod
    def load(cls, path: str | Path) -> "Faceset":
        path = Path(path)
        index = path / INDEX_FILE
        if not index.is_file():
            raise UserError(f"{path}: not a faceset (no {INDEX_FILE}); run extract first")
        try:
            data = json.loads(index.read_text())
            known = {f.name for f in fields(FaceEntry)}
            faces = [FaceEntry(**{k: v for k, v in f.items() if k in known})
                     for f in data["faces"]]
            return cls(path, data["face_type"], data["size"], faces)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{index}: damaged faceset index ({exc})") from exc

    @classmethod
    def open_or_create(cls, path: str | Path, face_type: str, size: int) -> "Faceset":
        path = Path(path)
        if (path / INDEX_FILE).is_file():
            fs = cls.load(path)
            if fs.face_type != face_type or fs.size != size:
                raise UserError(f"{path} holds {fs.face_type} faces at {fs.size} px; extract "
                                f"with --face-type {fs.face_type} --size {fs.size} or use a new "
                                "folder")
            return fs
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, face_type, size)

    @property
    def faces(self) -> list[FaceEntry]:
        return self._faces

    @faces.setter
    def faces(self, faces: list[FaceEntry]) -> None:
        self._faces = list(faces)
        self._keys = {f.key for f in self._faces}

    def has(self, source: str, frame: int) -> bool:
        return (source, frame) in self._keys

    def add(self, entry: FaceEntry) -> None:
        self.faces.append(entry)
        self._keys.add(entry.key)

    def remove(self, entry: FaceEntry) -> None:
        self.remove_many([entry])

    def remove_many(self, entries: list[FaceEntry]) -> None:
        gone = {id(e) for e in entries}
        self.faces = [f for f in self.faces if id(f) not in gone]
        for e in entries:
            (self.path / e.image).unlink(missing_ok=True)

    def save(self) -> None:
        # Compact JSON: the C encoder is ~10x faster than indented output on big facesets.
        atomic_write_bytes(self.path / INDEX_FILE, json.dumps({
            "version": VERSION, "face_type": self.face_type, "size": self.size,
            "landmarks": "ibug68", "faces": [dict(vars(f)) for f in self.faces]},
            separators=(",", ":")).encode())

    def image_path(self, entry: FaceEntry) -> Path:
        return self.path / entry.image

    def __len__(self) -> int:
        return len(self.faces)
