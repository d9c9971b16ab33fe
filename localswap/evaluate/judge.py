"""The judge: scores a rendered output against its target video and the source person.

A Judge reads the sources and the target once (the slow part: one face descriptor per
sampled frame), then scores any number of outputs of that target, e.g. one per training
budget in the benchmark. `evaluate()` is the one-output shorthand the CLI and jobs call.
What it read of a source or target is kept in the user's cache (~/.cache/localswap/judge),
so judging another render of the same target (more training, another model) skips it.
It is a judge, not a trainer: never use it as a loss, or it stops being an honest one.
"""
from __future__ import annotations

import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from localswap.errors import UserError
from localswap.evaluate import colours, frames, glasses, pixels
from localswap.evaluate import face_measures as fm
from localswap.faces.embedder import Embedder, distance
from localswap.evaluate.report import Report
from localswap.faces.detect import make_backend
from localswap.progress import Progress, no_progress
from localswap.system.cache import file_key, load_arrays, save_arrays, user_cache

CACHE_VERSION = 4      # bump when what is read from a source or target changes


@dataclass
class _Face:
    """What one sampled frame's face gives: landmarks, descriptor and measures."""
    landmarks: np.ndarray
    bbox: np.ndarray
    embedding: np.ndarray
    eye: float
    mouth: float
    pose: np.ndarray
    redness: np.ndarray     # lips, eyes' ring, cheeks, face (evaluate.colours)


@dataclass
class _TargetFrame:
    face: _Face | None
    change: float | None = None   # target's own change to the next frame, in its face hull
    texture: float | None = None  # target's gradient energy in its face hull
    seam: float | None = None     # target's gradient energy along its face hull's edge
    glasses: float | None = None  # target's edge across the nose bridge (evaluate.glasses)


def _walk(path: Path, info, wanted: list[int]
          ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(index, frame, next frame or None) for each wanted index, in one decoding pass."""
    want, last = set(wanted), wanted[-1]
    held = None
    for index, rgb in frames.read(path, info):
        if held is not None:
            yield held[0], held[1], rgb if index == held[0] + 1 else None
            held = None
        if index in want:
            held = (index, rgb)
        elif index > last:
            return
    if held is not None:
        yield held[0], held[1], None


def _ratio(num: list[float], den: list[float]) -> float | None:
    """mean(num) / mean(den), or None when there is nothing (or nothing moving) to compare."""
    if not num or not den or np.mean(den) < 1e-3:
        return None
    return float(np.mean(num) / np.mean(den))


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _pack_target(frames: dict[int, _TargetFrame]) -> dict[str, np.ndarray]:
    """A target's sampled frames as plain arrays (no pickle); NaN stands for None."""
    items = sorted(frames.items())
    faces = [tf.face for _, tf in items]
    some = next(f for f in faces if f is not None)

    def stack(name: str, like) -> np.ndarray:
        blank = np.zeros_like(np.asarray(like, np.float64))
        return np.stack([np.asarray(getattr(f, name), np.float64) if f else blank
                         for f in faces])

    def num(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(tf, name) is None else getattr(tf, name)
                         for _, tf in items], np.float64)
    return {"index": np.array([i for i, _ in items], np.int64),
            "has_face": np.array([f is not None for f in faces]),
            **{name: stack(name, getattr(some, name)) for name in
               ("landmarks", "bbox", "embedding", "eye", "mouth", "pose", "redness")},
            "change": num("change"), "texture": num("texture"), "seam": num("seam"),
            "glasses": num("glasses")}


def _unpack_target(data: dict | None, indices: list[int]) -> dict[int, _TargetFrame] | None:
    """_pack_target's frames back, or None unless `data` was read for exactly `indices`."""
    try:
        if data is None or data["wanted"].tolist() != list(indices) \
                or not data["has_face"].any():
            return None

        def opt(name: str, i: int) -> float | None:
            v = float(data[name][i])
            return None if np.isnan(v) else v
        out = {}
        for i, index in enumerate(data["index"].tolist()):
            face = _Face(data["landmarks"][i].astype(np.float32), data["bbox"][i],
                         data["embedding"][i].astype(np.float32), float(data["eye"][i]),
                         float(data["mouth"][i]), data["pose"][i],
                         data["redness"][i].astype(np.float32)) \
                if data["has_face"][i] else None
            out[index] = _TargetFrame(face, opt("change", i), opt("texture", i),
                                      opt("seam", i), opt("glasses", i))
        return out
    except (KeyError, IndexError, ValueError):
        return None


