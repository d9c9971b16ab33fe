"""Models that work on any target (DeepFaceLab's "ready to merge" idea): the target side is
trained on a mix of many people instead of one, so decoder A learns faces in general and the
finished model swaps the source onto someone it never saw, with no training.

`mix_facesets` writes one faceset holding up to `per_person` faces of each input faceset
(evenly spread over each), every entry tagged with its person (`extra["person"]`); the trainer
records the people in the model's manifest (`targets`, `any_target`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from localswap.errors import UserError
from localswap.faces.faceset import Faceset

PER_PERSON = 400


def mix_facesets(facesets: list[str | Path], out: str | Path,
                 per_person: int = PER_PERSON) -> Path:
    """One faceset at `out` from several (same face type and size); rebuilt identically from
    the same inputs, so a resumed training sees the same faces."""
    sets = [Faceset.load(p) for p in facesets]
    names = [s.path.name for s in sets]
    if len(set(names)) != len(names):
        raise UserError(f"the target facesets must have different folder names ({', '.join(names)})")
    kinds = {(s.face_type, s.size) for s in sets}
    if len(kinds) > 1:
        raise UserError("the target facesets differ in face type or size ("
                        + ", ".join(f"{s.path.name}: {s.face_type} {s.size} px" for s in sets)
                        + "): extract them the same way")
    empty = [s.path.name for s in sets if not len(s)]
    if empty:
        raise UserError(f"no faces in {', '.join(empty)}")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    face_type, size = kinds.pop()
    mix = Faceset(out, face_type, size)
    out.mkdir(parents=True)
    for k, s in enumerate(sets):
        pick = np.linspace(0, len(s) - 1, min(per_person, len(s))).round().astype(int)
        for i in dict.fromkeys(pick.tolist()):
            entry = s.faces[i]
            name = f"p{k:02d}_{entry.image}"
            try:
                os.link(s.image_path(entry), out / name)
            except OSError:
                shutil.copyfile(s.image_path(entry), out / name)
            mix.add(replace(entry, image=name, extra={**entry.extra, "person": s.path.name}))
    mix.save()
    return out


def people_of(faceset: Faceset) -> list[str]:
    """The people a (mixed) faceset holds, in order; [] for a plain faceset."""
    return list(dict.fromkeys(f.extra.get("person") for f in faceset.faces
                              if isinstance(f.extra, dict) and f.extra.get("person")))


def as_facesets(items: list[str | Path], work: str | Path, source: str | Path) -> list[Path]:
    """Facesets for the target mix: facesets as they are; folders of photos (or videos) of a
    person are extracted first into `work`/NAME, the way the source faceset was (face type,
    size); an extraction done before is reused."""
    from localswap.faces.extract import extract
    from localswap.settings import ExtractSettings
    like = Faceset.load(source)
    out = []
    for item in items:
        path = Path(item)
        if (path / "faceset.json").is_file():
            out.append(path)
            continue
        if not path.exists():
            raise UserError(f"{path}: not found (a target is a faceset or a folder of photos)")
        dest = Path(work) / path.stem
        extract([path], dest, ExtractSettings(face_type=like.face_type, size=like.size,
                                                 role="target"))
        out.append(dest)
    return out
