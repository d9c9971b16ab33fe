"""Preview grids: rows A, A->A, A->B, B, B->B, B->A, one column per face, labelled."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from localswap.train.hide import hide_features
from localswap.workspace import atomic_write_bytes

ROWS = ("A", "A>A", "A>B", "B", "B>B", "B>A")
LABEL_W = 56
MAX_CELL = 192      # previews of 512 px models are scaled down: a grid, not a gallery
KEEP = 50           # preview files kept in DIR/previews (the latest is also DIR/preview.png)


def composite(face: torch.Tensor, out: tuple, hull: torch.Tensor) -> torch.Tensor:
    """The model's face pasted over the original crop, as conversion does: inside the face hull
    (and the learned mask, where the model has one), feathered. Outside the hull the decoder
    learns nothing, so showing its raw output there would show noise the video never gets."""
    rgb, learned = out
    mask = hull if learned is None else hull * learned.float()
    k = max(3, face.shape[-1] // 16) | 1
    mask = torch.nn.functional.avg_pool2d(mask, k, stride=1, padding=k // 2,
                                          count_include_pad=False)
    return rgb.float() * mask + face * (1 - mask)


@torch.no_grad()
def preview_rows(model, faces_a: torch.Tensor, faces_b: torch.Tensor, dtype=None):
    """uint8 (N, 7, R, R) unaugmented faces -> six float (N, 3, R, R) rows, each model output
    composited over the face it was made from."""
    was_training = model.training
    model.eval()
    a, hull_a = faces_a[:, :3].float() / 255, faces_a[:, 3:4].float() / 255
    b, hull_b = faces_b[:, :3].float() / 255, faces_b[:, 3:4].float() / 255
    with torch.autocast(a.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        ga, gb = faces_a[:, 6:7].float() / 255, faces_b[:, 6:7].float() / 255
        if getattr(model, "hides", False):      # what the encoder of this model sees
            za = model.encode(hide_features(a, faces_a[:, 4:6].float() / 255))
            zb = model.encode(hide_features(b, faces_b[:, 4:6].float() / 255))
        else:
            za, zb = model.encode(a), model.encode(b)
        outs = [model.decode(za, "a", ga), model.decode(za, "b", ga),
                model.decode(zb, "b", gb), model.decode(zb, "a", gb)]
    model.train(was_training)
    rows = [a, composite(a, outs[0], hull_a), composite(a, outs[1], hull_a),
            b, composite(b, outs[2], hull_b), composite(b, outs[3], hull_b)]
    return [r.float().clamp(0, 1) for r in rows]


def grid_image(rows: list[torch.Tensor]) -> np.ndarray:
    """RGB uint8 grid with a label column."""
    n = max(row.shape[0] for row in rows)      # a faceset with fewer faces leaves blanks
    r = rows[0].shape[-1]
    cell = min(r, MAX_CELL)
    lines = []
    for name, row in zip(ROWS, rows):
        if cell != r:
            row = torch.nn.functional.interpolate(row, size=(cell, cell), mode="area")
        img = (row.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        strip = np.zeros((cell, n * cell, 3), np.uint8)
        strip[:, :img.shape[0] * cell] = np.concatenate(list(img), 1)
        label = np.full((cell, LABEL_W, 3), 32, np.uint8)
        cv2.putText(label, name, (4, cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (235, 235, 235), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label, strip], 1))
    return np.concatenate(lines, 0)


def write_preview(model_dir: Path, iteration: int, rows: list[torch.Tensor]) -> Path:
    """Write previews/preview_<iteration>.png and preview.png; returns the first."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid_image(rows), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    folder = Path(model_dir) / "previews"
    path = folder / f"preview_{iteration:08d}.png"
    atomic_write_bytes(path, png.tobytes())
    atomic_write_bytes(Path(model_dir) / "preview.png", png.tobytes())
    for old in sorted(folder.glob("preview_*.png"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path
