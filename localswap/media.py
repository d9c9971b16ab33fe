"""Media I/O: frames in as RGB uint8, H.264 mp4 out, audio carried over.

Uses the static ffmpeg bundled in imageio-ffmpeg, so no system ffmpeg is needed. Frames stream
through pipes: nothing is written to disk frame by frame.

Awkward videos: a rotation tag (phones) is applied by ffmpeg when decoding, so `probe` reports
and `read_frames` yields the displayed (upright) size, and output written from those frames
shows the same way without a tag. A variable-frame-rate video is read at a constant rate, its
average fps, each frame being the picture shown at that moment (pictures repeated or skipped
as the timestamps say), so the output keeps the input's duration and audio sync.
"""
from __future__ import annotations

import glob
import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import imageio_ffmpeg
import numpy as np

from localswap.errors import DiskFullError, UserError
from localswap.workspace import remove_temp_files


class _NoRotationNote(logging.Filter):
    """imageio-ffmpeg warns whenever the decoded size differs from the coded one, which is
    every read of a rotated (phone) video; the displayed size is the one we want."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "different from the source frame size" not in record.getMessage()


logging.getLogger("imageio_ffmpeg").addFilter(_NoRotationNote())

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def is_image(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


@dataclass
class MediaInfo:
    path: str
    width: int
    height: int
    fps: float
    duration: float
    frames: int          # estimated from duration x fps (exact for constant frame rate)
    has_audio: bool
    audio_codec: str | None
    codec: str
    vfr: bool = False    # variable frame rate: read at a constant `fps`, the average rate


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty (0 bytes)")


def probe(path: str | os.PathLike) -> MediaInfo:
    """Size, fps, duration and audio presence of a video; UserError if it is not readable."""
    path = Path(path)
    _check_file(path)
    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise UserError(f"{path.name}: cannot read this video (damaged, truncated or not a "
                        "video file)") from exc
    finally:
        gen.close()
    w, h = meta["size"]
    fps = float(meta.get("fps") or 0)
    duration = float(meta.get("duration") or 0)
    if w <= 0 or h <= 0 or fps <= 0:
        raise UserError(f"{path.name}: no video stream found")
    return MediaInfo(str(path), int(w), int(h), fps, duration, int(round(duration * fps)),
                     bool(meta.get("audio_codec")), meta.get("audio_codec"),
                     str(meta.get("codec", "")), _variable_rate(path, fps))


def audio_seconds(path: str | os.PathLike) -> float:
    """How long the first audio track lasts (its packets read, not decoded); 0 if none."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map",
                          "0:a:0", "-c", "copy", "-f", "null", "-"], capture_output=True,
                         text=True, errors="replace").stderr
    found = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", out)
    if not found:
        return 0.0
    h, m, sec = found[-1]
    return int(h) * 3600 + int(m) * 60 + float(sec)


def _variable_rate(path: Path, fps: float) -> bool:
    """True when the stream's average rate (`fps`, what the frame count and the output use)
    differs from its base rate (ffmpeg's `tbr`): frames are not evenly spaced. Decoding such a
    stream plainly repeats frames up to the base rate, which made output too long."""
    header = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, text=True, errors="replace").stderr
    line = next((x for x in header.splitlines() if " Video: " in x), "")
    tbr = re.search(r" ([0-9.]+)(k?) tbr", line)
    if not tbr:
        return False
    base = float(tbr.group(1)) * (1000 if tbr.group(2) else 1)
    return abs(base - fps) > 1e-3 * fps


