"""Who is swapped, and with which model, in one conversion (--person, --person-photo, --map):
faces are matched to the people listed in the video (localswap.faces.identities) or to a
reference photo; a face that is nobody chosen is left untouched."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from localswap import media
from localswap.convert.swapper import Swapper, open_swapper
from localswap.settings import ConvertSettings

if TYPE_CHECKING:
    from localswap.convert.frames import ConvertResult


class Cast:
    """Call with each frame's tracked faces: their landmarks and models, for the chosen
    people only; `report` adds who was swapped where, and where they were missing."""

    def __init__(self, refs: np.ndarray, swappers: list, labels: list[str]):
        from localswap.faces.identities import Matcher
        self.matcher = Matcher(refs)
        self.swappers, self.labels = swappers, labels
        self.seen: dict[int, list[int]] = {k: [] for k, sw in enumerate(swappers) if sw}
        self.first: int | None = None
        self.last = 0

    def __call__(self, image: np.ndarray, index: int, tracked: list) -> tuple[list, list]:
        self.first = index if self.first is None else self.first
        self.last = index
        who = self.matcher(image, index, [(f.track, f.landmarks, f.filled) for f in tracked])
        lms, models = [], []
        for f, k in zip(tracked, who):
            if k is not None and self.swappers[k] is not None:
                lms.append(f.landmarks)
                models.append(self.swappers[k])
                self.seen[k].append(index)
        return lms, models

    def models(self) -> list[Swapper]:
        return list({id(m): m for m in self.swappers if m is not None}.values())

    def report(self, result: ConvertResult) -> None:
        from localswap.faces.identities import missing, missing_sentence
        for k, frames in self.seen.items():
            result.people[self.labels[k]] = len(set(frames))
            if self.first is not None:
                gaps = missing(frames, self.first, self.last)
                if gaps:
                    result.notes.append(missing_sentence(self.labels[k], gaps, self.first,
                                                         self.last))


def _open(model, s: ConvertSettings) -> Swapper:
    return model if isinstance(model, Swapper) else open_swapper(model, s.device, s.precision)


def make_cast(path: Path, model, s: ConvertSettings) -> tuple[Cast, Swapper]:
    """The cast for `model` = {person number: model} or one model with --person /
    --person-photo; also the first model (it names the render)."""
    from localswap.faces.identities import list_people, person_like, photo_reference
    from localswap.settings import ExtractSettings
    ext = ExtractSettings(detector=s.detector, min_confidence=s.min_confidence,
                          device=s.device)
    photo = s.person_photo if not isinstance(model, dict) else ""
    if photo and (path.is_dir() or media.is_image(path)):
        first = _open(model, s)            # photos: each face against the reference itself
        return (Cast(photo_reference(photo, ext)[None], [first],
                      [f"the person in {Path(photo).name}"]), first)
    people = list_people(path, ext)
    mapping = model if isinstance(model, dict) else {
        person_like(people, photo_reference(photo, ext), photo) if photo else s.person: model}
    swappers: list = [None] * len(people.people)
    loaded: dict[str, Swapper] = {}
    for n, m in mapping.items():
        people.person(int(n))                     # a sentence if there is no such person
        key = str(m) if not isinstance(m, Swapper) else str(id(m))
        loaded[key] = loaded.get(key) or _open(m, s)
        swappers[int(n) - 1] = loaded[key]
    labels = [f"person {p.index}" for p in people.people]
    if photo:
        labels = [f"{lab} (the person in {Path(photo).name})" for lab in labels]
    return Cast(people.references(), swappers, labels), next(iter(loaded.values()))
