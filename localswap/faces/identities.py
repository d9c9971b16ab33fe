"""Who is who: the distinct people in a video, and which listed person a tracked face is.

Listing (`list_people`): detect every frame, follow faces with the IoU tracker, embed a
track's face with dlib's descriptor (localswap.faces.embedder) when it starts, every
EMBED_EVERY frames and every few frames while another face touches it (where a tracker can
mix two people up), in a worker thread beside the detector, cluster the embeddings, and give each detection the person of its track's latest
embedding. People are numbered by how many frames they are in, most first; a listing is
cached per video so `extract --list-people` and a later `--person N` agree on the numbers.

Matching (`Matcher`): the same idea online. A track's identity is checked when it starts,
every RECHECK frames and every frame while another face is near; a face is the nearest
listed person if within THRESHOLD, else nobody (left untouched).

Measured on the test clips (2 shared CPU cores): one embedding costs ~75 ms; one person's
faces stay within 0.1-0.3 of each other across size and pose, the astronaut and Grace
Hopper are 0.65 apart.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from localswap import media
from localswap.errors import UserError
from localswap.faces.detect import make_backend
from localswap.faces.detection import bbox_of
from localswap.faces.landmarks import face_width
from localswap.faces.tracking import Tracks
from localswap.progress import Progress, no_progress
from localswap.settings import ExtractSettings
from localswap.system.cache import file_key, user_cache

THRESHOLD = 0.55     # dlib distance under which a face is taken as a listed person
CLUSTER = 0.5        # listing: faces nearer than this to a cluster's centre join it
EMBED_EVERY = 48     # listing: a track is embedded this often (frames read)
RECHECK = 24         # matching: a track's identity is checked again this often (frames) ...
RECHECK_NOBODY = 4   # ... and this often while it matched nobody (a first look may be poor)
NEAR = 1.2           # matching: another face within this many face widths: check every frame
LIST_NEAR = 1.0      # listing: faces this close (boxes touching) ...
LIST_NEAR_EVERY = 6  # ... are embedded this often: only there can the tracker mix them up
MIN_SHARE = 0.02     # listing: clusters in fewer frames than this share are dropped (noise)
GAP_FRAMES = 12      # missing ranges shorter than this are not worth a sentence
THUMB = 112
CACHE_VERSION = 1


def _embedder():
    from localswap.faces.embedder import Embedder
    return Embedder()


_NET = threading.Lock()   # one dlib network per process; its forward pass keeps state


def embed_face(embedder, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Descriptor of the face whose 68 landmarks are given (frame pixels)."""
    with _NET:
        return embedder.embed(rgb, bbox_of(landmarks))


def _width(lm: np.ndarray) -> float:
    return face_width(lm) or 1.0


def _near(lm: np.ndarray, others: list[np.ndarray], k: float = NEAR) -> bool:
    c, w = np.asarray(lm).mean(0), _width(lm)
    return any(np.linalg.norm(c - np.asarray(o).mean(0)) < k * max(w, _width(o))
               for o in others)


def ranges(frames: list[int], gap: int = 1) -> list[list[int]]:
    """[[first, last], ...] runs of sorted frame indices, split where more than `gap` apart."""
    out: list[list[int]] = []
    for f in sorted(frames):
        if out and f - out[-1][1] <= gap:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out


def missing(seen: list[int], first: int, last: int, min_len: int = GAP_FRAMES) -> list[list[int]]:
    """Ranges of frames in first..last where a person was not seen (runs >= min_len)."""
    out, prev = [], first - 1
    for a, b in ranges(seen) + [[last + 1, last + 1]]:
        if a - prev - 1 >= min_len:
            out.append([prev + 1, a - 1])
        prev = max(prev, b)
    return out


def missing_sentence(label: str, gaps: list[list[int]], first: int, last: int) -> str:
    if gaps == [[first, last]]:
        return f"{label} is not in this video (frames {first}–{last}): nothing was swapped for them"
    spans = ", ".join(f"{a}–{b}" for a, b in gaps)
    return f"{label} is not in frames {spans}"