def read_frames(path: str | os.PathLike, every: int = 1, start: float | None = None,
                end: float | None = None, info: MediaInfo | None = None,
                ) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (frame index, timestamp s, RGB uint8 HxWx3 read-only) for every `every`th frame.

    `start`/`end` (seconds) trim the clip; indices and timestamps stay those of the full video.
    A variable-frame-rate video comes out at a constant `info.fps` (see the module doc).
    """
    info = info or probe(path)
    input_params, output_params, filters = ["-nostdin"], [], []
    first = 0
    if start:
        input_params += ["-ss", f"{start:.6f}"]
        first = int(round(start * info.fps))
    if end is not None:
        input_params += ["-to", f"{end:.6f}"]
    if info.vfr:
        filters.append(f"fps={info.fps:.6f}")
    if every > 1:
        filters.append(f"select=not(mod(n\\,{every}))")
    if filters:
        output_params += ["-vf", ",".join(filters), "-fps_mode", "passthrough"]
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", input_params=input_params,
                                     output_params=output_params, bits_per_pixel=24)
    try:
        meta = next(gen)
        w, h = meta["size"]
        for k, raw in enumerate(gen):
            index = first + k * every
            yield index, index / info.fps, np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{Path(path).name}: the video could not be decoded ({exc})") from exc
    finally:
        gen.close()


def prefetch(items: Iterator, depth: int = 8) -> Iterator:
    """Iterate `items` in a background thread, `depth` ahead.

    A frame is far bigger than a pipe's buffer, so without this ffmpeg sits idle while the
    caller works on a frame; with it, decoding overlaps the caller's work.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def pump() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()

    thread = threading.Thread(target=pump, daemon=True, name="prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8 (EXIF orientation applied); UserError if unreadable."""
    path = Path(path)
    _check_file(path)
    data = np.fromfile(str(path), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{path.name}: cannot read this image (damaged or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: str | os.PathLike, rgb: np.ndarray, png_level: int = 1) -> None:
    """Write RGB uint8 as PNG/JPEG by extension (fast PNG compression by default)."""
    path = Path(path)
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_level] if path.suffix.lower() == ".png" else \
        [cv2.IMWRITE_JPEG_QUALITY, 95]
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise UserError(f"cannot encode image {path.name}")
    try:
        with open(path, "wb") as fh:
            fh.write(buf.data)
    except OSError:
        path.unlink(missing_ok=True)  # a partial image is worse than none
        raise


class VideoWriter:
    """Encode RGB frames to H.264 mp4 (yuv420p, browser-playable) through an ffmpeg pipe.

    Writes to a hidden temp file beside `path` and renames on `close()`; `abort()` (or an
    exception inside a `with` block) removes it, so a failed render leaves no half file.
    Audio is taken from `audio_from` (copied if AAC, else re-encoded), trimmed by
    `audio_start`/`audio_end` seconds, and padded with silence where it ends before the
    picture.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float,
                 audio_from: str | os.PathLike | None = None, metadata: dict | None = None,
                 crf: int = 18, preset: str = "veryfast", audio_start: float | None = None,
                 audio_end: float | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".mp4",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.size = (width, height)
        self.frames = 0
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", f"{fps:.6f}", "-i", "-"]
        audio = None
        if audio_from is not None:
            ainfo = probe(audio_from)
            if ainfo.has_audio:
                audio = ainfo
                if audio_start:
                    cmd += ["-ss", f"{audio_start:.6f}"]
                if audio_end is not None:
                    cmd += ["-to", f"{audio_end:.6f}"]
                cmd += ["-i", str(audio_from)]
        cmd += ["-map", "0:v:0"]
        if audio is not None:
            span = (audio.duration if audio_end is None else audio_end) - (audio_start or 0)
            if audio_seconds(audio_from) + 0.02 < (audio_start or 0) + span:
                # A track shorter than the picture (an edited phone clip's: 3.9 s of sound
                # in a 6.4 s .mov) ended the output under -shortest, and ffmpeg stopped
                # reading frames: padded with silence to the picture's length instead.
                cmd += ["-map", "1:a:0", "-af", f"apad=whole_dur={span:.6f}", "-c:a", "aac"]
            else:
                copy = audio.audio_codec == "aac" and not audio_start and audio_end is None
                cmd += ["-map", "1:a:0", "-c:a", "copy" if copy else "aac", "-shortest"]
        cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart"]
        for key, value in (metadata or {}).items():
            cmd += ["-metadata", f"{key}={value}"]
        cmd += ["-f", "mp4", str(self.tmp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape[:2] != (self.size[1], self.size[0]) or rgb.dtype != np.uint8:
            raise ValueError(f"frame {rgb.shape} {rgb.dtype} does not match {self.size}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(rgb).data)
        except BrokenPipeError as exc:
            err = self._proc.stderr.read().decode(errors="replace").strip()
            self.abort()
            raise _encode_error(err) from exc
        self.frames += 1

    def close(self) -> Path:
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace").strip()
        if self._proc.wait() != 0:
            self.abort()
            raise _encode_error(err)
        os.replace(self.tmp, self.path)
        return self.path

    @staticmethod
    def remove_leftovers(path: str | os.PathLike) -> None:
        """Delete the temp files of earlier writers of `path` whose process was killed (they
        never got to clean up); only for an output that no other writer is making now."""
        path = Path(path)
        remove_temp_files(path.parent, glob.escape(path.stem), ".mp4")

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _encode_error(stderr: str) -> Exception:
    if re.search(r"No space left on device|Disk quota exceeded", stderr):
        return DiskFullError("disk full: the video could not be written; free some space "
                             "and try again")
    return RuntimeError(f"ffmpeg failed: {stderr[-500:]}")
