"""Extraction: videos and photos in, a faceset of aligned faces out.

detect -> 68 landmarks -> similarity transform to the mean face -> aligned crop -> filters
-> PNG + faceset.json entry. Re-running on the same folder skips frames already extracted.

The filters depend on whose faces these are (`role`). A target keeps every face the render
can swap (SWAPPABLE_FACE px and up, one person per frame): every target frame is rendered,
so a soft or small face is still the user's face; the summary counts them. A source is the
identity the model learns, so it leaves out faces under --min-face, blurred faces and faces
much softer than its own clip's sharpest (localswap.faces.sharpness), keeping at least its
sharpest KEEP_AT_LEAST.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from localswap import media
from localswap.errors import DiskFullError, NoFacesError, UserError, is_disk_full
from localswap.faces.align import transform_matrix, transform_points, warp_face
from localswap.faces.detect import make_backend
from localswap.faces.detection import Detection
from localswap.faces.faceset import Faceset, FaceEntry, yaw_bin
from localswap.faces import sharpness
from localswap.faces.landmarks import SWAPPABLE_FACE, estimate_pose, face_width
from localswap.faces.summary import ExtractSummary, no_faces_sentence
from localswap.faces.tracking import Tracks
from localswap.progress import Progress, no_progress, plural
from localswap.settings import ExtractSettings

SAVE_SECONDS = 20.0  # index saves this often, so a crash loses little


def _written(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _source_tag(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:32] or "src"
    return f"{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:6]}"


def collect_inputs(inputs: list[str | Path]) -> list[tuple[Path, media.MediaInfo | None]]:
    """(path, MediaInfo for videos / None for images) for every input, checked readable
    before anything is written."""
    out: list[tuple[Path, media.MediaInfo | None]] = []
    for raw in inputs:
        p = Path(raw).expanduser().absolute()
        if p.is_dir():
            imgs = sorted(q for q in p.rglob("*") if q.is_file() and media.is_image(q))
            if not imgs:
                raise UserError(f"{p}: the folder has no images (jpg, png, bmp, webp, tif)")
            out += [(q, None) for q in imgs]
        elif media.is_video(p):
            out.append((p, media.probe(p)))  # a UserError naming the file if unreadable
        elif media.is_image(p):
            if not p.is_file():
                raise UserError(f"{p}: file not found")
            out.append((p, None))
        elif not p.exists():
            raise UserError(f"{p}: file not found")
        else:
            raise UserError(f"{p.name}: not a supported video (mp4, mov, mkv, webm, avi) or "
                            "image (jpg, png, bmp, webp, tif)")
    return out


class _Extractor:
    def __init__(self, faceset: Faceset, settings: ExtractSettings, summary: ExtractSummary,
                 names: dict[str, str] | None = None):
        self.fs, self.s, self.summary = faceset, settings, summary
        self.names = names or {}
        self.rejected: Counter = Counter()
        self.writer = ThreadPoolExecutor(max_workers=2)  # PNG encoding overlaps detection
        self.pending = []
        self.last_save = time.monotonic()
        self.people = None          # (reference descriptors, the row wanted) for --person
        self.added: list[FaceEntry] = []    # this run's faces, for the sharpness rule

    def name(self, path: Path) -> str:
        """The file's name as the user knows it (an upload is stored under another)."""
        return self.names.get(str(path)) or self.names.get(path.name) or path.name

    def choose_person(self, items: list[tuple[Path, media.MediaInfo | None]]) -> None:
        """--person N (numbered in the first video's listing) or --person-photo FILE: only
        that person's faces are kept."""
        from localswap.faces.identities import list_people, person_like, photo_reference
        s = self.s
        videos = [p for p, info in items if info is not None]
        if s.person_photo and not videos:
            self.people = (photo_reference(s.person_photo, s)[None], 0)
            return
        first = (videos or [items[0][0]])[0]
        # Numbered as `extract --list-people` numbers them: from every frame, whatever --every.
        listing = list_people(first, replace(s, every=1, max_frames=0))
        n = (person_like(listing, photo_reference(s.person_photo, s), s.person_photo)
             if s.person_photo else listing.person(s.person).index)
        self.people = (listing.references(), n - 1)

    def wanted(self, matcher, frame: np.ndarray, index: int, dets: list[Detection],
               ids: list[int]) -> list[bool]:
        if self.people is None:
            return [True] * len(dets)
        who = matcher(frame, index, [(t, d.landmarks, False) for d, t in zip(dets, ids)])
        return [k == self.people[1] for k in who]

    def make_entry(self, frame: np.ndarray, det: Detection, source: Path, index: int,
                   timestamp: float, track: int, k: int) -> tuple[FaceEntry, np.ndarray] | None:
        s = self.s
        width = face_width(det.landmarks)
        target = s.role == "target"
        if width < (SWAPPABLE_FACE if target else s.min_face or SWAPPABLE_FACE):
            return None
        mat = transform_matrix(det.landmarks, s.size, s.face_type)
        crop = warp_face(frame, mat, s.size)
        lm = transform_points(det.landmarks, mat)
        blur, fine = sharpness.scores(frame, mat, s.size, lm, crop)
        h, w = frame.shape[:2]
        yaw, pitch, roll = estimate_pose(det.landmarks, w, h)
        name = f"{_source_tag(source)}_{index:06d}_{k}.png"
        entry = FaceEntry(
            image=name, source=str(source), frame=index, timestamp=round(timestamp, 4),
            bbox=[round(float(v), 2) for v in det.bbox], landmarks=np.round(lm, 2).tolist(),
            yaw=round(yaw, 2), pitch=round(pitch, 2), roll=round(roll, 2), blur=round(blur, 2),
            face_size=round(width, 2), transform=np.round(mat, 6).tolist(),
            score=round(det.score, 4), track=track, fine=round(fine, 4))
        return entry, crop

    def keep(self, entry: FaceEntry, crop: np.ndarray) -> None:
        self.pending.append(self.writer.submit(media.write_image, self.fs.image_path(entry), crop))
        self.fs.add(entry)
        self.added.append(entry)
        self.summary.faces_kept += 1
        if time.monotonic() - self.last_save > SAVE_SECONDS:
            self.flush()

    def flush(self) -> None:
        for fut in self.pending:
            fut.result()  # surfaces write errors (disk full) before the index names the files
        self.pending.clear()
        self.fs.save()
        self.last_save = time.monotonic()

    def video(self, path: Path, info: media.MediaInfo, backend, progress: Progress, done: int,
              total: int) -> int:
        backend.reset()
        tracks = Tracks()
        multi: list[list[FaceEntry]] = []   # frames where several faces were kept
        s = self.s
        matcher = None
        if self.people is not None:
            from localswap.faces.identities import Matcher
            matcher = Matcher(self.people[0])
        for n, (index, ts, frame) in enumerate(
                media.prefetch(media.read_frames(path, every=s.every, info=info))):
            if s.max_frames and n >= s.max_frames:
                break
            self.summary.frames_read += 1
            done += 1
            if self.fs.has(str(path), index):
                self.summary.frames_skipped += 1
            else:
                dets = backend.detect(frame)
                if len(dets) > 1:
                    self.summary.multi_face_frames += 1
                kept, wanted = [], 0
                ids = tracks.assign(dets)
                for k, (det, tid, want) in enumerate(
                        zip(dets, ids, self.wanted(matcher, frame, index, dets, ids))):
                    if not want:
                        continue
                    wanted += 1
                    made = self.make_entry(frame, det, path, index, ts, tid, k)
                    if made:
                        self.keep(*made)
                        kept.append(made[0])
                if len(kept) > 1:
                    multi.append(kept)
                self.frame_outcome(len(dets), wanted, len(kept))
            if done % 5 == 0 or done == total:
                progress(done, total, f"{self.name(path)}: "
                         f"{plural(self.summary.faces_kept, 'face')}")
        self.one_person(multi, tracks)
        return done

    def frame_outcome(self, faces: int, wanted: int, kept: int) -> None:
        """One reason for a frame that gave no face (the likeliest to matter: the person was
        there but too small before someone else was there), other faces beside a kept one."""
        if kept:
            self.summary.other_faces += faces - kept
        elif not faces:
            self.rejected["no_face"] += 1
        elif wanted:
            self.rejected["too_small"] += 1
        else:
            self.rejected["other_person"] += 1

    def one_person(self, multi: list[list[FaceEntry]], tracks: Tracks) -> None:
        """In frames with several faces keep the main person's: the longest track."""
        if not multi:
            return
        self.flush()
        main = tracks.count.most_common(1)[0][0]
        for faces in multi:
            keep = next((f for f in faces if f.track == main),
                        max(faces, key=lambda f: f.face_size))
            for f in faces:
                if f is not keep:
                    self.fs.remove(f)
                    self.summary.faces_kept -= 1
                    self.summary.other_faces += 1

    def image(self, path: Path, backend) -> None:
        self.summary.frames_read += 1
        if self.fs.has(str(path), 0):
            self.summary.frames_skipped += 1
            return
        try:
            frame = media.read_image(path)
        except UserError:
            self.rejected["unreadable"] += 1
            return
        backend.reset()
        dets = backend.detect(frame)
        if not dets:
            self.rejected["no_face"] += 1
            return
        faces = len(dets)
        if self.people is not None:
            from localswap.faces.identities import Matcher
            keep = self.wanted(Matcher(self.people[0]), frame, 0, dets, [None] * len(dets))
            dets = [d for d, k in zip(dets, keep) if k]
        if faces > 1:
            self.summary.multi_face_frames += 1
        made = None
        if dets:
            det = max(dets, key=lambda d: face_width(d.landmarks))
            made = self.make_entry(frame, det, path, 0, 0.0, 0, 0)
        if made:
            self.keep(*made)
        self.frame_outcome(faces, len(dets), int(made is not None))


    def judge_sharpness(self) -> None:
        """Count the target's soft faces; leave the source's soft and blurred faces out,
        clip by clip (photos as one group), keeping at least the sharpest KEEP_AT_LEAST of
        each (localswap.faces.sharpness)."""
        def group(f: FaceEntry) -> str:
            return "photos" if f.frame == 0 and media.is_image(Path(f.source)) else f.source
        # A group is judged whole, with the faces an earlier run kept (a resumed job, a
        # re-run), but only this run's faces may go: else a re-run, which reads again the
        # frames an earlier run left out, would judge them among themselves and keep them.
        added = {id(f) for f in self.added}
        wanted = {group(f) for f in self.added}
        groups: dict[str, list[FaceEntry]] = {}
        for f in self.fs.faces:
            if group(f) in wanted:
                groups.setdefault(group(f), []).append(f)
        drop: list[FaceEntry] = []
        for key, faces in groups.items():
            faces.sort(key=lambda f: f.frame)
            blurs = [f.blur for f in faces]
            if self.s.role == "target":
                line = sharpness.soft_line(blurs, self.s.soft_share)
                small = self.s.min_face or sharpness.SMALL_FACE
                mine = [f for f in faces if id(f) in added]
                self.summary.soft += sum(f.blur < line for f in mine)
                self.summary.small += sum(f.face_size < small for f in mine)
                continue
            widths = [f.face_size for f in faces]
            labels = sharpness.judge_source(
                blurs, [f.fine for f in faces], widths, self.s.soft_share,
                0.0 if self.s.min_face else sharpness.SMALL_FACE,
                window=1 if key == "photos" else 7)
            for f, label in zip(faces, labels):
                if id(f) not in added:
                    continue
                if label in ("soft", "small", "blurred"):
                    drop.append(f)
                    self.rejected[{"blurred": "blurry", "small": "too_small"}.get(
                        label, label)] += 1
                elif label != "keep":
                    self.summary.soft += label == "kept soft"
                    self.summary.small += label == "kept small"
        if drop:
            self.flush()
            self.fs.remove_many(drop)
            self.summary.faces_kept -= len(drop)