@dataclass
class Person:
    index: int                      # 1-based, most frames first
    frames: int                     # frames the person is in
    embedding: list[float]          # centre of their descriptors
    ranges: list[list[int]] = field(default_factory=list)   # [first, last] frames seen
    thumbnail: str = ""             # jpg of their largest face, if written

    def line(self) -> str:
        spans = ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in self.ranges[:6])
        more = " …" if len(self.ranges) > 6 else ""
        return f"person {self.index}: {self.frames} frames ({spans}{more})"


@dataclass
class People:
    source: str
    frames_read: int = 0
    people: list[Person] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        if not self.people:
            return f"{Path(self.source).name}: no face found in {self.frames_read} frames"
        head = (f"{Path(self.source).name}: {len(self.people)} "
                f"{'person' if len(self.people) == 1 else 'people'} in {self.frames_read} frames "
                f"({self.seconds:.1f} s)")
        lines = [head] + [p.line() + (f"  {p.thumbnail}" if p.thumbnail else "")
                          for p in self.people]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "People":
        return cls(d["source"], d["frames_read"], [Person(**p) for p in d["people"]],
                   d.get("seconds", 0.0))

    def person(self, n: int) -> Person:
        if not 1 <= n <= len(self.people):
            raise UserError(f"person {n}: {Path(self.source).name} shows "
                            f"{len(self.people)} {'person' if len(self.people) == 1 else 'people'}"
                            " (extract --list-people lists them)")
        return self.people[n - 1]

    def references(self) -> np.ndarray:
        return np.array([p.embedding for p in self.people], np.float32).reshape(-1, 128)


@dataclass
class _Sample:
    embedding: Future          # np.ndarray once computed (a worker thread overlaps detection)
    track: int
    frame: int
    width: float
    crop: np.ndarray | None = None


