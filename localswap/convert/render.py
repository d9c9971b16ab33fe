"""The streaming converter: video A (or photos) + a model -> the same footage with B's face.

Four stages run at once, joined by small bounded queues, so the slowest sets the pace:

    decode (ffmpeg pipe) -> analyse (detect, track + smooth, align) -> model (batches of
    faces) -> compose + encode (mask, colour, blend, paste back; ffmpeg pipe), on the caller's
    thread

No frame touches the disk. Frames without a face are written as decoded. The output is
written to a temp file and renamed at the end; a failure or a cancel leaves nothing.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import cv2
import torch

from localswap import media
from localswap.convert.blend import Look
from localswap.convert.cast import Cast, make_cast
from localswap.convert.frames import (STEPS, Cancelled, ConvertResult, Frame, Largest,
                                      align_faces, check_paths, compose, pick_faces,
                                      run_model, synthetic_tag)
from localswap.convert.glasses import find_glasses, keeper_for
from localswap.convert.occluders import OccluderCheck, check_for
from localswap.convert.occlusion import FillBack, find_hands, tracker_for
from localswap.convert.smooth import FaceTracker
from localswap.convert.swapper import Swapper, open_swapper
from localswap.errors import DiskFullError, UserError, is_disk_full
from localswap.faces.detect import make_backend
from localswap.progress import Progress, no_progress, plural
from localswap.settings import ConvertSettings
from localswap.system.threads import free_cores

QUEUE_DEPTH = 8
FRAME_BUDGET = 128 * 2**20   # bytes of decoded frames one queue (or one model batch) may hold


class _Stop(Exception):
    """Raised inside a stage when another stage failed or the run was cancelled."""


_END = object()


class _Pipeline:
    """The worker threads and the queues between them."""

    def __init__(self, cancel: threading.Event | None):
        self.stop = threading.Event()
        self.cancel = cancel or threading.Event()
        self.errors: list[BaseException] = []
        self.busy = dict.fromkeys(STEPS, 0.0)
        self.threads: list[threading.Thread] = []

    def put(self, q: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue):
        while True:
            if self.stop.is_set():
                raise _Stop
            if self.cancel.is_set():
                raise Cancelled("conversion cancelled")
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def spawn(self, name: str, target, *args) -> None:
        def run():
            try:
                target(*args)
            except _Stop:
                pass
            except BaseException as exc:  # handed to the caller's thread
                self.errors.append(exc)
                self.stop.set()
        t = threading.Thread(target=run, name=f"convert-{name}", daemon=True)
        self.threads.append(t)
        t.start()

    def shutdown(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _decode(p: _Pipeline, path: Path, info: media.MediaInfo, s: ConvertSettings,
            out: queue.Queue) -> None:
    frames = media.read_frames(path, start=s.start, end=s.end, info=info)
    try:
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            p.busy["decode"] += time.perf_counter() - t0
            if item is None:
                break
            p.put(out, item)
        p.put(out, _END)
    finally:
        frames.close()


def _analyse(p: _Pipeline, s: ConvertSettings, swapper: Swapper, inp: queue.Queue,
             out: queue.Queue, tracker: FaceTracker, cast: Cast | None = None) -> None:
    backend = make_backend(s.detector, video=True, min_confidence=s.min_confidence,
                           device=s.device)
    choose = Largest() if s.faces == "largest" else list
    hands = tracker_for(s.occlusion)
    glasses = keeper_for(s.glasses)
    late = FillBack() if hands is not None else None
    try:
        while True:
            item = p.get(inp)
            ready = tracker.finish() if item is _END else None
            if item is not _END:
                index, ts, image = item
                t0 = time.perf_counter()
                found = pick_faces([d.landmarks for d in backend.detect(image)], "all")
                p.busy["detect"] += time.perf_counter() - t0
                ready = tracker.push(index, ts, image, found)
            for index, image, tracked in ready:
                t0 = time.perf_counter()
                if cast is not None:
                    faces = align_faces(image, *cast(image, index, tracked))
                else:
                    faces = align_faces(image, [f.landmarks for f in choose(tracked)], swapper)
                t1 = time.perf_counter()
                p.busy["align"] += t1 - t0
                in_front = find_hands(hands, image, faces)
                p.busy["detect"] += time.perf_counter() - t1
                frame = Frame(index, image, faces, in_front, find_glasses(glasses, image, faces))
                for ready_frame in (late.push(frame) if late else [frame]):
                    p.put(out, ready_frame)
            if item is _END:
                for ready_frame in (late.finish() if late else []):
                    p.put(out, ready_frame)
                p.put(out, _END)
                return
    finally:
        backend.close()
        if hands is not None:
            hands.close()


def _model(p: _Pipeline, swapper: Swapper, batch: int, inp: queue.Queue,
           out: queue.Queue, check: OccluderCheck | None = None) -> None:
    while True:
        frames, ended = [p.get(inp)], False
        if frames[0] is _END:
            p.put(out, _END)
            return
        # Wait for a full batch: on a CPU a batch of 8 costs under half as much per face as
        # 8 single calls, and a model that keeps up one face at a time would otherwise
        # never see more than one. Frames without faces count, so they are not held long.
        while sum(len(f.faces) for f in frames) < batch and len(frames) < batch:
            nxt = p.get(inp)
            if nxt is _END:
                ended = True
                break
            frames.append(nxt)
        faces = [face for f in frames for face in f.faces]
        if faces:
            t0 = time.perf_counter()
            run_model(swapper, faces, batch, check)
            p.busy["model"] += time.perf_counter() - t0
        for f in frames:
            p.put(out, f)
        if ended:
            p.put(out, _END)
            return


def _depth(frames: int, info: media.MediaInfo) -> int:
    """`frames`, or fewer when that many would pass FRAME_BUDGET: the usual depths hold ~50
    frames in flight, 1.2 GB at 4K (25 MB a frame); sizes up to 1080p are not affected."""
    return max(2, min(frames, FRAME_BUDGET // (info.width * info.height * 3)))


def convert(input: str | Path, model: str | Path | Swapper | dict, out: str | Path,
            settings: ConvertSettings | None = None, progress: Progress = no_progress,
            cancel: threading.Event | None = None, knows_person: bool | None = None
            ) -> ConvertResult:
    """Render `input` (a video, a photo or a folder of photos) with the model's swapped face
    into `out` (an .mp4, an image, or a folder for a folder). Set `cancel` to stop early.
    `model` may map people to models ({1: model X, 2: model Y}, numbers as in
    `extract --list-people`): each person gets their own, in one pass. `knows_person`:
    whether the video shows the model's target person, where the caller knows (it lets
    `--occlusion auto` trust the model's drawing of them; convert.occluders)."""
    s = (settings or ConvertSettings()).validate()
    input, out = Path(input), Path(out)
    if not input.exists():
        raise UserError(f"{input}: file not found")
    if not input.is_dir() and not media.is_video(input) and not media.is_image(input):
        raise UserError(f"{input.name}: not a supported video (mp4, mov, mkv, webm, avi) or "
                        "image (jpg, png, bmp, webp, tif)")
    cast = None
    if isinstance(model, dict) or s.person or s.person_photo:
        if (input.is_dir() or media.is_image(input)) and (isinstance(model, dict)
                                                          or not s.person_photo):
            raise UserError("for photos choose the person with --person-photo FILE (--person "
                            "and --map number the people of a video)")
        cast, swapper = make_cast(input, model, s)
    else:
        swapper = (model if isinstance(model, Swapper)
                   else open_swapper(model, s.device, s.precision))
    try:
        if input.is_dir() or media.is_image(input):
            from localswap.convert.photos import convert_photos
            return convert_photos(input, swapper, out, s, progress, cancel, cast,
                                  knows_person)
        check_paths(input, out, video=True)
        return _convert_video(input, swapper, out, s, progress, cancel, cast, knows_person)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(f"disk full while writing {out}: free some space and convert "
                            "again") from exc


