"""Which frames the judge looks at, and which face in a frame it judges.

Target and output are paired by frame index (a render keeps the target's frames and fps).
The judge samples evenly spaced indices and also reads the frame after each, for the
frame-to-frame measure; everything else is decoded and dropped, so memory stays flat.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from localswap import media
from localswap.errors import UserError
from localswap.faces.detection import Detection, iou


def sample_indices(frames: int, most: int) -> list[int]:
    """Up to `most` evenly spaced indices, each with a next frame (except a single image)."""
    if frames <= 1:
        return [0]
    last = frames - 2                   # index + 1 must exist
    count = max(1, min(most, last + 1))
    return sorted({int(round(x)) for x in np.linspace(0, last, count)})


def open_media(path: Path) -> tuple[media.MediaInfo | None, int]:
    """(MediaInfo or None for an image, frame count); UserError if it cannot be read."""
    path = Path(path)
    if media.is_image(path):
        media.read_image(path)          # fails here, with the file's name, if unreadable
        return None, 1
    if not media.is_video(path):
        raise UserError(f"{path.name}: not a supported video (mp4, mov, mkv, webm, avi) or "
                        "image (jpg, png, bmp, webp, tif)")
    info = media.probe(path)
    return info, max(1, info.frames)


def read(path: Path, info: media.MediaInfo | None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) for every frame of a video, or index 0 of an image."""
    if info is None:
        yield 0, media.read_image(path)
        return
    for index, _, rgb in media.read_frames(path, info=info):
        yield index, rgb


def main_face(dets: list[Detection]) -> Detection | None:
    """The largest face: the person a swap replaces."""
    if not dets:
        return None
    return max(dets, key=lambda d: (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]))


def face_at(dets: list[Detection], bbox: np.ndarray, least: float = 0.2) -> Detection | None:
    """The face overlapping `bbox` (the target's face) most, if it overlaps at all: a face
    elsewhere in the output is not the swapped one."""
    best = max(dets, key=lambda d: iou(d.bbox, bbox), default=None)
    if best is None or iou(best.bbox, bbox) < least:
        return None
    return best


def source_frames(sources: list[Path], most: int) -> Iterator[np.ndarray]:
    """Up to `most` frames spread over the sources: every photo (evenly thinned if there are
    more than `most`), the rest of the budget split evenly over the videos."""
    from localswap.faces.extract import collect_inputs
    items = collect_inputs(sources)
    photos = [p for p, info in items if info is None]
    videos = [(p, info) for p, info in items if info is not None]
    if len(photos) > most:
        photos = [photos[int(i)] for i in np.linspace(0, len(photos) - 1, most)]
    for p in photos:
        yield media.read_image(p)
    left = max(0, most - len(photos))
    for k, (p, info) in enumerate(videos):
        share = left // (len(videos) - k)
        left -= share
        if share <= 0:
            continue
        every = max(1, info.frames // share)
        for n, (_, _, rgb) in enumerate(media.read_frames(p, every=every, info=info)):
            if n >= share:
                break
            yield rgb
