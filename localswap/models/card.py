"""The model card: what a library model is, at a glance, shown in the Models panel and
exported with the model (a `card.json` in the zip, metadata in a `.dfm`).

    source thumbnail   source.png in the model folder (the first source face of its newest
                       preview grid, kept once made, so it survives previews being cleared)
    target thumbnail   target.png likewise: the person it was trained on (its descriptor is
                       in identity.json; a quick swap checks new videos against it)
    targets            the target faceset it was trained against, and the video of its last
                       render
    arch, resolution, face type, iterations, training time, where it started (--init-from)
    evaluation         the `evaluate` report of its last render (evaluation.json, written by
                       the swap job's convert stage)
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np

from localswap.progress import duration_text

THUMB_FILE = "source.png"
TARGET_THUMB_FILE = "target.png"     # the person it was trained on (a quick swap's fit)
EVAL_FILE = "evaluation.json"
CARD_FILE = "card.json"
THUMB_PX = 96


def record_evaluation(model_dir: str | Path, evaluation: dict | None, target: str) -> None:
    """Keep the report of the model's latest render beside it (None: nothing judged)."""
    from localswap.train.manifest import read_manifest
    from localswap.workspace import AtomicFile
    model_dir = Path(model_dir)
    if not evaluation or not (model_dir / "manifest.json").is_file():
        return
    data = {"target": Path(str(target)).name, "date": time.strftime("%Y-%m-%d %H:%M"),
            "iteration": int(read_manifest(model_dir).get("iteration", 0) or 0),
            "report": evaluation}
    with AtomicFile(model_dir / EVAL_FILE) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def _from_preview(model_dir: Path, row_name: str = "B") -> np.ndarray | None:
    from localswap import media
    from localswap.train.preview import LABEL_W, ROWS
    found = sorted(model_dir.glob("previews/*.png"))
    if not found:
        return None
    try:
        grid = media.read_image(max(found, key=lambda p: p.stat().st_mtime))
    except Exception:  # noqa: BLE001  (a damaged preview only costs the thumbnail)
        return None
    cell = grid.shape[0] // len(ROWS)
    if cell < 8 or grid.shape[1] < LABEL_W + cell:
        return None
    row = ROWS.index(row_name)
    return np.ascontiguousarray(grid[row * cell:(row + 1) * cell, LABEL_W:LABEL_W + cell])


