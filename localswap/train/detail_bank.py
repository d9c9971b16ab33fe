"""The detail bank's writer: when training starts, the sharpest, most varied crops of the
source's faceset are copied into the model dir's `detail/` (PNG crops + bank.json), so a
model copied elsewhere brings the source's fine detail along. The converter reads the bank
(convert.detail).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

BANK_DIR = "detail"
BANK_FILE = "bank.json"
BANK_FACES = 96          # crops kept: enough to cover a clip's poses and expressions
# "Nearest" is judged twice: the face (pose, eyes, brows, nose) and the mouth, each with its
# own crop, as a clip's eyes and mouth move independently. Landmark weights of each:
FACE_WEIGHTS = np.ones(68, np.float32)
FACE_WEIGHTS[36:48] = 3.0
MOUTH_WEIGHTS = np.ones(68, np.float32)
MOUTH_WEIGHTS[48:68] = 4.0


def write_bank(faceset_dir: Path, model_dir: Path, faces: int = BANK_FACES) -> int:
    """Copy the sharpest, most varied crops of the source faceset into model_dir/detail/.
    Returns the number kept (0 when the faceset has no usable crops)."""
    faceset_dir, model_dir = Path(faceset_dir), Path(model_dir)
    info = json.loads((faceset_dir / "faceset.json").read_text())
    rows = [f for f in info.get("faces", [])
            if len(f.get("landmarks") or []) == 68 and (faceset_dir / f["image"]).is_file()]
    if not rows:
        return 0
    # the sharpest 70%, then farthest-point sampling in (weighted) landmark space
    rows.sort(key=lambda f: -float(f.get("blur") or 0.0))
    rows = rows[:max(1, int(round(len(rows) * 0.7)))]
    spread = np.sqrt(np.maximum(FACE_WEIGHTS, MOUTH_WEIGHTS))[None, :, None]
    lms = np.array([f["landmarks"] for f in rows], np.float32) * spread
    chosen, gap = [0], np.full(len(rows), np.inf)
    while len(chosen) < min(faces, len(rows)):
        gap = np.minimum(gap, ((lms - lms[chosen[-1]]) ** 2).sum((1, 2)))
        chosen.append(int(np.argmax(gap)))
    tmp = Path(tempfile.mkdtemp(prefix=".detail-", dir=model_dir))
    try:
        kept = []
        for k, i in enumerate(chosen):
            name = f"{k:03d}.png"
            shutil.copyfile(faceset_dir / rows[i]["image"], tmp / name)
            kept.append({"image": name, "landmarks": rows[i]["landmarks"]})
        (tmp / BANK_FILE).write_text(json.dumps({
            "version": 1, "face_type": info.get("face_type"), "size": info.get("size"),
            "faces": kept}))
        target = model_dir / BANK_DIR
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)      # what a failed copy left
    return len(kept)
