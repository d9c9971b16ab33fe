"""Does a trained model fit a new video? A model trained on one pair is a model of that
target person: on new footage of the same person it renders at once; on someone else it
carries the learned person's face shape and light (erased glasses, grey patches), and
adapting it (a short training from it on the new person, `swap --adapt`) is the cure.

`check(model, video)` compares the main person of the video with the model's target
signature (localswap.models.identity) before any render, and says so in one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localswap.errors import UserError
from localswap.models import identity

# The same person: dlib puts one person's photos within 0.6 of each other; 0.5 leaves a
# margin (a new clip of the same person measured 0.2-0.35 here, other people 0.6-0.9).
SAME = identity.SAME
FRAMES = 8       # frames of the new video looked at (about 1 s of work on 2 CPU cores)


@dataclass
class Fit:
    verdict: str                 # "same", "other", "any" (any-target or .dfm), "unknown"
    model: str
    distance: float | None = None
    learned: str = ""            # who the model learned as its target, in the user's words
    adapt_seconds: float = 0.0   # how long adapting to this person takes here (other only)
    why: str = ""                # for "unknown": why it could not be told

    @property
    def fits(self) -> bool:
        """Render at once: the same person, a model for anyone, or nothing to go on."""
        return self.verdict != "other"

    def sentence(self) -> str:
        if self.verdict == "same":
            return (f"This video shows the person {self.model} was trained on (face "
                    f"distance {self.distance:.2f}): it renders with no training.")
        if self.verdict == "any":
            return f"{self.model} works on any person: it renders with no training."
        if self.verdict == "unknown":
            return f"Whether {self.model} fits this person is not known ({self.why})."
        from localswap.progress import duration_text
        where = "this GPU" if _device_kind() == "cuda" else "this CPU"
        return (f"{self.model} learned {self.learned or 'another person'}'s face shape and "
                f"light, not this person's (face distance {self.distance:.2f}): on this "
                f"person expect artifacts. Adapt it to this person: about "
                f"{duration_text(self.adapt_seconds)} on {where}.")

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "model": self.model, "distance": self.distance,
                "learned": self.learned, "adapt_seconds": round(self.adapt_seconds, 1),
                "fits": self.fits, "sentence": self.sentence()}


def _device_kind() -> str:
    from localswap.gpu import nvidia_present
    return "cuda" if nvidia_present() else "cpu"


def _learned(model_dir: Path) -> str:
    """The name the model's target goes by: the video the user gave, where known."""
    from localswap.train.manifest import Manifest
    named = identity.names(model_dir).get("target")
    if named:
        return named
    try:
        name = Manifest.read(model_dir).target
    except UserError:
        return ""
    return name[:-len("-target")] if name.endswith("-target") else name


def check(model_dir: str | Path, video: str | Path, ws=None) -> Fit:
    """The fit of the model to the main person of `video` (a video or a photo)."""
    return _check(Path(model_dir), lambda: identity.media_signature([video], FRAMES),
                  lambda: adapt_seconds(video, ws))


def check_images(model_dir: str | Path, images: list[np.ndarray],
                 seconds: float = 0.0) -> Fit:
    """The fit to the main person of these RGB frames (Live: the webcam's); `seconds`: how
    long adapting from them takes (the caller knows the recording)."""
    return _check(Path(model_dir), lambda: identity.images_signature(images),
                  lambda: adapt_seconds(None) + seconds)


def _check(model_dir: Path, signature, seconds) -> Fit:
    from localswap.train.manifest import read_manifest
    name = model_dir.name
    try:
        manifest = read_manifest(model_dir)
    except UserError as exc:
        return Fit("unknown", name, why=str(exc))
    if manifest["arch"] == "dfm" or manifest.get("any_target"):
        return Fit("any", name)
    learned = identity.model_signature(model_dir, "target")
    if learned is None:
        return Fit("unknown", name, why="the model does not know whom it was trained on: "
                   "its target faces are gone, or the face judge (dlib) is not installed")
    try:
        mine = signature()
    except UserError as exc:
        return Fit("unknown", name, why=str(exc))
    if mine is None:
        return Fit("unknown", name, why="no face was found in the frames looked at")
    distance = float(np.linalg.norm(learned - mine))
    if distance <= SAME:
        return Fit("same", name, distance)
    return Fit("other", name, distance, _learned(model_dir), seconds())


def adapt_seconds(video: str | Path | None, ws=None) -> float:
    """Adapting here: the adapt budget's training, plus finding the faces of `video` and
    rendering it at this machine's stored speeds (first guesses where none are stored);
    with no video, the training alone."""
    from localswap import media
    from localswap.swap import speeds
    from localswap.train import budget
    kind = _device_kind()
    rate = dict(speeds.GUESS[kind])
    if ws is not None:
        stored = speeds.load(ws)
        for what in ("extract", "convert"):
            found = [v["value"] for k, v in (stored.get(what) or {}).items()
                     if k.startswith(f"{kind}:") and isinstance(v, dict)
                     and isinstance(v.get("value"), (int, float)) and v["value"] > 0]
            if found:
                rate[what] = sorted(found)[len(found) // 2]
    try:
        frames = 0 if video is None else media.probe(video).frames if media.is_video(video) \
            else 1
    except UserError:
        frames = 0
    return budget.ADAPT_MINUTES[kind] * 60 + frames / rate["extract"] + frames / rate["convert"]
