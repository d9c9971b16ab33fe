"""Preview grids: rows A, A->A, A->B, B, B->B, B->A, one column per face, labelled."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from localswap.workspace import atomic_write_bytes

ROWS = ("A", "A>A", "A>B", "B", "B>B", "B>A")
LABEL_W = 56
MAX_CELL = 192      # previews of 512 px models are scaled down: a grid, not a gallery
KEEP = 50           # preview files kept in DIR/previews (the latest is also DIR/preview.png)


@torch.no_grad()
def preview_rows(model, faces_a: torch.Tensor, faces_b: torch.Tensor, dtype=None):
    """uint8 (N, 6, R, R) unaugmented faces -> six float (N, 3, R, R) rows."""
    was_training = model.training
    model.eval()
    a = faces_a[:, :3].float() / 255
    b = faces_b[:, :3].float() / 255
    with torch.autocast(a.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        za, zb = model.encode(a), model.encode(b)
        rows = [a, model.decode(za, "a")[0], model.decode(za, "b")[0],
                b, model.decode(zb, "b")[0], model.decode(zb, "a")[0]]
    model.train(was_training)
    return [r.float().clamp(0, 1) for r in rows]


def grid_image(rows: list[torch.Tensor]) -> np.ndarray:
    """RGB uint8 grid with a label column."""
    n, _, r, _ = rows[0].shape
    cell = min(r, MAX_CELL)
    lines = []
    for name, row in zip(ROWS, rows):
        if cell != r:
            row = torch.nn.functional.interpolate(row, size=(cell, cell), mode="area")
        img = (row.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        strip = np.concatenate(list(img), 1)
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