def _convert_video(path: Path, swapper: Swapper, out: Path, s: ConvertSettings,
                   progress: Progress, cancel: threading.Event | None,
                   cast: Cast | None = None, knows_person: bool | None = None
                   ) -> ConvertResult:
    started = time.perf_counter()
    info = media.probe(path)
    if s.start is not None and s.start >= info.duration:
        raise UserError(f"--start {s.start} s is past the end of the video "
                        f"({info.duration:.2f} s)")
    first = int(round((s.start or 0) * info.fps))
    last = info.frames if s.end is None else min(info.frames, int(round(s.end * info.fps)))
    total = max(1, last - first)
    result = ConvertResult(out=str(out), model=swapper.name, device=str(swapper.device))
    look = Look.of(s)
    tracker = FaceTracker(s.smooth, s.fill_gap)
    p = _Pipeline(cancel)
    depth, batch = _depth(QUEUE_DEPTH, info), _depth(s.batch, info)
    q_frames, q_faces = queue.Queue(depth), queue.Queue(depth)
    # Batches arrive in bursts: room for two keeps the encoder fed while the next one fills.
    q_done = queue.Queue(_depth(max(QUEUE_DEPTH, min(2 * s.batch + 2, 64)), info))
    writer = media.VideoWriter(out, info.width, info.height, info.fps, audio_from=path,
                               metadata={"comment": "; ".join(
                                   synthetic_tag(m) for m in cast.models())
                                   if cast else synthetic_tag(swapper)}, crf=s.crf,
                               audio_start=s.start, audio_end=s.end)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        if swapper.device.type == "cpu":
            # The stages already run side by side with ffmpeg: threads inside each stage
            # mostly spin against the others. Measured on 2 cores: 1 torch thread converts
            # faster than 2, and 1 OpenCV thread uses ~10% less CPU per frame than 2. Count
            # only the cores free now: a busy neighbour makes extra threads spin-wait.
            cores = free_cores()
            torch.set_num_threads(max(1, cores // 2))
            cv2.setNumThreads(max(1, cores // 4))
        p.spawn("decode", _decode, p, path, info, s, q_frames)
        p.spawn("analyse", _analyse, p, s, swapper, q_frames, q_faces, tracker, cast)
        check = check_for(s.occlusion, swapper, knows_person)
        p.spawn("model", _model, p, swapper, batch, q_faces, q_done, check)
        while True:
            try:
                frame = p.get(q_done)
            except _Stop:
                raise p.errors[0] if p.errors else Cancelled("conversion cancelled")
            if frame is _END:
                break
            t0 = time.perf_counter()
            image = compose(frame, look, s.label, swapper)
            t1 = time.perf_counter()
            writer.write(image)
            p.busy["compose"] += t1 - t0
            p.busy["encode"] += time.perf_counter() - t1
            result.frames += 1
            result.faces += len(frame.faces)
            result.frames_with_faces += bool(frame.faces)
            if result.frames % 8 == 0 or result.frames == total:
                elapsed = time.perf_counter() - started
                progress(min(result.frames, total), total, plural(result.faces, "face"),
                         fps=result.frames / elapsed if elapsed else 0.0)
        t0 = time.perf_counter()
        writer.close()
        p.busy["encode"] += time.perf_counter() - t0
    except BaseException:
        writer.abort()
        raise
    finally:
        p.shutdown()
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    result.filled = tracker.filled
    if check is not None:
        result.objects = check.counts()
        if check.note():
            result.notes.append(check.note())
    if cast is not None:
        cast.report(result)
    result.stages = p.busy
    result.seconds = time.perf_counter() - started
    return result
