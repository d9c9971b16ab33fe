"""Who a model's source person is, as a face descriptor (the `evaluate` judge's dlib
embedder), so a new swap of the same person can start from that model (--init-from).

A model's signature is the mean descriptor of up to SAMPLE faces of its source faceset,
kept in `identity.json` beside the model once computed. Two people are "the same" when the
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


def _embed_images(images) -> np.ndarray | None:
    """Mean descriptor of the main face in each RGB image (None: no face in any)."""
    from localswap.evaluate.embedder import Embedder
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
    return _embed_images(source_frames([Path(p) for p in paths], most))


def model_signature(model_dir: str | Path) -> np.ndarray | None:
    """The model's source signature: cached, else from its source faceset (None when the
    faceset is gone, the model is a .dfm, or dlib is missing)."""
    from localswap import media
    from localswap.models.manifest import read_manifest
    model_dir = Path(model_dir)
    cached = model_dir / IDENTITY_FILE
    if cached.is_file():
        try:
            return np.asarray(json.loads(cached.read_text())["source"], np.float32)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        manifest = read_manifest(model_dir)
    except UserError:
        return None
    fs = (manifest.get("facesets") or {}).get("source") or {}
    folder = Path(fs.get("path", "")) if isinstance(fs, dict) else None
    if manifest["arch"] == "dfm" or not folder or not folder.is_dir():
        return None
    crops = sorted(folder.glob("*.png"))
    crops = [crops[int(i)] for i in np.linspace(0, len(crops) - 1, min(SAMPLE, len(crops)))] \
        if crops else []
    try:
        sig = _embed_images(media.read_image(p) for p in crops)
    except UserError:       # dlib missing: no proposals, nothing else changes
        return None
    if sig is None:
        return None
    try:
        from localswap.workspace import AtomicFile
        with AtomicFile(cached) as tmp:
            tmp.write_text(json.dumps({"source": [round(float(v), 6) for v in sig]}))
    except OSError:
        pass
    return sig


def propose(ws, sources: list[str | Path]) -> tuple[str, float] | None:
    """(library model, distance) whose source is the person in `sources`, the nearest one
    within SAME; None if none is (or nothing can be judged)."""
    from localswap.models.manifest import is_dfm_dir
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
