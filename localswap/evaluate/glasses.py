"""Glasses the render erased: a model that never saw glasses paints skin over the target's
and leaves the arms at the temples (issue 29's quick swap onto a person in glasses).

The target wears glasses when the median of its frames' bridge edge (faces.glasses) reads
at least WEARS; the render keeps them in a frame when its bridge reads at least KEPT of the
target's in that frame (the erased render: 29 against 168).
"""
from __future__ import annotations

import numpy as np

from localswap.faces.glasses import WEARS, bridge  # noqa: F401  (the judge's reading)

KEPT = 0.5         # the output's bridge edge over the target's, frame by frame
ERASED = 0.5       # glasses kept in fewer frames than this share: erased


def kept(pairs: list[tuple[float, float]]) -> float | None:
    """Share of frames whose output keeps the target's glasses; None when the target does
    not wear glasses. `pairs`: (output bridge, target bridge) per frame."""
    pairs = [(o, t) for o, t in pairs if o is not None and t is not None and np.isfinite(t)]
    if not pairs or np.median([t for _, t in pairs]) < WEARS:
        return None
    return float(np.mean([o >= KEPT * t for o, t in pairs]))
