"""Square thumbnails cut from the trainer's preview grids, for the galleries (Models library,
a job's timelapse). Gradio's gallery tiles are square: a square picture fills its tile whole,
where a wide grid was letterboxed into half a tile or cut off.

A preview grid (localswap.train.preview) has the rows A, A>A, A>B, B, B>B, B>A, one column
per face and a label column on the left. A thumbnail is 2 x 2 faces: the first two faces of
one row over the same two faces in another row.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from localswap.train.preview import LABEL_W, ROWS

PX = 160        # side of a thumbnail in pixels


def square(grid: np.ndarray, top: str, bottom: str) -> np.ndarray | None:
    """Faces 1 and 2 of row `top` over faces 1 and 2 of row `bottom` (face 1 twice when the
    grid has one face), PX x PX RGB; None if `grid` is not a preview grid."""
    cell = grid.shape[0] // len(ROWS)
    faces = (grid.shape[1] - LABEL_W) // cell if cell >= 8 else 0
    if faces < 1:
        return None

    def face(row: str, col: int) -> np.ndarray:
        y, x = ROWS.index(row) * cell, LABEL_W + col * cell
        return grid[y:y + cell, x:x + cell]

    # A faceset with fewer faces than the grid has columns leaves black cells.
    second = 1 if faces > 1 and face(top, 1).any() else 0
    tile = np.concatenate([np.concatenate([face(top, 0), face(top, second)], 1),
                           np.concatenate([face(bottom, 0), face(bottom, second)], 1)], 0)
    return cv2.resize(tile, (PX, PX), interpolation=cv2.INTER_AREA)


def fit(image: np.ndarray) -> np.ndarray:
    """Any RGB picture as a PX x PX square (centre crop of the long side)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return cv2.resize(image[y:y + side, x:x + side], (PX, PX), interpolation=cv2.INTER_AREA)


def placeholder(text: str) -> np.ndarray:
    """A grey square saying `text`, for a model with no picture (an imported .dfm)."""
    tile = np.full((PX, PX, 3), 96, np.uint8)
    for i, line in enumerate(text.split("\n")):
        cv2.putText(tile, line, (10, PX // 2 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (235, 235, 235), 1, cv2.LINE_AA)
    return tile


def newest_preview(model_dir: str | Path) -> Path | None:
    model_dir = Path(model_dir)
    found = sorted(model_dir.glob("previews/*.png")) or sorted(model_dir.glob("preview.png"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
