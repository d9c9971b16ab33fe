"""Settings dataclasses: one source for CLI flags, UI widgets and validation.

Each field is declared with `option(...)`, which records its help text, allowed choices and
numeric range. The CLI builds argparse flags from them, the UI builds widgets from them, and
`validate()` checks a filled-in instance before any stage runs.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from localswap.choices import (ARCHS, BLENDS, COLOR_METHODS, DETECTORS as DETECTOR_REGISTRY,
                               FACE_TYPE_BOX, GLASSES, MASKS, OCCLUSION, PRECISIONS,
                               RESOLUTIONS)
from localswap.errors import UserError

# The choice lists come from localswap/choices.py, which the stages read too, so a new
# detector, colour transfer, blend, mask, face type or architecture is a choice everywhere.
# dfl_whole_face: DeepFaceLab's whole face, exactly what DeepFaceLive .dfm models take.
FACE_TYPES = tuple(FACE_TYPE_BOX)
DETECTORS = tuple(DETECTOR_REGISTRY)
DEVICES = ("auto", "cpu", "cuda")
# One meaning of each precision word for training and rendering (`swap --precision` sets both).
PRECISION_HELP = ("The number format the model computes in: auto uses a fast 16-bit one where "
                  "the device has it (bf16, or fp16 on older GPUs), else fp32. Choose fp32 "
                  "if the result shows odd colours or speckles.")
ROLES = ("source", "target")


def option(default: Any, help: str, *, choices: tuple | None = None, low: float | None = None,
           high: float | None = None, cli: bool = True, label: str = "",
           auto: str = "") -> Any:
    """A dataclass field with the metadata the CLI, UI and validation read. `label` is the
    widget's name in the app (plain words, no abbreviations); `auto` is how the app shows the
    default 0 (or unset) value that means "chosen for you", e.g. "auto" or "Basic"."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "cli": cli,
            "label": label, "auto": auto}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class SettingsBase:
    """Mixin: validation and argparse glue shared by every settings dataclass."""

    def validate(self) -> "SettingsBase":
        for f in fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if value is None:
                continue
            if meta.get("choices") and value not in meta["choices"]:
                raise UserError(f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, "
                                f"not {value!r}")
            if meta.get("low") is not None and value < meta["low"]:
                raise UserError(f"{f.name} must be at least {meta['low']}, not {value}")
            if meta.get("high") is not None and value > meta["high"]:
                raise UserError(f"{f.name} must be at most {meta['high']}, not {value}")
        return self

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
        for f in fields(cls):
            if f.name in skip or not f.metadata.get("cli", True):
                continue
            flag = "--" + f.name.replace("_", "-")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kwargs: dict[str, Any] = {"dest": f.name, "default": None,
                                      "help": f"{f.metadata['help']} (default: {default})"}
            if isinstance(default, bool):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
                continue
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                kwargs["type"] = type(default)
            elif f.type in ("int | None", "Optional[int]"):
                kwargs["type"] = int
            elif f.type in ("float | None", "Optional[float]"):
                kwargs["type"] = float
            parser.add_argument(flag, **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any):
        """Build from parsed args; flags the user did not give keep the dataclass default."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)
                  if getattr(args, f.name, None) is not None}
        values.update(overrides)
        return cls(**values).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def checked(cls, values: dict | None, section: str) -> dict:
    """Validate `values` (a request's or a job's settings dict) against the settings
    dataclass `cls`; return them as given. Job submission and the frame preview call it."""
    values = {k: v for k, v in (values or {}).items() if v is not None}  # None = default
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown {section} setting(s): {', '.join(unknown)}")
    if values.get("person_photo"):      # a path on the server: never taken from a request
        raise UserError("person_photo names a file on this machine, so only the command line "
                        "takes it; in the app pick the person from the list after upload")
    cls(**values).validate()
    return values


@dataclass
class ExtractSettings(SettingsBase):
    size: int = option(256, "side of the aligned face crop in pixels", low=32, high=1024,
                       label="Face crop size (px)")
    face_type: str = option("face", "how much of the head the crop covers: face (brows to "
                            "chin, the most pixels on eyes and mouth: measured sharper at "
                            "64-128 px), whole_face (with the forehead), head, dfl_whole_face "
                            "(DeepFaceLab's whole face, for .dfm export)", choices=FACE_TYPES,
                            label="Face crop")
    detector: str = option("mediapipe", "face detector backend", choices=DETECTORS,
                           label="Face detector")
    every: int = option(1, "use every Nth video frame", low=1, high=10_000,
                        label="Use every Nth frame")
    role: str = option("source", "whose faces these are: source (the identity to put in: "
                       "faces much softer than the clip's sharpest, blurred or smaller than "
                       "--min-face are left out) or target (every face the render will swap "
                       "is kept)", choices=ROLES, label="Faces for")
    min_face: int = option(0, "leave out source faces smaller than this many pixels across; "
                           "0 = auto: under 48 px only while the clip keeps its 48 largest "
                           "(a target keeps every face the render can swap)", low=0,
                           high=4096, label="Smallest source face (px)", auto="auto")
    soft_share: float = option(
        0.25, "leave out source faces less sharp than this share of the clip's sharpest "
        "faces (motion blur, a focus pull), and blurred ones; at least the 48 sharpest of a "
        "clip stay; 0 keeps every face", low=0.0, high=1.0,
        label="Leave out soft source faces (share of the sharpest; 0 keeps all)")
    min_confidence: float = option(0.5, "detector confidence needed to accept a face",
                                   low=0.05, high=0.99, label="Detector confidence")
    max_frames: int = option(0, "stop after this many frames per video (0 = all)", low=0,
                             label="Frames per video", auto="all")
    device: str = option("auto", "device for backends that use torch", choices=DEVICES,
                         label="Device")
    person: int = option(0, "keep only this person's faces: their number in `extract "
                         "--list-people` (0 = the main person, the longest face track)",
                         low=0, high=999, label="Person", auto="the main person")
    person_photo: str = option("", "keep only the faces of the person in this reference photo",
                               label="Reference photo of the person")


@dataclass
class ConvertSettings(SettingsBase):
    color: str = option("rct", "colour transfer to the original face: rct (Lab mean and "
                        "deviation), lct (full colour covariance), hist, none",
                        choices=COLOR_METHODS, label="Colour transfer")
    blend: str = option("feather", "feather (alpha blend with a soft mask) or poisson "
                        "(seamless cloning, slower)", choices=BLENDS,
                        label="Blending")
    mask: str = option("both", "where the new face goes: the landmark hull, the model's "
                       "learned mask, or both (their intersection)",
                       choices=MASKS, label="Mask")
    erode: int | None = option(None, "shrink the mask by this many pixels (negative grows "
                               "it); unset = 3 percent of the face width", low=-200, high=200,
                               label="Mask erosion (px)", auto="auto")
    blur: int | None = option(None, "feather the mask edge over this many pixels; unset = "
                              "6 percent of the face width", low=0, high=400,
                              label="Mask edge blur (px)", auto="auto")
    detail: float = option(1.0, "add the source's fine detail (lashes, nostrils, lip lines) "
                           "from its own sharp photos to the enlarged model face: 0 (off) "
                           "to 1.5", low=0.0, high=1.5, label="Source detail")
    mouth: float = option(0.0, "where the lips part, keep the target's own mouth inside "
                          "them (teeth, tongue; the lips stay swapped): 0 (off, the model's) "
                          "to 1",
                          low=0.0, high=1.0, label="Target's open mouth (teeth)")
    occlusion: str = option("hands", "keep what stands in front of the face in front: hands; "
                            "auto (hands, and anything else over the face that the model "
                            "never saw there, such as a cup or a microphone; works on the "
                            "person the model was trained on); or off", choices=OCCLUSION,
                            label="Keep in front of the face")
    glasses: str = option("keep", "the target's glasses: keep (their frame stays in front of "
                          "the swapped face) or source (the model draws the face, as the "
                          "source person looks)", choices=GLASSES, label="Target's glasses")
    smooth: float = option(0.5, "temporal landmark smoothing, 0 (off) to 1 (steadiest)",
                           low=0.0, high=1.0, label="Temporal smoothing")
    fill_gap: int = option(6, "fill a face missed for up to this many frames from its track",
                           low=0, high=60, label="Fill missed faces (frames)")
    faces: str = option("all", "swap every face or only the largest in each frame",
                        choices=("all", "largest"), label="Faces to swap")
    person: int = option(0, "swap only this person: their number in `extract --list-people` "
                         "(0 = by --faces)", low=0, high=999,
                         label="Person", auto="by faces to swap")
    person_photo: str = option("", "swap only the person in this reference photo",
                               label="Reference photo of the person")
    start: float | None = option(None, "start at this many seconds into the video", low=0.0,
                                 label="Start (s)", auto="the start")
    end: float | None = option(None, "stop at this many seconds into the video", low=0.0,
                               label="End (s)", auto="the end")
    batch: int = option(8, "faces per model call", low=1, high=512, label="Faces per model call")
    label: bool = option(False, "draw a small visible 'AI-generated' label on the output",
                         label="Visible 'AI-generated' label")
    crf: int = option(18, "H.264 quality: lower is better and bigger (17-23 is typical)",
                      low=0, high=51, label="Video quality (CRF, lower is better)")
    detector: str = option("mediapipe", "face detector backend", choices=DETECTORS,
                           label="Face detector")
    min_confidence: float = option(0.5, "detector confidence needed to accept a face",
                                   low=0.05, high=0.99, label="Detector confidence")
    device: str = option("auto", "device the model runs on", choices=DEVICES, label="Device")
    precision: str = option("auto", PRECISION_HELP, choices=PRECISIONS,
                            label="Rendering precision")

    def validate(self) -> "ConvertSettings":
        super().validate()
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UserError(f"end ({self.end} s) must come after start ({self.start} s)")
        return self


@dataclass
class TrainSettings(SettingsBase):
    iterations: int = option(0, "target total iterations of the model: a new model trains "
                             "to N, a model at iteration k < N continues to N; 0 = Basic: the "
                             "iterations after which this recipe's swap clears the quality bar "
                             "(docs/benchmarks.md, time to quality)", low=0,
                             high=100_000_000, label="Iterations (total)", auto="Basic")
    arch: str = option("auto", "model architecture (auto = localswap, sized by the planner); "
                       "fixed once the model exists", choices=("auto",) + ARCHS,
                       label="Model architecture")
    resolution: int = option(0, "face resolution in pixels (0 = planner); fixed once the model "
                             "exists", choices=(0,) + RESOLUTIONS,
                             label="Resolution (px)", auto="auto")
    width: int = option(0, "model width, the channels of its first layer (0 = planner); fixed "
                        "once the model exists", low=0, high=256, label="Model width", auto="auto")
    init_from: str = option("", "start a new model from this trained model's weights "
                            "(library name or folder): architecture, resolution and width "
                            "come from it, the original is left as it is", label="Start from")
    batch: int = option(0, "faces of each identity per step (0 = planner)", low=0, high=1024,
                        label="Batch size", auto="auto")
    precision: str = option("auto", PRECISION_HELP, choices=PRECISIONS,
                            label="Training precision")
    device: str = option("auto", "training device", choices=DEVICES, label="Device")
    lr: float = option(0.0, "peak Adam learning rate, reached after the warm-up (0 = auto: "
                       "1e-3 for 64 px models, less for larger ones; a resumed model keeps its "
                       "own)", low=0.0, high=1e-2, label="Learning rate", auto="auto")
    warmup: int = option(200, "iterations of linear learning-rate warm-up at the start of a "
                         "new model", low=0, label="Warm-up iterations")
    schedule: str = option("cosine", "learning rate after the warm-up: cosine (decays to a "
                           "tenth of the peak by the end of the run) or constant",
                           choices=("cosine", "constant"), label="Learning-rate schedule")
    clip_grad: float = option(0.0, "clip the gradient norm to this value (0 = off)", low=0.0,
                              high=1e6, label="Gradient clipping (0 = off)")
    eyes_mouth_weight: float = option(3.0, "extra loss weight on eyes and mouth", low=0.0,
                                      high=100.0, label="Extra weight on eyes and mouth")
    guide: bool = option(True, "expression guide: the decoders see where the target's lids, "
                         "brows and lips are (lines, with the eye openings and the inner mouth "
                         "filled; in the source's range) and the encoder "
                         "does not see the eyes and mouth, so the swap opens and closes them "
                         "with the target (localswap architecture; fixed once the model "
                         "exists; --no-guide for a model that can be exported to .dfm)",
                         label="Expression guide")
    color_match: str = option("none", "train the source's faces in the target's colours and "
                              "light (rct: Lab mean and deviation of a random target face, "
                              "DeepFaceLab's colour transfer mode) or in their own (none)",
                              choices=("none", "rct"),
                              label="Train the source in the target's colours")
    warp: bool = option(True, "randomly warp the input faces (what teaches the swap)",
                        label="Random warp")
    sharpen: float = option(0.0, "final share of the run trained without random warp, which "
                            "sharpens detail (DeepFaceLab's trick); 0 = warp throughout",
                            low=0.0, high=0.9,
                            label="Sharpen at the end (share of the run, 0 = off)")
    flip: bool = option(True, "randomly mirror faces", label="Random mirroring")
    save_every: int = option(1000, "save the model every N iterations", low=1,
                             label="Save every N iterations")
    save_minutes: float = option(10.0, "also save every M minutes (0 = off)", low=0.0,
                                 label="Also save every N minutes (0 = off)")
    preview_every: int = option(200, "write a preview grid and a loss-history point every K "
                                "iterations", low=1, label="Preview every N iterations")
    preview_seconds: float = option(20.0, "also write a preview when S seconds passed since "
                                    "the last one, so a slow run shows progress (0 = off)",
                                    low=0.0, label="Also preview every N seconds (0 = off)")
    max_minutes: float = option(0.0, "stop this run after this many minutes (0 = no limit)",
                                low=0.0, label="Time budget in minutes (0 = no limit)")
    plateau: float = option(0.0, "stop when an exponential-decay fit of the loss predicts less "
                            "than this fraction of further improvement, e.g. 0.01 (0 = off)",
                            low=0.0, high=1.0, label="Stop at a plateau (0 = off)")
    seed: int = option(0, "random seed (weights, batches, augmentation)", low=0,
                       label="Random seed")
