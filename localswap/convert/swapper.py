"""Load a model dir for inference and run batches of aligned faces through it.

A model dir holds `model.safetensors` + `manifest.json` (see localswap.train.manifest).
Only safetensors and JSON are read: nothing is unpickled. The swap is decoder B applied to
the encoding of an A face (A = the target video's person, B = the source person).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from localswap.convert.detail import DetailBank
from localswap.errors import UserError
from localswap.faces.landmarks import expression_map, region_masks
from localswap.faces.retarget import retarget
from localswap.gpu import cpu_has_native_bf16
from localswap.train.hide import hide_features
from localswap.train.checkpoint import weights_folder
from localswap.train.manifest import (DFM_FILE, MODEL_FILE, Manifest, is_dfm_dir,
                                      read_manifest)


def pick_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def half_dtype(device: torch.device, capability=None) -> torch.dtype | None:
    """The 16-bit type to run a model in on `device`, None for fp32. bf16 where the hardware
    has it (Ampere, 8.x, on; CPUs with AMX/AVX512-BF16): it keeps fp32's range, so a model
    trained in bf16 cannot overflow as it may in fp16. fp16 on Volta/Turing (7.x)."""
    if device.type == "cuda":
        major = (capability or torch.cuda.get_device_capability(device))[0]
        return torch.bfloat16 if major >= 8 else torch.float16 if major >= 7 else None
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def run_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The type a model runs in for a `precision` word (choices.PRECISIONS, the words training
    takes too): auto = half_dtype(device), fp32 = None (no autocast), bf16 / fp16 = that type."""
    if precision == "auto":
        return half_dtype(device)
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def build_from_state(manifest: dict, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model the manifest names, with `state` loaded; UserError if they do not fit."""
    from localswap.train import models
    arch, res = manifest["arch"], manifest["resolution"]
    first = state.get("encoder.0.conv.weight")
    if first is None or first.ndim != 4:
        raise UserError(f"the weights are not a localswap {arch} model")
    width = int(manifest.get("width") or first.shape[0])   # first conv has `width` outputs
    try:
        if arch == "original" and "decoder_a.mask.weight" in state:
            model = models.Original(width, learn_mask=True).to(memory_format=torch.channels_last)
        else:
            model = models.build_model(arch, res, width, guided=bool(manifest.get("guided")),
                                       hides=bool(manifest.get("guide_hides")))
        model.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"the weights do not match a {arch} {res} px model "
                        f"({str(exc).splitlines()[0][:200]})") from exc
    return model


def load_model(model_dir: str | Path, device: torch.device | str = "cpu"):
    """(model in eval mode on `device`, manifest)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    folder = weights_folder(Path(model_dir))
    manifest = read_manifest(folder)
    try:
        state = load_file(str(folder / MODEL_FILE), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{folder / MODEL_FILE}: damaged weights ({exc})") from exc
    model = build_from_state(manifest, state)
    return model.to(device).eval(), manifest


def open_swapper(model_dir: str | Path, device: str = "auto", precision: str = "auto"):
    """The Swapper for a library model: torch for localswap's own, onnxruntime for `.dfm`."""
    if is_dfm_dir(model_dir):
        return DfmSwapper(model_dir, device)
    return Swapper(model_dir, device, precision)


class Swapper:
    """crops (N, R, R, 3) uint8 RGB aligned A faces -> (N, R, R, 3) uint8 B faces and
    (N, R, R) float32 learned masks (None when the model learns none)."""

    def __init__(self, model_dir: str | Path, device: str = "auto", precision: str = "auto"):
        self.device = pick_device(device)
        self.model, self.manifest = load_model(model_dir, self.device)
        m = Manifest.of(self.manifest)
        self.resolution, self.face_type, self.arch = m.resolution, m.face_type, m.arch
        self.name = str(self.manifest.get("name") or Path(model_dir).resolve().name)
        # Half precision where the hardware has it: about twice the speed for a mean change
        # of about half a level of 255 in the output (measured on 64 and 128 px models).
        self.dtype = run_dtype(self.device, precision)
        # the source's sharp crops, for fine detail the model is too small to draw
        self.detail = DetailBank.open(Path(model_dir), self.manifest)

    draws_target = True      # its target decoder redraws the target (convert.occluders)

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray, landmarks: list[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """`landmarks`: each crop's 68 points in crop pixels, which a guided model needs."""
        return self._run(crops, landmarks, ("b",))[0]

    @torch.inference_mode()
    def swap_and_draw(self, crops: np.ndarray, landmarks: list[np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The swap as __call__, and the target decoder's drawing of each face (N, R, R, 3)
        uint8 from the same encoding: the target person as the model knows them, without
        what stands in front of them (convert.occluders)."""
        (rgb, mask), (own, _) = self._run(crops, landmarks, ("b", "a"))
        return rgb, mask, own

    def _run(self, crops: np.ndarray, landmarks: list[np.ndarray] | None,
             sides: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)
        guides = dict.fromkeys(sides)
        if self.model.guided:
            if landmarks is None:
                raise UserError(f"model {self.name!r} is expression-guided: it needs each "
                                "face's landmarks")
            filled = self.manifest.get("guide_map") == "filled"
            stats = self.manifest.get("expression")
            for side in sides:
                drawn = landmarks
                # the swap draws the target's expression in the source's geometry and range
                # (faces.retarget); the target's own decoder draws it as it is
                if stats and side == "b":
                    drawn = [retarget(lm, self.resolution, stats["a"], stats["b"])
                             for lm in landmarks]
                maps = np.stack([expression_map(lm, self.resolution, filled) for lm in drawn])
                guides[side] = torch.from_numpy(maps)[:, None].to(self.device).float().div_(255)
            if self.model.hides:
                x = hide_features(x, self._regions(landmarks)).contiguous(
                    memory_format=torch.channels_last)
        out = []
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            z = self.model.encode(x)
            for side in sides:
                rgb, mask = self.model.decode(z, side, guides[side])
                rgb = (rgb.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
                out.append((rgb.cpu().numpy(),
                            None if mask is None else mask.float()[:, 0].cpu().numpy()))
        return out

    def _regions(self, landmarks: list[np.ndarray]) -> torch.Tensor:
        """The eyes-with-brows and mouth masks of each crop, as the training data has them."""
        masks = [region_masks(lm, self.resolution) for lm in landmarks]
        m = np.stack([np.stack([r["eyes"], r["mouth"]]) for r in masks])
        return torch.from_numpy(m).to(self.device).float().div_(255)


class DfmSwapper(Swapper):
    """The Swapper interface for a library `.dfm` (localswap.convert.dfm), run through
    onnxruntime: RGB uint8 crops in, RGB uint8 swapped faces and the combined mask out."""

    def __init__(self, model_dir: str | Path, device: str = "auto"):   # no torch model
        from localswap.convert.dfm import FACE_TYPE, MORPH_DEFAULT, open_session
        self.manifest = read_manifest(model_dir)
        self.session = open_session(Path(model_dir) / DFM_FILE, device)
        cuda = self.session.get_providers()[0].startswith("CUDA")
        self.device = torch.device("cuda" if cuda else "cpu")
        self.model, self.dtype = None, None
        self.resolution = int(self.manifest["resolution"])
        self.face_type = self.manifest.get("face_type", FACE_TYPE)
        self.name = Path(model_dir).resolve().name
        self.arch = "dfm"
        self.morph = bool(self.manifest.get("morph_input"))
        self.morph_value = float(self.manifest.get("morph_value", MORPH_DEFAULT))
        self.detail = None      # an imported model has no source photos
        self.draws_target = False   # a .dfm carries only the swap's decoder

    def __call__(self, crops: np.ndarray, landmarks: list[np.ndarray] | None = None):
        from localswap.convert.dfm import run
        bgr = np.ascontiguousarray(crops[..., ::-1], np.float32) / 255.0
        face, mask, celeb = run(self.session, bgr, self.morph, self.morph_value)
        rgb = (np.clip(face[..., ::-1], 0, 1) * 255 + 0.5).astype(np.uint8)
        combined = np.clip(mask.reshape(mask.shape[:3]) * celeb.reshape(celeb.shape[:3]),
                           0, 1).astype(np.float32)
        return rgb, combined
