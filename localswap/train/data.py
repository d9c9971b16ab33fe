"""Training data: a faceset loaded once into a uint8 tensor (N, 7, R, R) = RGB + face/eyes/mouth
masks + the expression map (faces.landmarks.expression_map) at the model's resolution, kept
on the training device when it fits. When it does not
(the planner says so, or the copy runs out of memory), the faces stay in ordinary host memory
and each batch is gathered into a small pinned buffer and copied over asynchronously: pinning
the whole faceset (gigabytes per rank) would gain nothing, since indexing it returns pageable
memory anyway.

The decoded, resized stack is cached in FACESET/.cache/train_R.npy (memory-mapped on load) and
keyed by a hash of faceset.json, so the next run skips PNG decoding; a stale or damaged cache is
rebuilt. Sampling is yaw-balanced when the faceset is skewed towards one pose.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch

from localswap.errors import UserError
from localswap.faces.faceset import Faceset, yaw_bin
from localswap.faces.landmarks import expression_map, region_masks
from localswap.faces.retarget import expression_stats
from localswap.train import blink
from localswap.workspace import AtomicFile, atomic_write_json

CACHE_VERSION = 2
CHANNELS = 7            # R, G, B, face hull, eyes + brows, mouth, expression map
SKEW = 0.6              # yaw balancing starts when one pose bin holds more than this share


def yaw_weights(yaws: list[float]) -> tuple[np.ndarray, dict[str, int], bool]:
    """Per-face sampling probabilities, the pose-bin counts, and whether balancing is on.

    When skewed, each bin's share becomes proportional to sqrt(its count): rare poses are seen
    more often without a handful of profile shots dominating every batch."""
    bins = [yaw_bin(y) for y in yaws]
    counts = Counter(bins)
    n = len(bins)
    skewed = len(counts) > 1 and max(counts.values()) / n > SKEW
    if not skewed:
        return np.full(n, 1.0 / n), dict(counts), False
    root = {b: np.sqrt(c) for b, c in counts.items()}
    total = sum(root.values())
    w = np.array([root[b] / total / counts[b] for b in bins])
    return w / w.sum(), dict(counts), True


def _cache_key(faceset: Faceset, resolution: int, filled: bool) -> str:
    index = (faceset.path / "faceset.json").read_bytes()
    return hashlib.sha256(index + f"|{resolution}|{CACHE_VERSION}|{filled}".encode()).hexdigest()


def _decode(faceset: Faceset, resolution: int, out: np.ndarray, filled: bool) -> list[str]:
    """Fill `out` (N, 7, R, R) from the PNGs; returns the names that could not be read."""
    bad = []
    for i, face in enumerate(faceset.faces):
        img = cv2.imread(str(faceset.image_path(face)), cv2.IMREAD_COLOR)
        if img is None:
            bad.append(face.image)
            out[i] = 0
            continue
        size = img.shape[0]
        interp = cv2.INTER_AREA if size > resolution else cv2.INTER_CUBIC
        rgb = cv2.resize(img, (resolution, resolution), interpolation=interp)[:, :, ::-1]
        _fill(out[i], rgb, face.landmarks_array() * (resolution / size), filled)
    return bad


def _fill(row: np.ndarray, rgb: np.ndarray, lm: np.ndarray, filled: bool) -> None:
    """One face's 7 channels: RGB, face/eyes/mouth masks, expression map."""
    resolution = rgb.shape[0]
    masks = region_masks(lm, resolution)
    row[:3] = rgb.transpose(2, 0, 1)
    row[3], row[4], row[5] = masks["face"], masks["eyes"], masks["mouth"]
    row[6] = expression_map(lm, resolution, filled)


def _with_copies(weights: np.ndarray, picks: list[int], balanced: bool,
                 bins: list[str]) -> np.ndarray:
    """Sampling weights for the faces and then their blinked copies: a copy weighs as its
    face; when the poses are balanced, each pose bin keeps the share the balance gave it."""
    out = np.concatenate([weights, weights[picks]])
    if balanced:
        all_bins = bins + [bins[i] for i in picks]
        for b in set(bins):
            rows = [k for k, x in enumerate(all_bins) if x == b]
            out[rows] *= sum(w for w, x in zip(weights, bins) if x == b) / out[rows].sum()
    return out / out.sum()


def _blinked(faces: torch.Tensor, landmarks: list[np.ndarray], filled: bool
             ) -> tuple[list[int], torch.Tensor]:
    """Synthetic blinks (train.blink) of some open-eyed faces: (their indices, their rows).
    The same copies every run (a fixed seed), so a resumed run sees the same data."""
    rng = np.random.default_rng(0)
    picks = blink.candidates(landmarks, rng)
    out = np.empty((len(picks), *faces.shape[1:]), np.uint8)
    for k, i in enumerate(picks):
        rgb = np.ascontiguousarray(faces[i, :3].numpy().transpose(1, 2, 0))
        shut, lm = blink.blink(rgb, landmarks[i], float(rng.uniform(0.6, 1.0)))
        _fill(out[k], shut, lm, filled)
    return picks, torch.from_numpy(out)


