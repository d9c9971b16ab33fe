"""Who a model's source and target people are, as face descriptors (the `evaluate` judge's
dlib embedder): a new swap of the same source person can start from that model
(--init-from), and a quick swap can tell whether a new video shows the person the model
learned as its target (localswap.swap.fit).

A model's signature of a side is the mean descriptor of up to SAMPLE faces of that side's
faceset, kept in `identity.json` beside the model once computed. Two people are "the same" when the
signatures are within SAME (dlib's descriptors put one person's photos within 0.6 of each
other; 0.5 leaves a margin).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from localswap.errors import UserError

IDENTITY_FILE = "identity.json"
SAMPLE = 8
SAME = 0.5


def images_signature(images) -> np.ndarray | None:
    """Mean descriptor of the main face in each RGB image (None: no face in any)."""
    from localswap.faces.embedder import Embedder
    from localswap.evaluate.frames import main_face
    from localswap.faces.detect import make_backend
    embedder, backend = Embedder(), make_backend("mediapipe")
    found = []
    try:
        for rgb in images:
            det = main_face(backend.detect(rgb))
            if det is not None:
                found.append(embedder.embed(rgb, det.bbox))
    finally:
        backend.close()
    return np.mean(found, axis=0) if found else None


def media_signature(paths: list[str | Path], most: int = SAMPLE) -> np.ndarray | None:
    """Signature of the person in these videos/photos (a few frames spread over them)."""
    from localswap.evaluate.frames import source_frames
    return images_signature(source_frames([Path(p) for p in paths], most))


def _stored(model_dir: Path) -> dict:
    try:
        data = json.loads((model_dir / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(model_dir: Path, side: str, sig: np.ndarray) -> None:
    from localswap.workspace import AtomicFile
    data = {**_stored(model_dir), side: [round(float(v), 6) for v in sig]}
    try:
        with AtomicFile(model_dir / IDENTITY_FILE) as tmp:
            tmp.write_text(json.dumps(data))
    except OSError:         # a read-only library still answers, it only recomputes
        pass


def _faceset_folder(model_dir: Path, side: str) -> Path | None:
    """The faceset the model was trained on for `side` (None: a .dfm, a target mix of many
    people, or no manifest)."""
    from localswap.train.manifest import read_manifest
    try:
        manifest = read_manifest(model_dir)
    except UserError:
        return None
    if manifest["arch"] == "dfm" or (side == "target" and manifest.get("any_target")):
        return None
    fs = (manifest.get("facesets") or {}).get(side) or {}
    return Path(fs["path"]) if isinstance(fs, dict) and fs.get("path") else None


def model_signature(model_dir: str | Path, side: str = "source") -> np.ndarray | None:
    """The model's `side` ("source" or "target") signature: kept in identity.json, else
    computed from that faceset and kept (None when the faceset is gone, the model is a .dfm
    or an any-target model, or dlib is missing)."""
    from localswap import media
    model_dir = Path(model_dir)
    cached = _stored(model_dir).get(side)
    if isinstance(cached, list) and len(cached) == 128:
        try:
            return np.asarray(cached, np.float32)
        except (TypeError, ValueError):
            pass
    folder = _faceset_folder(model_dir, side)
    if folder is None or not folder.is_dir():
        return None
    crops = sorted(folder.glob("*.png"))
    crops = [crops[int(i)] for i in np.linspace(0, len(crops) - 1, min(SAMPLE, len(crops)))] \
        if crops else []
    try:
        sig = images_signature(media.read_image(p) for p in crops)
    except UserError:       # dlib missing: no proposals, nothing else changes
        return None
    if sig is not None:
        _store(model_dir, side, sig)
    return sig


def remember_names(model_dir: str | Path, source: str, target: str) -> None:
    """The two people as the user named them (their files' names), for the model card: the
    model's own faceset names are made from the model's name."""
    from localswap.workspace import AtomicFile
    model_dir = Path(model_dir)
    data = {**_stored(model_dir), "names": {"source": str(source)[:200],
                                            "target": str(target)[:200]}}
    try:
        with AtomicFile(model_dir / IDENTITY_FILE) as tmp:
            tmp.write_text(json.dumps(data))
    except OSError:
        pass


def names(model_dir: str | Path) -> dict:
    """{"source": ..., "target": ...} as remember_names kept them ({} when never kept)."""
    found = _stored(Path(model_dir)).get("names")
    return {k: v for k, v in found.items() if isinstance(v, str) and v} \
        if isinstance(found, dict) else {}


def remember(model_dir: str | Path) -> None:
    """Keep both people's signatures with the model while its facesets are on disk (after
    training), so the model knows who it learned even once they are deleted."""
    for side in ("source", "target"):
        model_signature(model_dir, side)


def propose(ws, sources: list[str | Path]) -> tuple[str, float] | None:
    """(library model, distance) whose source is the person in `sources`, the nearest one
    within SAME; None if none is (or nothing can be judged)."""
    from localswap.train.manifest import is_dfm_dir
    names = [n for n in ws.names("models") if not is_dfm_dir(ws.root / "models" / n)]
    sigs = {n: s for n in names if (s := model_signature(ws.root / "models" / n)) is not None}
    if not sigs:
        return None
    try:
        mine = media_signature(sources)
    except UserError:
        return None
    if mine is None:
        return None
    name, dist = min(((n, float(np.linalg.norm(s - mine))) for n, s in sigs.items()),
                     key=lambda x: x[1])
    return (name, dist) if dist <= SAME else None
