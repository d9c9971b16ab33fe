"""Live mode: webcam frames in, swapped frames out, one at a time, through the render's own
per-frame steps (detect, align, model, compose: see frames.py), with light landmark
smoothing across frames. Keeps its own timings for the fps and latency the page shows."""
from __future__ import annotations

import threading
from dataclasses import replace
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from localswap.convert.blend import Look
from localswap.convert.frames import Frame, align_faces, compose, pick_faces, run_model
from localswap.convert.glasses import find_glasses, keeper_for
from localswap.convert.occluders import check_for
from localswap.convert.occlusion import find_hands, tracker_for
from localswap.settings import ConvertSettings
from localswap.system.threads import free_cores


class LiveSwap:
    """swap(frame RGB uint8) -> swapped frame; `stats()` -> fps and per-frame ms."""

    def __init__(self, model_dir: str | Path, settings: ConvertSettings | None = None,
                 device: str = "cpu"):
        from localswap.convert.swapper import open_swapper
        from localswap.faces.detect import make_backend
        self.s = (settings or ConvertSettings(faces="largest")).validate()
        self.swapper = open_swapper(model_dir, device, self.s.precision)
        if settings is None and self.swapper.device.type == "cpu":
            # by default no source detail on a CPU: it costs 10-20 ms of a ~30 ms frame; nor
            # the open-mouth check, which reads two faces (~8 ms) whenever the lips part
            self.s = replace(self.s, detail=0.0, mouth=0.0)
        self.backend = make_backend(self.s.detector, video=True,
                                    min_confidence=self.s.min_confidence, device="cpu")
        self.look = Look.of(self.s)
        self.hands = tracker_for(self.s.occlusion)      # a webcam's frames come in order
        self.check = check_for(self.s.occlusion, self.swapper)
        self.glasses = keeper_for(self.s.glasses)
        # On a CPU, torch threads left spinning after the model fight the frame's other work
        # (the source detail's warp: 42 ms a frame with 1 of 2 threads, 133 with 2): half the
        # free cores, as the video render takes.
        self.threads = max(1, free_cores() // 2) if self.swapper.device.type == "cpu" else 0
        self.lock = threading.Lock()
        self.done: deque = deque(maxlen=30)       # (finish time, seconds spent)
        self.index = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        with self.lock:
            before = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                image = np.ascontiguousarray(image[..., :3])
                found = pick_faces([d.landmarks for d in self.backend.detect(image)],
                                   self.s.faces)
                faces = align_faces(image, found, self.swapper)
                if faces:
                    run_model(self.swapper, faces, self.s.batch, self.check)
                out = compose(Frame(self.index, image, faces,
                                    find_hands(self.hands, image, faces),
                                    find_glasses(self.glasses, image, faces)),
                              self.look, self.s.label, self.swapper)
            finally:
                torch.set_num_threads(before)
            self.index += 1
            t1 = time.perf_counter()
            self.done.append((t1, t1 - t0))
        return out

    def stats(self) -> dict:
        done = list(self.done)
        if len(done) < 2:
            return {"fps": 0.0, "ms": round(1000 * done[-1][1]) if done else 0}
        span = done[-1][0] - done[0][0]
        return {"fps": round((len(done) - 1) / span, 1) if span else 0.0,
                "ms": round(1000 * float(np.median([d for _, d in done])))}

    def close(self) -> None:
        self.backend.close()
        if self.hands is not None:
            self.hands.close()