def _load_or_build(faceset: Faceset, resolution: int, filled: bool
                   ) -> tuple[np.ndarray, list[str], str]:
    cache_dir = faceset.path / ".cache"
    name = f"train_{resolution}" + ("" if filled else "_lines")
    npy, meta = cache_dir / f"{name}.npy", cache_dir / f"{name}.json"
    key = _cache_key(faceset, resolution, filled)
    shape = (len(faceset), CHANNELS, resolution, resolution)
    try:
        info = json.loads(meta.read_text())
        if info.get("key") == key:
            arr = np.load(npy, mmap_mode="r")
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr, info.get("bad", []), "cache"
    except (OSError, ValueError):
        pass  # missing, stale or damaged: rebuild below
    try:
        cache_dir.mkdir(exist_ok=True)
        out = AtomicFile(npy, suffix=".npy")
    except OSError:
        arr = np.zeros(shape, np.uint8)   # read-only faceset folder: decode into memory only
        return arr, _decode(faceset, resolution, arr, filled), "no cache (faceset folder not writable)"
    with out as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        bad = _decode(faceset, resolution, arr, filled)
        arr.flush()
        del arr
    atomic_write_json(meta, {"key": key, "bad": bad, "version": CACHE_VERSION})
    return np.load(npy, mmap_mode="r"), bad, "built cache"


class FaceData:
    """One identity's faces as a uint8 tensor plus its sampling weights. `filled`: the
    expression map's style (faces.landmarks.expression_map), fixed by the model."""

    def __init__(self, path: str | Path, resolution: int, device: torch.device,
                 on_device: bool = True, filled: bool = True):
        faceset = Faceset.load(path)
        if len(faceset) == 0:
            raise UserError(f"{path}: the faceset has no faces")
        arr, bad, how = _load_or_build(faceset, resolution, filled)
        unreadable = set(bad)
        keep = [i for i, f in enumerate(faceset.faces) if f.image not in unreadable]
        if not keep:
            raise UserError(f"{path}: none of the faceset's images could be read")
        self.path = Path(path)
        self.name = self.path.name
        self.face_type = faceset.face_type
        self.crop_size = faceset.size
        self.resolution = resolution
        host = torch.from_numpy(np.ascontiguousarray(arr[keep]))
        landmarks = [faceset.faces[i].landmarks_array() * (resolution / faceset.size)
                     for i in keep]
        self.real = len(keep)                   # faces from the faceset; synthetic blinks follow
        picks, blinks = _blinked(host, landmarks, filled)
        host = torch.cat([host, blinks])
        self.origin = list(range(self.real)) + picks     # each row's face in the faceset
        self.faces, moved = host, ""
        if on_device and device.type != "cpu":
            self.faces, moved = _to_device(host, device)
        # Batches of faces kept in host memory go to the GPU through a small pinned buffer.
        self.staged = device.type == "cuda" and self.faces.device.type == "cpu"
        self._staging: torch.Tensor | None = None
        self._copied = None                     # CUDA event: the staging buffer's last copy
        weights, self.pose_counts, self.balanced = yaw_weights([faceset.faces[i].yaw
                                                                for i in keep])
        weights = _with_copies(np.asarray(weights, np.float64), picks, self.balanced,
                               [yaw_bin(faceset.faces[i].yaw) for i in keep])
        self.weights = torch.tensor(weights, dtype=torch.float32, device=device)
        # what a guided model's conversion maps the target's expression through (faces.retarget)
        self.expression = expression_stats([lm / resolution for lm in landmarks])
        self.note = (f"{self.name}: {len(keep)} faces ({how}"
                     + (f", {len(bad)} unreadable images skipped" if bad else "")
                     + (f", yaw-balanced sampling {self.pose_counts}" if self.balanced else "")
                     + (f", {len(picks)} synthetic blinks added" if picks else "")
                     + moved + ")")

    def __len__(self) -> int:
        return self.faces.shape[0]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n faces drawn with replacement (by the sampling weights) on the weights' device."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        if self.staged:
            return self._staged(idx)
        return self.faces[idx.to(self.faces.device)].to(self.weights.device, non_blocking=True)

    def _staged(self, idx: torch.Tensor) -> torch.Tensor:
        """faces[idx] gathered on the host into the pinned buffer, copied to the device."""
        idx = idx.to("cpu")
        n = idx.shape[0]
        if self._staging is None or self._staging.shape[0] < n:
            self._staging = torch.empty((n, *self.faces.shape[1:]), dtype=torch.uint8)
            self._staging = self._staging.pin_memory()
            self._copied = None
        if self._copied is not None:
            self._copied.synchronize()          # the previous batch left the buffer
        buf = self._staging[:n]
        torch.index_select(self.faces, 0, idx, out=buf)
        out = buf.to(self.weights.device, non_blocking=True)
        if out.is_cuda:
            self._copied = torch.cuda.Event()
            self._copied.record()
        return out

    def first(self, n: int) -> torch.Tensor:
        """A fixed set of faces spread over the faceset, for previews."""
        idx = torch.linspace(0, self.real - 1, min(n, self.real)).round().long()
        return self.faces[idx.to(self.faces.device)].to(self.weights.device)


def _to_device(host: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, str]:
    """The faces on the device, or in host memory with a note when they do not fit there."""
    from localswap.errors import is_oom
    try:
        return host.to(device), ""
    except RuntimeError as exc:
        if not is_oom(exc):
            raise
    return host, "; kept in host memory: they did not fit in GPU memory"