def check_pair(target_info, output: Path):
    """The output's MediaInfo (None for a photo) after checking it pairs frame by frame with
    a target of `target_info`; UserError saying why not."""
    info, count = frames.open_media(output)
    if (info is None) != (target_info is None):
        raise UserError(f"{output.name}: compare a video with a video, a photo with a photo")
    if info is not None:
        if abs(info.fps - target_info.fps) > 0.01 * target_info.fps:
            raise UserError(f"{output.name}: {info.fps:g} fps, the target {target_info.fps:g}:"
                            " evaluate pairs frames by index, so both need the same rate")
        if abs(count - target_info.frames) > max(2, 0.01 * target_info.frames):
            raise UserError(f"{output.name}: {count} frames, the target "
                            f"{target_info.frames}: evaluate needs a render of the whole "
                            "target (no --start/--end)")
    return info


class Judge:
    """Sources and target read once; `score(output)` for each render of that target.
    Use it as a context manager (it holds a detector)."""

    def __init__(self, sources: list[Path], target: Path, *, max_frames: int = 120,
                 source_faces: int = 30, detector: str = "mediapipe",
                 progress: Progress = no_progress):
        if max_frames < 1 or source_faces < 1:
            raise UserError("max frames and source faces must each be at least 1")
        start = time.perf_counter()
        self.embedder = Embedder()           # fails first, with the pip line, if dlib is absent
        self.sources = [Path(s) for s in sources]
        self.target = Path(target)
        self.info, count = frames.open_media(self.target)
        self.indices = frames.sample_indices(count, max_frames)
        self.backend = make_backend(detector, video=False)  # sampled frames are not a sequence
        self._total = source_faces + 2 * len(self.indices)
        self._progress = progress
        try:
            self.source = self._cached_sources(source_faces, detector)
            self.frames = self._cached_target(max_frames, detector)
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.perf_counter() - start

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _face(self, rgb: np.ndarray, det) -> _Face:
        h, w = rgb.shape[:2]
        lm = det.landmarks
        plain = glasses.without(rgb, lm)        # identity is read without glasses
        return _Face(lm, det.bbox, self.embedder.embed(plain, det.bbox), fm.eye_opening(lm),
                     fm.mouth_opening(lm), fm.pose(lm, w, h), colours.redness(rgb, lm))

    def _cached_sources(self, most: int, detector: str) -> np.ndarray:
        """The source faces' descriptors; their median redness goes to self.source_red."""
        path = user_cache("judge") / (file_key(self.sources, CACHE_VERSION, "sources", most,
                                               detector) + ".npz")
        kept = load_arrays(path)
        if kept is None or kept.get("source") is None or not len(kept["source"]) \
                or kept.get("redness") is None:
            source, red = self._read_sources(most)
            kept = {"source": source, "redness": red}
            save_arrays(path, **kept)
        with warnings.catch_warnings():     # a region no source face showed stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            self.source_red = np.nanmedian(kept["redness"], 0)
        return kept["source"]

    def _cached_target(self, max_frames: int, detector: str) -> dict[int, _TargetFrame]:
        path = user_cache("judge") / (file_key([self.target], CACHE_VERSION, "target",
                                               max_frames, detector) + ".npz")
        kept = _unpack_target(load_arrays(path), self.indices)
        if kept is None:
            kept = self._read_target()      # may lack frames past a short file's real end
            save_arrays(path, wanted=np.array(self.indices, np.int64), **_pack_target(kept))
        faces = [f.face.embedding for f in kept.values() if f.face is not None]
        self.target_centroid = np.mean(faces, 0)
        return kept

    def _read_sources(self, most: int) -> tuple[np.ndarray, np.ndarray]:
        found, red = [], []
        for n, rgb in enumerate(frames.source_frames(self.sources, most)):
            det = frames.main_face(self.backend.detect(rgb))
            if det is not None:
                found.append(self.embedder.embed(glasses.without(rgb, det.landmarks),
                                                 det.bbox))
                red.append(colours.redness(rgb, det.landmarks))
            self._progress(n + 1, self._total, "source faces")
        if not found:
            raise UserError("no face found in the source videos or photos: evaluate needs "
                            "to see the source person")
        return np.stack(found), np.stack(red)

    def _read_target(self) -> dict[int, _TargetFrame]:
        out = {}
        for n, (index, rgb, nxt) in enumerate(_walk(self.target, self.info, self.indices)):
            det = frames.main_face(self.backend.detect(rgb))
            tf = _TargetFrame(self._face(rgb, det) if det is not None else None)
            if det is not None:
                mask = pixels.hull_mask(det.landmarks, rgb.shape)
                tf.texture = pixels.gradient_energy(rgb, mask)
                tf.seam = pixels.gradient_energy(rgb, pixels.border_band(mask, det.landmarks))
                tf.glasses = glasses.bridge(rgb, det.landmarks)
                if nxt is not None:
                    tf.change = pixels.change(rgb, nxt, mask)
            out[index] = tf
            self._progress(self._total - 2 * len(self.indices) + n + 1, self._total,
                           "target frames")
        if not any(f.face is not None for f in out.values()):
            raise UserError(f"{self.target.name}: no face found in the target's frames")
        return out

    def score(self, output: Path) -> Report:
        """Judge one output of this Judge's target."""
        start = time.perf_counter()
        output = Path(output)
        info = check_pair(self.info, output)
        r = Report(output=str(output), target=str(self.target),
                   sources=[str(s) for s in self.sources], source_faces=len(self.source))
        tally: dict[str, list] = defaultdict(list)   # per-frame figures, summed up below
        done = self._total - len(self.indices)
        for n, (index, rgb, nxt) in enumerate(_walk(output, info, self.indices)):
            self._progress(done + n + 1, self._total, "output frames")
            r.frames += 1
            tf = self.frames.get(index)
            if tf is None or tf.face is None:
                continue                     # no face to swap here: nothing to judge
            r.target_faces += 1
            self._tally_frame(tally, tf, rgb, nxt)
        r.missing_faces = r.target_faces - len(tally["pairs"])
        self._summarise(r, tally)
        r.seconds = time.perf_counter() - start
        return r

    def _tally_frame(self, tally: dict, tf: _TargetFrame, rgb: np.ndarray, nxt) -> None:
        """One output frame's figures, next to its target frame's."""
        t = tf.face
        mask = pixels.hull_mask(t.landmarks, rgb.shape)
        texture = pixels.gradient_energy(rgb, mask)
        tally["texture"].append((texture, tf.texture))
        tally["seam"].append((pixels.gradient_energy(rgb, pixels.border_band(mask, t.landmarks)),
                              tf.seam))
        tally["glasses"].append((glasses.bridge(rgb, t.landmarks), tf.glasses))
        if nxt is not None and tf.change is not None:
            tally["change"].append((pixels.change(rgb, nxt, mask), tf.change))
            tally["moving_texture"].append((texture, tf.texture))
        det = frames.face_at(self.backend.detect(rgb), t.bbox)
        if det is not None:                  # else a missing face: a failure, not a skip
            tally["pairs"].append((t, self._face(rgb, det)))

    def _summarise(self, r: Report, tally: dict) -> None:
        centre = np.mean(self.source, 0)
        targets = np.stack([f.face.embedding for f in self.frames.values() if f.face])
        r.source_spread = _mean(distance(self.source, centre))
        r.target_distance_to_source = _mean(distance(targets, centre))
        pairs = tally["pairs"]
        if pairs:
            outs = np.stack([o.embedding for _, o in pairs])
            to_source = distance(outs, centre)
            # Missing faces count as not closer: the share is over frames with a target face.
            r.closer_to_source = float(np.sum(to_source < distance(outs, self.target_centroid))
                                       / r.target_faces)
            r.distance_to_source = _mean(to_source)
            r.distance_to_target = _mean(distance(outs, self.target_centroid))
            r.eye_correlation = fm.correlation([t.eye for t, _ in pairs],
                                               [o.eye for _, o in pairs], fm.FLAT_EYE)
            r.mouth_correlation = fm.correlation([t.mouth for t, _ in pairs],
                                                 [o.mouth for _, o in pairs], fm.FLAT_MOUTH)
            err = fm.pose_error([t.pose for t, _ in pairs], [o.pose for _, o in pairs])
            r.yaw_error, r.pitch_error, r.roll_error = (float(v) for v in err)
            redder = np.stack([colours.redder(o.redness, t.redness, self.source_red)
                               for t, o in pairs])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r.red_lips, r.red_eyes, r.red_cheeks, r.red_face = (
                    None if np.isnan(v) else float(v) for v in np.nanmedian(redder, 0))
        elif r.target_faces:
            r.closer_to_source = 0.0

        r.glasses_kept = glasses.kept(tally["glasses"])
        r.detail = _ratio(*zip(*tally["texture"])) if tally["texture"] else None
        r.seam = _ratio(*zip(*tally["seam"])) if tally["seam"] else None
        if tally["change"]:
            # Change per unit of texture: apparent motion (see pixels.py), output over target.
            (out_change, target_change), (out_tex, target_tex) = \
                zip(*tally["change"]), zip(*tally["moving_texture"])
            moved, target_moved = _ratio(out_change, out_tex), _ratio(target_change, target_tex)
            r.stability = moved / target_moved if moved is not None and target_moved else None


def evaluate(sources: list[Path], target: Path, output: Path, *, max_frames: int = 120,
             source_faces: int = 30, detector: str = "mediapipe",
             progress: Progress = no_progress) -> Report:
    """Score `output` (a render of `target` with the source person's face): identity,
    expression, pose, stability and seam. See localswap.evaluate.report for the bar."""
    check_pair(frames.open_media(Path(target))[0], Path(output))  # before the slow part
    with Judge(sources, target, max_frames=max_frames, source_faces=source_faces,
               detector=detector, progress=progress) as judge:
        report = judge.score(output)
        report.seconds += judge.setup_seconds
    return report
