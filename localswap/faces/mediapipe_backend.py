"""The embedded default backend: MediaPipe FaceMesh (468 points, refined: the attention mesh
that also places the irises), with BlazeFace full-range as a second look for faces too small
for FaceMesh's own short-range detector.

Refined, because the plain mesh's lids barely move on a blink: on a talking-head clip its eye
aspect ratio stayed within 0.21-0.29 through blinks the refined mesh reads as 0.06-0.11, so
neither the expression guide nor `evaluate` could see an eye close. It costs 7-17% of the
mesh's speed (402 -> 335 frames/s tracking, 251 -> 235 still images, one 640x480 face).

In video mode FaceMesh tracks faces from the previous frame's landmarks, which is both faster
and steadier than detecting every frame. It tracks one face until a periodic full-range
BlazeFace look sees more than one: FaceMesh runs its detector on every frame while it tracks
fewer faces than it may, which costs about 40% more per frame.
"""
from __future__ import annotations

import os
import sys
import threading

os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging is noisy on stderr

import cv2
import mediapipe as mp
import numpy as np

from localswap.faces.detection import Detection, bbox_of
from localswap.faces.landmarks import from_mediapipe

_RECROP = 256  # side the small-face region is scaled to before FaceMesh looks at it
_LOOK_EVERY = 6  # frames between full-range looks for more faces while tracking one


class _Silence:
    """File descriptor 2 to /dev/null while any MediaPipe graph starts. A graph's C++ side
    (absl, TFLite) writes lines such as "INFO: Created TensorFlow Lite XNNPACK delegate" and
    "W0000 ... inference_feedback_manager.cc" straight to the descriptor, past Python and in
    its own threads, between the graph's construction and its first result; they break the
    command line's progress bar and ask nothing of a user, and neither GLOG_minloglevel nor
    absl's Python logging reaches them. Nested: the first graph to start silences, the last
    to finish starting restores."""

    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: int | None = None

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                sys.stderr.flush()
                self.saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.saved is not None:
                os.dup2(self.saved, 2)
                os.close(self.saved)
                self.saved = None


_SILENCE = _Silence()


REFINE = True       # the refined (attention) mesh; see the module's docstring


class MediaPipeBackend:
    name = "mediapipe"

    def __init__(self, video: bool = False, min_confidence: float = 0.5, max_faces: int = 4):
        self.video = video
        self.min_confidence = min_confidence
        self.max_faces = max_faces
        self._mesh = None
        self._small = None
        self._finder = None
        self._starting: dict[int, object] = {}    # graphs made but not yet run once
        self.reset()

    def reset(self) -> None:
        """Start over (a new video or photo): track a single face again."""
        self._frames = 0
        self._make_mesh(1 if self.video else self.max_faces)

    def _make_mesh(self, faces: int) -> None:
        if self._mesh is not None:
            self._close(self._mesh)
        self._mesh_faces = faces
        self._mesh = self._graph(lambda: mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not self.video, max_num_faces=faces,
            refine_landmarks=REFINE, min_detection_confidence=self.min_confidence,
            min_tracking_confidence=0.5))

    def _graph(self, make):
        """A new MediaPipe graph, with stderr silenced until its first result."""
        _SILENCE.enter()
        try:
            graph = make()
        except BaseException:
            _SILENCE.leave()
            raise
        self._starting[id(graph)] = graph
        return graph

    def _close(self, graph) -> None:
        starting = self._starting.pop(id(graph), None) is not None
        try:
            graph.close()           # a graph closed before its first run still starts up
        finally:
            if starting:
                _SILENCE.leave()

    def _mesh_points(self, mesh, rgb: np.ndarray) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        result = self._process(mesh, rgb)
        faces = []
        for lm in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h) for p in lm.landmark], np.float32)
            faces.append(from_mediapipe(pts))
        return faces

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        if self.video and self._mesh_faces == 1 and self._frames % _LOOK_EVERY == 0:
            if len(self._find(rgb)) > 1:
                self._make_mesh(self.max_faces)   # several people: track them all from now
        self._frames += 1
        faces = self._mesh_points(self._mesh, rgb)
        if faces:
            return [Detection(bbox_of(p), p, 1.0) for p in faces]
        return self._detect_small(rgb)

    def _find(self, rgb: np.ndarray) -> list:
        """Full-range BlazeFace detections (faces of any size, no landmarks)."""
        if self._finder is None:
            self._finder = self._graph(lambda: mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_confidence))
        return self._process(self._finder, rgb).detections or []

    def _process(self, graph, rgb: np.ndarray):
        """graph.process(rgb); after its first run, stderr is the graph's no longer."""
        if id(graph) not in self._starting:
            return graph.process(np.ascontiguousarray(rgb))
        try:
            return graph.process(np.ascontiguousarray(rgb))
        finally:
            del self._starting[id(graph)]
            _SILENCE.leave()

    def _detect_small(self, rgb: np.ndarray) -> list[Detection]:
        """Full-range BlazeFace finds the face, FaceMesh then looks at an enlarged crop."""
        if self._small is None:
            self._small = self._graph(lambda: mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=REFINE,
                min_detection_confidence=self.min_confidence))
        h, w = rgb.shape[:2]
        found = self._find(rgb)
        out = []
        for det in found[: self.max_faces]:
            box = det.location_data.relative_bounding_box
            cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
            side = max(box.width * w, box.height * h) * 2.2
            scale = _RECROP / side
            mat = np.array([[scale, 0, _RECROP / 2 - cx * scale],
                            [0, scale, _RECROP / 2 - cy * scale]])
            crop = cv2.warpAffine(rgb, mat, (_RECROP, _RECROP), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            for pts in self._mesh_points(self._small, crop)[:1]:
                pts = ((pts - mat[:, 2]) / scale).astype(np.float32)
                out.append(Detection(bbox_of(pts), pts, float(det.score[0])))
        return out

    def close(self) -> None:
        for m in (self._mesh, self._small, self._finder):
            if m is not None:
                self._close(m)
        self._mesh = self._small = self._finder = None
