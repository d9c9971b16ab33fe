"""The optional high-accuracy backend: facexlib's RetinaFace + AWing FAN (98 points), plus its
BiSeNet face parser for masks.

Weights are never fetched at run time: they must be in weights/ (`python -m localswap
download-weights` puts them there where internet exists). Files load with
`torch.load(weights_only=True)`, never as pickles.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from localswap.errors import UserError
from localswap.faces.detection import Detection, bbox_of
from localswap.faces.landmarks import from_wflw98

# Weight file names facexlib publishes, per part (the detector: best first).
DETECTOR_FILES = {"resnet50": "detection_Resnet50_Final.pth",
                  "mobile0.25": "detection_mobilenet0.25_Final.pth"}
ALIGNMENT_FILE = "alignment_WFLW_4HG.pth"
PARSING_FILE = "parsing_bisenet.pth"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _load_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or unsafe files
        raise UserError(f"{path.name}: not a loadable weights file ({exc.__class__.__name__})") \
            from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path.name}: expected a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _into(model: torch.nn.Module, path: Path, device: str) -> torch.nn.Module:
    try:
        model.load_state_dict(_load_state(path), strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path.name}: weights do not match the model ({str(exc)[:200]})") from exc
    return model.eval().to(device)


def load_detector(weights: Path, device: str = "cpu"):
    from facexlib.detection.retinaface import RetinaFace
    for net, fname in DETECTOR_FILES.items():
        if (weights / fname).is_file():
            return _into(RetinaFace(network_name=net, half=False, device=device),
                         weights / fname, device)
    raise UserError(f"facexlib detector weights not found in {weights} (need "
                    f"{' or '.join(DETECTOR_FILES.values())}); run `python -m localswap "
                    "download-weights` or use --detector mediapipe")


def load_aligner(weights: Path, device: str = "cpu"):
    from facexlib.alignment.awing_arch import FAN
    path = weights / ALIGNMENT_FILE
    if not path.is_file():
        raise UserError(f"facexlib landmark weights {ALIGNMENT_FILE} not found in {weights}")
    return _into(FAN(num_modules=4, num_landmarks=98, device=device), path, device)


def load_parser(weights: Path, device: str = "cpu"):
    from facexlib.parsing.bisenet import BiSeNet
    path = weights / PARSING_FILE
    if not path.is_file():
        raise UserError(f"facexlib parsing weights {PARSING_FILE} not found in {weights}")
    return _into(BiSeNet(num_class=19), path, device)


def available(weights: Path) -> bool:
    return any((weights / f).is_file() for f in DETECTOR_FILES.values()) and \
        (weights / ALIGNMENT_FILE).is_file()


class FacexlibBackend:
    name = "facexlib"

    def __init__(self, weights: Path, min_confidence: float = 0.5, device: str = "auto"):
        self.device = resolve_device(device)
        self.min_confidence = min_confidence
        self.detector = load_detector(Path(weights), self.device)
        self.aligner = load_aligner(Path(weights), self.device)

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        found = self.detector.detect_faces(bgr, conf_threshold=self.min_confidence)
        h, w = rgb.shape[:2]
        out = []
        for row in found[:16]:
            x0, y0, x1, y1, score = (float(v) for v in row[:5])
            if not np.isfinite([x0, y0, x1, y1]).all() or x1 <= x0 or y1 <= y0:
                continue
            # AWing expects a loose square crop around the face box.
            cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.2
            ax0, ay0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
            ax1, ay1 = int(min(cx + side / 2, w)), int(min(cy + side / 2, h))
            if ax1 - ax0 < 8 or ay1 - ay0 < 8:
                continue
            pts98 = self._landmarks98(rgb[ay0:ay1, ax0:ax1])
            pts = from_wflw98(pts98) + np.array([ax0, ay0], np.float32)
            out.append(Detection(bbox_of(pts), pts, score))
        return out

    def _landmarks98(self, crop: np.ndarray) -> np.ndarray:
        """98 points in crop pixels from AWing's 64x64 heatmaps.

        facexlib's own `get_landmarks` uses `np.float`, gone since numpy 1.24, so the heatmaps
        are decoded here: the peak, nudged a quarter pixel towards the higher neighbour.
        """
        h, w = crop.shape[:2]
        inp = torch.from_numpy(cv2.resize(crop, (256, 256)).transpose(2, 0, 1).copy())
        inp = inp.float().div_(255).unsqueeze_(0).to(self.device)
        heat = self.aligner(inp)[0][-1][0, :-1].float()          # 98 x 64 x 64
        n, hh, ww = heat.shape
        flat = heat.reshape(n, -1)
        idx = flat.argmax(1)
        y, x = idx // ww, idx % ww
        def at(yy, xx):
            return heat[torch.arange(n), yy.clamp(0, hh - 1), xx.clamp(0, ww - 1)]
        dx = torch.sign(at(y, x + 1) - at(y, x - 1)) * 0.25
        dy = torch.sign(at(y + 1, x) - at(y - 1, x)) * 0.25
        pts = torch.stack([x + dx + 0.5, y + dy + 0.5], 1).cpu().numpy()
        return (pts * np.array([w / ww, h / hh])).astype(np.float32)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.detector = self.aligner = None


def download_weights(target: Path) -> list[Path]:
    """Fetch the weight files with facexlib's own downloader (needs internet)."""
    from facexlib.alignment import init_alignment_model
    from facexlib.detection import init_detection_model
    from facexlib.parsing import init_parsing_model
    target.mkdir(parents=True, exist_ok=True)
    try:
        init_detection_model("retinaface_resnet50", device="cpu", model_rootpath=str(target))
        init_alignment_model("awing_fan", device="cpu", model_rootpath=str(target))
        init_parsing_model("bisenet", device="cpu", model_rootpath=str(target))
    except OSError as exc:
        raise UserError(f"download failed ({exc}); without internet, copy the files "
                        f"{DETECTOR_FILES['resnet50']}, {ALIGNMENT_FILE} and {PARSING_FILE} into "
                        f"{target}") from exc
    return sorted(p for p in target.iterdir() if p.suffix == ".pth")