def extract(inputs: list[str | Path], out: str | Path, settings: ExtractSettings | None = None,
            progress: Progress = no_progress,
            names: dict[str, str] | None = None) -> ExtractSummary:
    """Extract faces from `inputs` into the faceset folder `out`; see module doc. `names`
    maps an input's path or file name to the name the user knows it by, for messages."""
    settings = (settings or ExtractSettings()).validate()
    started = time.perf_counter()
    items = collect_inputs(inputs)
    out = Path(out)
    created = not out.exists()
    fs = Faceset.open_or_create(out, settings.face_type, settings.size)
    summary = ExtractSummary(out=str(out))
    ex = _Extractor(fs, settings, summary, names)
    if settings.person or settings.person_photo:
        ex.choose_person(items)
    total = 0
    for _, info in items:
        n = -(-info.frames // settings.every) if info else 1
        total += min(n, settings.max_frames) if info and settings.max_frames else n
    video_backend = image_backend = None
    done = 0
    try:
        for p, info in items:
            if info is not None:
                video_backend = video_backend or make_backend(
                    settings.detector, video=True, min_confidence=settings.min_confidence,
                    device=settings.device)
                done = ex.video(p, info, video_backend, progress, done, total)
            else:
                image_backend = image_backend or make_backend(
                    settings.detector, video=False, min_confidence=settings.min_confidence,
                    device=settings.device)
                ex.image(p, image_backend)
                done += 1
                progress(done, total, f"{ex.name(p)}: {plural(summary.faces_kept, 'face')}")
        ex.judge_sharpness()
        ex.flush()
    except BaseException as exc:
        ex.writer.shutdown(wait=True)
        # Index only the crops that really reached the disk.
        fs.faces = [f for f in fs.faces if _written(fs.image_path(f))]
        if created and not fs.faces:
            shutil.rmtree(out, ignore_errors=True)
        else:
            try:
                fs.save()
            except OSError:
                pass  # the previous faceset.json stays intact (atomic writes)
        if is_disk_full(exc):
            raise DiskFullError(f"disk full while writing {out}: free some space and run "
                                "extract again; faces saved so far are kept") from exc
        raise
    finally:
        for b in (video_backend, image_backend):
            if b is not None:
                b.close()
    ex.writer.shutdown(wait=True)
    summary.rejected = dict(ex.rejected)
    summary.faces_total = len(fs)
    for f in fs.faces:
        summary.yaw[yaw_bin(f.yaw)] += 1
    summary.seconds = time.perf_counter() - started
    if not fs.faces:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise NoFacesError(no_faces_sentence([ex.name(p) for p, _ in items], summary, settings),
                           summary)
    return summary
