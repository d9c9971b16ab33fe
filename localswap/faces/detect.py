"""Face detector backends behind one small protocol (localswap.faces.detection), chosen by name.

A backend finds faces in an RGB frame and returns each with 68 iBUG landmarks in frame pixels.
`mediapipe` (default) ships its weights inside the wheel and runs offline on CPU; `facexlib`
(RetinaFace + AWing FAN) needs its weight files in the weights folder (`weights_dir()`).
"""
from __future__ import annotations

import os
from pathlib import Path

from localswap.choices import DETECTORS
from localswap.errors import UserError
from localswap.faces.detection import FaceBackend

SOURCE_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def user_weights_dir() -> Path:
    """The per-user data folder for weights: $XDG_DATA_HOME/localswap/weights (by default
    ~/.local/share/localswap/weights)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "localswap" / "weights"


def weights_dir() -> Path:
    """Where third-party weight files live: LOCALSWAP_WEIGHTS when set; else weights/ of a
    source checkout (beside the package, when it exists); else the user data folder, which
    is what an installed package uses."""
    if os.environ.get("LOCALSWAP_WEIGHTS"):
        return Path(os.environ["LOCALSWAP_WEIGHTS"]).expanduser()
    if SOURCE_WEIGHTS.is_dir():
        return SOURCE_WEIGHTS
    return user_weights_dir()


def make_backend(name: str, *, video: bool = False, min_confidence: float = 0.5,
                 max_faces: int = 4, device: str = "auto") -> FaceBackend:
    """Build a backend by name; `video=True` lets it track faces between frames."""
    if name == "mediapipe":
        from localswap.faces.mediapipe_backend import MediaPipeBackend
        return MediaPipeBackend(video=video, min_confidence=min_confidence, max_faces=max_faces)
    if name == "facexlib":
        from localswap.faces.facexlib_backend import FacexlibBackend
        return FacexlibBackend(weights_dir(), min_confidence=min_confidence, device=device)
    raise UserError(f"unknown detector {name!r}: use {' or '.join(DETECTORS)}")