def source_thumbnail(model_dir: str | Path, side: str = "source") -> Path | None:
    """source.png (or target.png, side "target") of the model, made from its previews the
    first time; None if it has none."""
    import cv2

    from localswap.workspace import AtomicFile
    model_dir = Path(model_dir)
    path = model_dir / (THUMB_FILE if side == "source" else TARGET_THUMB_FILE)
    if path.is_file():
        return path
    face = _from_preview(model_dir, "B" if side == "source" else "A")
    if face is None:
        return None
    face = cv2.resize(face, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    try:
        with AtomicFile(path) as tmp:
            tmp.write_bytes(png.tobytes())
    except OSError:      # a read-only library still shows a card
        return None
    return path


def model_card(model_dir: str | Path, thumbnail: bool = True) -> dict:
    """The card as JSON-ready data; `thumbnail` adds the source face as base64 PNG."""
    from localswap.train.manifest import Manifest
    model_dir = Path(model_dir)
    typed = Manifest.read(model_dir)
    m, source, target = typed.data, typed.source, typed.target
    evaluation = None
    if (model_dir / EVAL_FILE).is_file():
        try:
            evaluation = json.loads((model_dir / EVAL_FILE).read_text())
        except (OSError, ValueError):
            evaluation = None
    from localswap.models.identity import names
    named = names(model_dir)           # the people as the user named them, where known
    source = named.get("source") or _person(source, "-source")
    target = named.get("target") or _person(target, "-target")
    targets = [str(t) for t in m.get("targets") or []] or [t for t in (target,) if t]
    if evaluation and evaluation.get("target") and evaluation["target"] not in targets:
        targets.append(evaluation["target"])
    card = {
        "name": model_dir.name, "source": source, "targets": targets,
        "any_target": bool(m.get("any_target")) or m.get("arch") == "dfm",
        "arch": m["arch"], "resolution": int(m["resolution"]),
        "face_type": m.get("face_type", "whole_face"),
        "iterations": int(m.get("iteration", 0) or 0),
        "training_s": round(float(m.get("elapsed_s", 0.0) or 0.0), 1),
        "init_from": m.get("init_from"), "created": m.get("created", ""),
        "evaluation": evaluation}
    from localswap.models.identity import IDENTITY_FILE
    card["knows_target"] = card["any_target"] or _knows_target(model_dir / IDENTITY_FILE)
    card["for_rendering"] = is_for_rendering(model_dir, m)
    if thumbnail:
        for side in ("source", "target"):
            thumb = None if side == "target" and card["any_target"] else \
                source_thumbnail(model_dir, side)
            card[f"{side}_thumbnail_png"] = base64.b64encode(thumb.read_bytes()).decode() \
                if thumb else None
    return card


def _person(faceset_name: str, suffix: str) -> str:
    """A faceset named after its model ("a-on-b-target") as the person it holds ("a-on-b")."""
    return faceset_name[:-len(suffix)] if faceset_name.endswith(suffix) else faceset_name


def _knows_target(identity_file: Path) -> bool:
    try:
        data = json.loads(identity_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("target"), list)


FOR_RENDERING = ("**For rendering only**: exported without its training state. It renders and "
                 "quick-swaps like the full model, but cannot continue training where it "
                 "stopped: training it further starts that state afresh, and its loss rises "
                 "for a while before it falls again.")


def is_for_rendering(model_dir: Path, manifest: dict) -> bool:
    """A model without its optimizer state (an export for rendering): it cannot continue
    training where it stopped. DeepFaceLive models never train, so they are not counted."""
    from localswap.train.manifest import OPTIMIZER_FILE
    return manifest.get("arch") != "dfm" and (
        bool(manifest.get("for_rendering")) or not (Path(model_dir) / OPTIMIZER_FILE).is_file())


def card_markdown(card: dict) -> str:
    """The card as Markdown for the Models panel."""
    lines = []
    if card.get("source_thumbnail_png"):
        lines.append(f"![source face](data:image/png;base64,{card['source_thumbnail_png']})")
    kind = "DeepFaceLive model" if card["arch"] == "dfm" else card["arch"]
    lines.append(f"**{card['name']}**: {card['source'] or '?'} → "
                 f"{', '.join(card['targets']) or '?'}"
                 + (" (any target)" if card["any_target"] else ""))
    lines.append(f"{kind}, {card['resolution']} px, {card['face_type'].replace('_', ' ')}; "
                 f"{card['iterations']} iterations, trained {duration_text(card['training_s'])}"
                 + (f"; started from {card['init_from']['name']}" if card.get("init_from")
                    else ""))
    if card.get("for_rendering"):
        lines.append(FOR_RENDERING)
    if card.get("target_thumbnail_png"):
        lines.append(f"![target face](data:image/png;base64,{card['target_thumbnail_png']}) "
                     "Trained on this person: a quick swap of new footage of them needs no "
                     "training; for anyone else it proposes adapting the model first.")
    elif card["any_target"]:
        lines.append("Works on any person.")
    ev = card.get("evaluation")
    if ev and isinstance(ev.get("report"), dict):
        r = ev["report"]
        lines.append(f"Last render ({ev.get('target', '?')}, iteration {ev.get('iteration')}): "
                     f"{r.get('sentence', '')}")
        scores = [("closer to source", r.get("closer_to_source"), "{:.0%}"),
                  ("distance to source", r.get("distance_to_source"), "{:.2f}"),
                  ("eyes", r.get("eye_correlation"), "{:.2f}"),
                  ("mouth", r.get("mouth_correlation"), "{:.2f}"),
                  ("stability", r.get("stability"), "{:.2f}"), ("seam", r.get("seam"), "{:.2f}")]
        lines.append(" · ".join(f"{k} {fmt.format(v)}" for k, v, fmt in scores
                                if isinstance(v, (int, float))))
    else:
        lines.append("Not judged yet: the scores of its next swap render appear here.")
    return "\n\n".join(lines)
