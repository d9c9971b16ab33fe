"""The before/after clip: the original and the swapped video side by side, with the
original's audio, written with moviepy (a clip layout is what it is for)."""
from __future__ import annotations

from pathlib import Path

from localswap.errors import UserError


def comparison_clip(original: str | Path, swapped: str | Path, out: str | Path,
                    height: int = 480) -> Path:
    """Write `out` (.mp4): original | swapped, both scaled to `height` px (at most their own
    height), as long as the shorter of the two, with the original's audio."""
    from moviepy import VideoFileClip, clips_array
    original, swapped, out = Path(original), Path(swapped), Path(out)
    for p in (original, swapped):
        if not p.is_file():
            raise UserError(f"{p.name}: file not found")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.mp4")
    before, after = VideoFileClip(str(original)), VideoFileClip(str(swapped), audio=False)
    try:
        h = min(height, before.h, after.h)
        h -= h % 2
        duration = min(before.duration, after.duration)
        left = before.resized(height=h).subclipped(0, duration)
        right = after.resized(height=h).subclipped(0, duration)
        both = clips_array([[left, right]])
        if both.w % 2:
            both = both.cropped(x2=both.w - 1)
        both = both.with_audio(left.audio) if before.audio is not None else both
        both.write_videofile(str(tmp), fps=before.fps, codec="libx264", audio_codec="aac",
                             preset="veryfast", threads=1, logger=None,
                             ffmpeg_params=["-pix_fmt", "yuv420p", "-metadata",
                                            "comment=Synthetic media: right half made with "
                                            "localswap"])
        tmp.replace(out)
    finally:
        before.close()
        after.close()
        tmp.unlink(missing_ok=True)
    return out


def timelapse_clip(images: list[str | Path], out: str | Path, fps: float = 4.0) -> Path:
    """Write `out` (.mp4): the training previews in order, `fps` of them per second (the
    first one's size; a preview of another size is fitted to it)."""
    import numpy as np
    from moviepy import ImageSequenceClip

    from localswap import media
    if len(images) < 2:
        raise UserError("A timelapse needs at least two previews: train a little longer.")
    frames = [media.read_image(p) for p in images]
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    import cv2
    frames = [np.ascontiguousarray(cv2.resize(f, (w, h)) if f.shape[:2] != (h, w) else f)
              for f in frames]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.mp4")
    try:
        ImageSequenceClip(frames, fps=fps).write_videofile(
            str(tmp), codec="libx264", audio=False, preset="veryfast", threads=1, logger=None,
            ffmpeg_params=["-pix_fmt", "yuv420p"])
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
