"""The embedded default backend: MediaPipe FaceMesh (468 points), with BlazeFace full-range
as a second look for faces too small for FaceMesh's own short-range detector.

In video mode FaceMesh tracks faces from the previous frame's landmarks, which is both faster
and steadier than detecting every frame. It tracks one face until a periodic full-range
BlazeFace look sees more than one: FaceMesh runs its detector on every frame while it tracks
fewer faces than it may, which costs about 40% more per frame.
"""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging is noisy on stderr

import cv2
import mediapipe as mp
import numpy as np

from localswap.faces.detection import Detection, bbox_of
from localswap.faces.landmarks import from_mediapipe

_RECROP = 256  # side the small-face region is scaled to before FaceMesh looks at it
_LOOK_EVERY = 6  # frames between full-range looks for more faces while tracking one


class MediaPipeBackend:
    name = "mediapipe"

    def __init__(self, video: bool = False, min_confidence: float = 0.5, max_faces: int = 4):
        self.video = video
        self.min_confidence = min_confidence
        self.max_faces = max_faces
        self._mesh = None
        self._small = None
        self._finder = None
        self.reset()

    def reset(self) -> None:
        """Start over (a new video or photo): track a single face again."""
        self._frames = 0
        self._make_mesh(1 if self.video else self.max_faces)

    def _make_mesh(self, faces: int) -> None:
        if self._mesh is not None:
            self._mesh.close()
        self._mesh_faces = faces
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not self.video, max_num_faces=faces,
            refine_landmarks=False, min_detection_confidence=self.min_confidence,
            min_tracking_confidence=0.5)

    def _mesh_points(self, mesh, rgb: np.ndarray) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        result = mesh.process(np.ascontiguousarray(rgb))
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
            self._finder = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_confidence)
        return self._finder.process(np.ascontiguousarray(rgb)).detections or []

    def _detect_small(self, rgb: np.ndarray) -> list[Detection]:
        """Full-range BlazeFace finds the face, FaceMesh then looks at an enlarged crop."""
        if self._small is None:
            self._small = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                min_detection_confidence=self.min_confidence)
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
                m.close()
        self._mesh = self._small = self._finder = None