def _thumb(rgb: np.ndarray, lm: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = bbox_of(lm)
    c, half = ((x0 + x1) / 2, (y0 + y1) / 2), 0.8 * max(x1 - x0, y1 - y0)
    h, w = rgb.shape[:2]
    a, b = int(max(0, c[0] - half)), int(min(w, c[0] + half))
    t, u = int(max(0, c[1] - half)), int(min(h, c[1] + half))
    return cv2.resize(rgb[t:u, a:b], (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _cluster(embs: np.ndarray) -> np.ndarray:
    """Labels 0..K-1: greedy joining to the nearest centre within CLUSTER, then merging
    centres nearer than CLUSTER, then one reassignment to the final centres."""
    centres: list[np.ndarray] = []
    members: list[list[int]] = []
    for i, e in enumerate(embs):
        d = [np.linalg.norm(e - c) for c in centres]
        if d and min(d) < CLUSTER:
            k = int(np.argmin(d))
            members[k].append(i)
            centres[k] = embs[members[k]].mean(0)
        else:
            centres.append(e.copy())
            members.append([i])
    merged = True
    while merged and len(centres) > 1:
        merged = False
        for a in range(len(centres)):
            for b in range(a + 1, len(centres)):
                if np.linalg.norm(centres[a] - centres[b]) < CLUSTER:
                    members[a] += members.pop(b)
                    centres.pop(b)
                    centres[a] = embs[members[a]].mean(0)
                    merged = True
                    break
            if merged:
                break
    c = np.stack(centres)
    return np.argmin(np.linalg.norm(embs[:, None] - c[None], axis=-1), axis=1)


def _cache_file(path: Path, settings: ExtractSettings) -> Path:
    """Keyed by the file's bytes, not its name: the app lists an upload where Gradio put it
    and the job lists the stored copy; both get the same numbers."""
    key = file_key([path], CACHE_VERSION, settings.every, settings.detector,
                   settings.min_confidence, settings.max_frames)
    return user_cache("people") / (key + ".json")


def list_people(video: str | Path, settings: ExtractSettings | None = None,
                thumbs: str | Path | None = None, progress: Progress = no_progress,
                cache: bool = True) -> People:
    """The distinct people in `video` (or a photo), most frames first; thumbnails (jpg) are
    written to the folder `thumbs` when given."""
    s = (settings or ExtractSettings()).validate()
    path = Path(video)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    cfile = _cache_file(path, s)
    if cache and cfile.is_file() and not thumbs:
        try:
            people = People.from_dict(json.loads(cfile.read_text()))
            for p in people.people:
                p.thumbnail = ""                  # written by an earlier listing, maybe gone
            return people
        except (ValueError, KeyError, TypeError):
            pass
    started = time.perf_counter()
    result = People(source=str(path))
    pool = ThreadPoolExecutor(1)          # dlib works while the detector reads on
    embed = lambda rgb, lm: embed_face(_embedder(), rgb, lm)        # noqa: E731
    samples: list[_Sample] = []
    seen: list[tuple[int, int, int]] = []     # (frame, track, index of the track's sample)
    last_sample: dict[int, int] = {}
    best: dict[int, float] = {}
    if media.is_image(path):
        frames = iter([(0, 0.0, media.read_image(path))])
        total, video = 1, False
    else:
        info = media.probe(path)
        frames = media.prefetch(media.read_frames(path, every=s.every, info=info))
        total, video = -(-info.frames // s.every), True
        if s.max_frames:
            total = min(total, s.max_frames)
    backend = make_backend(s.detector, video=video, min_confidence=s.min_confidence,
                           device=s.device)
    tracks = Tracks()
    try:
        for n, (index, _, rgb) in enumerate(frames):
            if s.max_frames and n >= s.max_frames:
                break
            result.frames_read += 1
            dets = [d for d in backend.detect(rgb) if _width(d.landmarks) >= 12]
            lms = [d.landmarks for d in dets]
            for k, (d, tid) in enumerate(zip(dets, tracks.assign(dets))):
                prev = samples[last_sample[tid]] if tid in last_sample else None
                since = index - prev.frame if prev else 0
                if (prev is None or since >= EMBED_EVERY * s.every
                        or (since >= LIST_NEAR_EVERY * s.every
                            and _near(d.landmarks, lms[:k] + lms[k + 1:], LIST_NEAR))):
                    w = _width(d.landmarks)
                    smp = _Sample(pool.submit(embed, rgb, d.landmarks), tid, index, w)
                    if w > best.get(tid, 0.0):
                        best[tid], smp.crop = w, _thumb(rgb, d.landmarks)
                    last_sample[tid] = len(samples)
                    samples.append(smp)
                seen.append((index, tid, last_sample[tid]))
            if n % 5 == 0:
                progress(n + 1, total, f"{path.name}: {len(samples)} faces compared")
    finally:
        backend.close()
        if hasattr(frames, "close"):
            frames.close()
        pool.shutdown(wait=True)
    for x in samples:
        x.embedding = x.embedding.result()
    if samples:
        labels = _cluster(np.stack([x.embedding for x in samples]))
        per: dict[int, set[int]] = {}
        for frame, _, si in seen:
            per.setdefault(int(labels[si]), set()).add(frame)
        keep = [k for k, fr in per.items()
                if len(fr) >= max(1, MIN_SHARE * result.frames_read)]
        keep.sort(key=lambda k: (-len(per[k]), min(per[k])))
        for i, k in enumerate(keep, 1):
            mine = [x for x, lab in zip(samples, labels) if lab == k]
            p = Person(i, len(per[k]),
                       [round(float(v), 5) for v in np.mean([x.embedding for x in mine], 0)],
                       ranges(sorted(per[k]), gap=max(1, s.every) * 12))
            crops = [x for x in mine if x.crop is not None]
            if thumbs and crops:
                t = Path(thumbs) / f"person_{i}.jpg"
                t.parent.mkdir(parents=True, exist_ok=True)
                media.write_image(t, max(crops, key=lambda x: x.width).crop)
                p.thumbnail = str(t)
            result.people.append(p)
    result.seconds = time.perf_counter() - started
    if cache:
        try:
            cfile.parent.mkdir(parents=True, exist_ok=True)
            cfile.write_text(json.dumps(result.to_dict()))
        except OSError:
            pass          # a cache is a convenience
    return result


def same_people(original: str | Path, copy: str | Path) -> bool:
    """Give a re-encoded `copy` (the app's downscaled upload) the listing of `original`, if
    one was made, so a person keeps the number the user picked them by; descriptors are the
    same person's at either size. True when there was one to give."""
    s = ExtractSettings()
    try:
        src = _cache_file(Path(original), s)
        if not src.is_file():
            return False
        people = People.from_dict(json.loads(src.read_text()))
        people.source = str(copy)
        dst = _cache_file(Path(copy), s)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps(people.to_dict()))
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def photo_reference(photo: str | Path, settings: ExtractSettings | None = None) -> np.ndarray:
    """Descriptor of the largest face in a reference photo."""
    s = settings or ExtractSettings()
    path = Path(photo)
    if not path.is_file():
        raise UserError(f"{path}: reference photo not found")
    rgb = media.read_image(path)
    backend = make_backend(s.detector, video=False, min_confidence=s.min_confidence,
                           device=s.device)
    try:
        dets = backend.detect(rgb)
    finally:
        backend.close()
    if not dets:
        raise UserError(f"{path.name}: no face found in the reference photo; use a photo where "
                        "the person's face is clearly visible")
    det = max(dets, key=lambda d: _width(d.landmarks))
    return embed_face(_embedder(), rgb, det.landmarks)


PHOTO_MATCH = 0.75   # a reference photo picks the nearest listed person within this


def person_like(people: People, reference: np.ndarray, photo: str | Path) -> int:
    """The listed person (1-based) a reference photo shows. The photo only picks a person;
    faces are then matched to the listing's centres, which hold the person at every size the
    video shows them (a 50 px face and a 500 px photo of one person can be 0.67 apart, as far
    as two people)."""
    if not people.people:
        raise UserError(f"{Path(people.source).name}: no face found, so nobody to match "
                        f"{Path(photo).name} to")
    d = np.linalg.norm(people.references() - np.asarray(reference)[None], axis=-1)
    k = int(np.argmin(d))
    if d[k] >= PHOTO_MATCH:
        raise UserError(f"nobody in {Path(people.source).name} looks like the person in "
                        f"{Path(photo).name} (the nearest, person {k + 1}, is {d[k]:.2f} away; "
                        "one person is usually under 0.6): try another photo or --person N")
    return k + 1


class Matcher:
    """Which reference (row of `references`) each face of a frame is, or None.

    Call once per frame, in order, with (track id, landmarks, filled) per face; a face filled
    in across a detection gap keeps its track's identity unless another face is near (then it
    is likely hidden behind that face, and is left alone). Re-checks count frames seen, so
    `extract --every N` does not embed every face of every frame it reads."""

    def __init__(self, references: np.ndarray, threshold: float = THRESHOLD):
        self.refs = np.asarray(references, np.float32).reshape(-1, 128)
        self.threshold = threshold
        self.embedder = _embedder()
        self.known: dict[int, tuple[int, int | None]] = {}   # track -> (frame checked, label)
        self.where: dict[int, tuple[int, np.ndarray]] = {}    # track -> (frame, landmarks)
        self.checks = 0
        self.tick = 0                                         # frames seen

    def _nearest(self, rgb: np.ndarray, lm: np.ndarray) -> int | None:
        self.checks += 1
        d = np.linalg.norm(self.refs - embed_face(self.embedder, rgb, lm)[None], axis=-1)
        k = int(np.argmin(d))
        return k if d[k] < self.threshold else None

    def __call__(self, rgb: np.ndarray, index: int,
                 faces: list[tuple[int | None, np.ndarray, bool]]) -> list[int | None]:
        self.tick += 1
        index = self.tick
        recent = [lm for tid, (f, lm) in self.where.items() if index - f <= RECHECK_NOBODY + 2]
        out: list[int | None] = []
        for k, (tid, lm, filled) in enumerate(faces):
            others = [o for j, (_, o, _) in enumerate(faces) if j != k]
            near = _near(lm, others + [o for o in recent if not _near_same(o, lm)])
            if filled:
                out.append(None if near else self.known.get(tid, (0, None))[1])
                continue
            checked = self.known.get(tid) if tid is not None else None
            every = RECHECK if checked is not None and checked[1] is not None else RECHECK_NOBODY
            if checked is None or near or index - checked[0] >= every:
                checked = (index, self._nearest(rgb, lm))
                if tid is not None:
                    self.known[tid] = checked
            out.append(checked[1])
        for tid, lm, filled in faces:
            if tid is not None and not filled:
                self.where[tid] = (index, np.asarray(lm))
        return out


def _near_same(a: np.ndarray, b: np.ndarray) -> bool:
    """Is `a` (a recent position) the face `b` itself (it moved only a little)?"""
    return np.linalg.norm(np.asarray(a).mean(0) - np.asarray(b).mean(0)) < 0.35 * _width(b)
