"""One frame of a video rendered with given settings: try before you render.

The frame goes through the render's own functions (`pick_faces`, `align_faces`, `run_model`,
`compose` in frames.py), so what the preview shows is what the render writes for that
frame; only the temporal smoothing, which needs the frames around it, has no effect here.

Three caches make a settings change cheap: the decoded frame per (video, index), the
detected landmarks per (frame, detector), and the model's output per (frame, model,
faces choice). Changing the colour transfer, blend, mask, erode or blur re-runs only the
compose step (mask, colour, blend) on the cached faces.

Hands in front of the face are found as the render finds them: the hand landmarker tracks
them through the WARM frames before the one shown (one frame alone, it loses fingers that
cover the face; convert.occlusion). `show_mask` draws the blend mask over the frame instead.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from localswap import media
from localswap.convert.blend import Look
from localswap.convert.frames import (Frame, align_faces, compose, mask_view, pick_faces,
                                      run_model)
from localswap.convert.glasses import find_glasses, keeper_for
from localswap.convert.occluders import check_for
from localswap.convert.occlusion import HandTracker
from localswap.errors import UserError
from localswap.settings import ConvertSettings, checked


WARM = 8     # frames the hand landmarker tracks before the one shown


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def _content(path: Path) -> tuple[int, str]:
    """A video's key by content, not by path: a client that uploads the same video again for
    each call (gradio_client does) still hits the cache. Size + the first and last 256 KB."""
    import hashlib
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 18))
        if size > 1 << 19:
            fh.seek(size - (1 << 18))
            h.update(fh.read())
    return size, h.hexdigest()


def _weights_stamp(model_dir: Path) -> tuple:
    """Changes when a checkpoint rewrites the weights, so the preview follows training."""
    return tuple(_stamp(p) for p in sorted(model_dir.glob("*")) if p.is_file()
                 and p.suffix in (".safetensors", ".dfm", ".json"))


class FramePreview:
    """previewer(video, model_dir, index, settings) -> (original frame, swapped frame)."""

    def __init__(self, frames: int = 8, device: str = "cpu"):
        # The server process never touches the GPU (the job worker owns it): models for the
        # preview run on the CPU unless a caller says otherwise.
        self.device = device
        self.lock = threading.Lock()
        self.frames = _Lru(frames)
        self.landmarks = _Lru(frames * 2)
        self.faces = _Lru(frames * 2)
        self.swappers = _Lru(2)
        self.infos = _Lru(8)
        self.casts = _Lru(2)
        self.hands = _Lru(frames * 2)

    def info(self, video: Path) -> media.MediaInfo:
        return self.infos.get_or(_content(video), lambda: media.probe(video))

    def frame(self, video: Path, index: int) -> np.ndarray:
        info = self.info(video)
        last = max(0, info.frames - 1)
        if not 0 <= index <= last:
            raise UserError(f"frame {index} is outside the video (0 to {last})")

        def decode():
            frames = media.read_frames(video, start=index / info.fps if index else None,
                                       info=info)
            try:
                got = next(frames, None)
            finally:
                frames.close()
            if got is None:
                raise UserError(f"{video.name}: frame {index} could not be decoded")
            return got[2]
        return self.frames.get_or((_content(video), index), decode)

    def swapper(self, model_dir: Path, precision: str):
        from localswap.convert.swapper import open_swapper
        return self.swappers.get_or((_weights_stamp(model_dir), precision),
                                    lambda: open_swapper(model_dir, self.device, precision))

    def cast(self, video: Path, model, s: ConvertSettings):
        """The render's cast (who gets which model) for `person` or a {person: model} map,
        or None when every face (or the largest) is swapped with one model."""
        if not isinstance(model, dict) and not s.person:
            return None
        from localswap.convert.cast import make_cast
        dirs = sorted(model.items()) if isinstance(model, dict) else [(s.person, model)]
        key = (_content(video), tuple((int(n), _weights_stamp(Path(m))) for n, m in dirs),
               s.detector, s.min_confidence, s.precision)
        cpu = replace(s, device="cpu", person_photo="")
        return self.casts.get_or(key, lambda: make_cast(video, model, cpu))

    def find_hands(self, video: Path, index: int, image: np.ndarray, faces: list,
                   s: ConvertSettings) -> list[np.ndarray]:
        """The hands in front of `faces` in frame `index`, tracked from WARM frames before."""
        tracker = HandTracker(still=media.is_image(video))
        try:
            if media.is_video(video) and index > 0:
                from localswap.faces.detect import make_backend
                info = self.info(video)
                first = max(0, index - WARM)
                backend = make_backend(s.detector, video=True, min_confidence=s.min_confidence,
                                       device="cpu")
                frames = media.read_frames(video, start=first / info.fps, info=info)
                try:
                    for _, (_, _, img) in zip(range(index - first), frames):
                        lms = pick_faces([d.landmarks for d in backend.detect(img)], s.faces)
                        if lms:
                            tracker(img, lms)
                finally:
                    frames.close()
                    backend.close()
            return tracker(image, [f.landmarks for f in faces], look=True)
        finally:
            tracker.close()

    def __call__(self, video: str | Path, model_dir: str | Path | dict, index: int,
                 settings: ConvertSettings | None = None, show_mask: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
        """`model_dir` may be a {person number: model dir} map, as convert() takes."""
        s = (settings or ConvertSettings()).validate()
        video = Path(video)
        if not isinstance(model_dir, dict):
            model_dir = Path(model_dir)
        if not video.is_file():
            raise UserError(f"{video.name}: file not found")
        index = int(index)
        with self.lock:
            image = (media.read_image(video) if media.is_image(video)
                     else self.frame(video, index))
            key = (_content(video), index)

            def detect():
                from localswap.faces.detect import make_backend
                backend = make_backend(s.detector, video=False, min_confidence=s.min_confidence,
                                       device="cpu")
                try:
                    return [d.landmarks for d in backend.detect(image)]
                finally:
                    backend.close()
            found = self.landmarks.get_or((key, s.detector, s.min_confidence), detect)
            cast = self.cast(video, model_dir, s)
            if cast is not None:
                cast, swapper = cast
                weights = id(cast)
            else:
                swapper = self.swapper(model_dir, s.precision)
                weights = _weights_stamp(model_dir)

            def swap():
                if cast is not None:           # as the render: only the chosen people
                    from localswap.convert.smooth import TrackedFace
                    lms, models = cast(image, index, [TrackedFace(None, lm)
                                                      for lm in pick_faces(found, "all")])
                    faces = align_faces(image, lms, models)
                else:
                    faces = align_faces(image, pick_faces(found, s.faces), swapper)
                if faces:
                    run_model(swapper, faces, s.batch, check_for(s.occlusion, swapper))
                return faces
            faces = self.faces.get_or((key, s.detector, s.min_confidence, s.faces, s.person,
                                       weights, s.precision, s.occlusion == "auto"), swap)
            hands = []
            if s.occlusion != "off" and faces:
                hands = self.hands.get_or(
                    (key, s.detector, s.min_confidence, s.faces, s.person, s.occlusion),
                    lambda: self.find_hands(video, index, image, faces, s))
            look = Look.of(s)
            placed: list = []
            # one frame's reading decides (a render's is over the last frames: close enough)
            kept = find_glasses(keeper_for(s.glasses), image, faces)
            out = compose(Frame(index, image, faces, hands, kept), look, s.label, swapper,
                          placed)
            if show_mask:
                out = mask_view(image, placed, hands, faces)
        return image, out


def settings_from(values: dict | None, base: dict | None = None) -> ConvertSettings:
    """ConvertSettings from a job's convert dict overlaid with `values` (None = default)."""
    merged = {**(base or {}), **{k: v for k, v in (values or {}).items() if v is not None}}
    return replace(ConvertSettings(), **checked(ConvertSettings, merged, "conversion"))
