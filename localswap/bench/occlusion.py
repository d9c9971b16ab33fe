"""`bench --only occlusion`: real clips where a hand passes in front of the face, swapped,
then rendered with `--occlusion hands`, `auto` and off; and the same clips with a real cup
carried over the face (bench.objects), rendered with `hands` and `auto`.

For each clip: the share of the hand's pixels inside the face that come through unchanged
(the hand: the hull of the hand landmarker's 21 points on the target, not grown; the face:
the face hull; "unchanged": every channel within 12 levels of the target's, two H.264
encodes apart), the face's steadiness in the frames with a hand (as evaluate's stability
reads it, change per unit of texture in the face hull, output over target, but averaged over
those frame pairs' ratios), the judge's numbers on the whole clip and the render's speed,
each way. For the cup, "hand" in the numbers' names reads "cup": the truth is where it was
drawn.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from localswap import media
from localswap.bench import objects
from localswap.bench.corpus import clip_path
from localswap.evaluate import pixels

# target clip -> the source swapped onto it. "woman" covers her mouth, then her nose, with a
# hand (tuned on); "glasses_selfie" touches her cheek (never tuned on).
CLIPS = {"woman": "vlogger", "glasses_selfie": "curly_vlog"}
SAME = 12        # levels: unchanged, after two H.264 encodes


def hand_truth(video: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame index -> (the hands' pixels inside the face, the face hull), for every frame
    where the landmarker (tracking the whole clip in order) sees a hand over the face."""
    from localswap.convert.occlusion import HandTracker
    from localswap.faces.detect import make_backend
    from localswap.faces.landmarks import face_hull
    backend, tracker = make_backend("mediapipe", video=True), HandTracker()
    out = {}
    try:
        for index, _, frame in media.read_frames(video):
            faces = backend.detect(frame)
            if not faces:
                continue
            hands = tracker(frame, [faces[0].landmarks])
            if not hands:
                continue
            hull = np.zeros(frame.shape[:2], np.uint8)
            cv2.fillConvexPoly(hull, np.round(face_hull(faces[0].landmarks)).astype(np.int32), 1)
            hand = np.zeros_like(hull)
            for h in hands:
                cv2.fillConvexPoly(hand, np.round(cv2.convexHull(h)).astype(np.int32), 1)
            inside = (hand & hull).astype(bool)
            if inside.sum() >= 50:
                out[index] = (inside, hull.astype(bool))
    finally:
        backend.close()
        tracker.close()
    return out


def measure(target: Path, output: Path, truth: dict) -> dict:
    """Hand pixels kept (mean, worst tenth of frames) and stability in the hand frames."""
    kept, moved, target_moved = [], [], []
    prev = None
    for (index, _, tgt), (_, _, out) in zip(media.read_frames(target),
                                            media.read_frames(output)):
        if index in truth:
            inside, hull = truth[index]
            diff = np.abs(out.astype(np.int16) - tgt.astype(np.int16)).max(-1)
            kept.append(float((diff[inside] <= SAME).mean()))
            if prev is not None and prev[0] == index - 1:
                mask = hull.astype(np.uint8) * 255
                moved.append(pixels.change(prev[2], out, mask)
                             / max(pixels.gradient_energy(out, mask), 1e-3))
                target_moved.append(pixels.change(prev[1], tgt, mask)
                                    / max(pixels.gradient_energy(tgt, mask), 1e-3))
        prev = (index, tgt, out)
    if not kept:
        return {"hand_frames": 0}
    return {"hand_frames": len(kept), "hand_kept": round(float(np.mean(kept)), 3),
            "hand_kept_worst_tenth": round(float(np.percentile(kept, 10)), 3),
            "stability_hand_frames": round(float(np.mean(moved) / np.mean(target_moved)), 2)
            if moved and np.mean(target_moved) > 0 else None}


def section_occlusion(ctx: dict) -> dict:
    """Each clip: a model trained for `minutes` (2 by default; the corpus pipeline), rendered
    twice, judged both ways."""
    from localswap.convert.render import convert
    from localswap.evaluate import evaluate
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.swap.pipeline import swap
    from localswap.workspace import Workspace
    minutes = float(ctx.get("minutes", 2.0))
    device = ctx["device"].type
    out_dir = Path(ctx.get("out_dir") or Path(ctx["tmp"]) / "out") / "occlusion"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    chosen = ctx.get("targets") or list(CLIPS)      # --clips names some of them
    for target_name, source_name in CLIPS.items():
        if target_name not in chosen:
            continue
        target, source = clip_path(target_name), clip_path(source_name)
        work = Path(ctx["tmp"]) / f"occlusion-{target_name}"
        shutil.rmtree(work, ignore_errors=True)
        row: dict = {"clip": target_name, "source": source_name}
        truth = hand_truth(target)
        first = out_dir / f"{source_name}-on-{target_name}-first.mp4"
        job = swap([source], target, first, Workspace(work),
                   train=TrainSettings(max_minutes=minutes, device=device),
                   convert=ConvertSettings(device=device), extract=ExtractSettings(device=device))
        model = job.results["train"].model_dir
        with_cup = out_dir / f"{target_name}-with-cup.mp4"
        cup_truth = objects.with_cup(target, with_cup)
        for clip, occ, seen in ((target, "hands", truth), (target, "auto", truth),
                                (target, "off", truth), (with_cup, "cup hands", cup_truth),
                                (with_cup, "cup auto", cup_truth)):
            out = out_dir / f"{source_name}-on-{target_name}-{occ.replace(' ', '-')}.mp4"
            result = convert(clip, model, out, ConvertSettings(occlusion=occ.split()[-1],
                                                                device=device),
                             knows_person=True)
            report = evaluate([source], clip, out, max_frames=120).to_dict()
            row[occ] = {**measure(clip, out, seen), "render_fps": round(result.fps, 2),
                        "objects": result.objects,
                        **{k: report.get(k) for k in (
                            "closer_to_source", "distance_to_source", "eye_correlation",
                            "mouth_correlation", "stability", "seam", "red_lips", "red_eyes")}}
        first.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
        # each clip's numbers as soon as they are in: a run takes an hour on a CPU
        (out_dir / "occlusion.json").write_text(json.dumps(rows, indent=1))
    return {"minutes": minutes, "clips": rows}
