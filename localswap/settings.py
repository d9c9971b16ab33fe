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
           auto: str = "", cli_note: str = "") -> Any:
    """A dataclass field with the metadata the CLI, UI and validation read. `help` is shown
    by both, in a user's words (what it does, when to change it: no flags, files or code
    names); `cli_note` adds what only the command line needs (what 0 means there, a related
    flag). `label` is the widget's name in the app (plain words, no abbreviations); `auto` is
    how the app shows the default 0 (or unset) value that means "chosen for you"."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "cli": cli,
            "label": label, "auto": auto, "cli_note": cli_note}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def detector_option(what: str, step: str) -> Any:
    """The face detector's field, for extraction and for rendering (`step` names which in
    the app, where both show)."""
    return option("mediapipe", f"What finds {what}. mediapipe works out of the box; facexlib "
                  "finds more difficult faces but needs its extra weight files installed "
                  "first.", choices=DETECTORS, label=f"Face detector ({step})",
                  cli_note="facexlib's files: `localswap download-weights`")


def confidence_option(step: str) -> Any:
    """The detector's confidence field, likewise."""
    return option(0.5, "How sure the face finder must be that it sees a face. Lower it when "
                  "faces are missed; raise it when things that are not faces get swapped.",
                  low=0.05, high=0.99, label=f"Detector confidence ({step})")


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
            note = f"; {f.metadata['cli_note']}" if f.metadata.get("cli_note") else ""
            kwargs: dict[str, Any] = {"dest": f.name, "default": None,
                                      "help": f"{f.metadata['help']}{note} (default: {default})"}
            if isinstance(default, bool):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
                continue
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
            if cls.value_type(f) in (int, float):
                kwargs["type"] = cls.value_type(f)
            parser.add_argument(flag, **kwargs)

    @staticmethod
    def value_type(f: dataclasses.Field) -> type:
        """What a setting's text becomes: its default's type, or for a default of None
        (automatic) the annotation's."""
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if default is not None:
            return type(default)
        if f.type in ("int | None", "Optional[int]"):
            return int
        if f.type in ("float | None", "Optional[float]"):
            return float
        return str

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
    size: int = option(256, "The size each found face is saved at for training. 256 suits "
                       "models up to 256 px; raise it only for larger models (more disk).",
                       low=32, high=1024, label="Face crop size (px)")
    face_type: str = option("face", "How much of the head each face picture covers: face "
                            "(brows to chin) gives the eyes and mouth the most detail, "
                            "whole_face adds the forehead, head adds hair and ears. Choose "
                            "dfl_whole_face to use the model in DeepFaceLive later.",
                            choices=FACE_TYPES, label="Face crop")
    detector: str = detector_option("the faces", "preparing faces")
    every: int = option(1, "Look at every Nth frame only. Raise it to prepare long videos "
                        "faster; the model then learns from fewer faces.", low=1,
                        high=10_000, label="Use every Nth frame")
    role: str = option("source", "Whose faces these are: source (the person to put in: faces "
                       "much softer than the video's sharpest, or too small, are left out) or "
                       "target (every face the swap will replace is kept).", choices=ROLES,
                       label="Faces for", cli_note="too small: see --min-face")
    min_face: int = option(0, "Source faces smaller than this are left out, as they teach the "
                           "model blur. Lower it when a source video shows its person small "
                           "and too few faces are kept.", low=0, high=4096,
                           label="Smallest source face (px)", auto="auto",
                           cli_note="0 = auto: under 48 px only while the video keeps its 48 "
                           "largest faces")
    soft_share: float = option(
        0.25, "Source faces much softer than the video's sharpest (motion blur, a focus "
        "change) are left out; this is how soft a face may be, as a share of the sharpest. "
        "Lower it, or set 0 to keep every face, when too few faces are kept.", low=0.0,
        high=1.0, label="Leave out soft source faces (share of the sharpest; 0 keeps all)",
        cli_note="the 48 sharpest faces of a video always stay")
    min_confidence: float = confidence_option("preparing faces")
    max_frames: int = option(0, "Stop after this many frames of each video. Use it for a quick "
                             "try on the start of a long video.", low=0,
                             label="Frames per video", auto="all", cli_note="0 = all")
    device: str = option("auto", "Where face finding runs (auto: the GPU when there is one).",
                         choices=DEVICES, label="Device")
    person: int = option(0, "Keep only this person's faces, by their number in the list of "
                         "people found in the video.", low=0, high=999, label="Person",
                         auto="the main person",
                         cli_note="the list: `extract --list-people`; 0 = the main person, "
                         "the longest face track")
    person_photo: str = option("", "Keep only the faces of the person in this photo.",
                               label="Reference photo of the person",
                               cli_note="a photo file on this machine")


@dataclass
class ConvertSettings(SettingsBase):
    color: str = option("rct", "How the new face takes on the light and colour of the video: "
                        "rct (the usual choice) and lct match colour and brightness, hist "
                        "matches every shade (strongest), none keeps the model's own.",
                        choices=COLOR_METHODS, label="Colour transfer",
                        cli_note="rct: Lab mean and deviation; lct: full colour covariance")
    blend: str = option("feather", "How the edge of the new face meets the video: feather "
                        "fades it softly; poisson blends it in seamlessly (slower, can wash "
                        "out colours).", choices=BLENDS, label="Blending")
    mask: str = option("both", "Which area gets the new face: the face outline from the face "
                       "points (hull), the area the model learned (learned), or only where "
                       "both agree (both, the safest).", choices=MASKS, label="Mask")
    erode: int | None = option(None, "Shrink the swapped area by this many pixels (negative "
                               "grows it). Shrink it when an edge of the old face shows; grow "
                               "it when the new face looks cut short.", low=-200, high=200,
                               label="Mask erosion (px)", auto="auto",
                               cli_note="unset = 3 percent of the face width")
    blur: int | None = option(None, "How softly the edge of the swapped area fades, in "
                              "pixels. Raise it when a seam shows around the face.", low=0,
                              high=400, label="Mask edge blur (px)", auto="auto",
                              cli_note="unset = 6 percent of the face width")
    detail: float = option(1.0, "Add fine detail (lashes, nostrils, lip lines) from the "
                           "source's own sharp pictures, which a small model cannot draw. "
                           "0 turns it off; lower it if the face looks grainy.", low=0.0,
                           high=1.5, label="Source detail")
    mouth: float = option(1.0, "When the mouth opens, keep the video's own teeth and tongue "
                          "inside the lips (the lips stay swapped), as far as the swapped "
                          "mouth opens less than the video's; 0 always shows the model's "
                          "mouth.", low=0.0, high=1.0,
                          label="Target's open mouth (teeth)")
    occlusion: str = option("hands", "Keep what passes in front of the face in front of the new "
                            "face: hands, or auto (hands and anything else over the face, such "
                            "as a cup or a microphone; best on the person the model learned), "
                            "or off (faster).", choices=OCCLUSION,
                            label="Keep in front of the face")
    glasses: str = option("keep", "The video's glasses: keep them on the new face, or leave "
                          "the face as the source person looks (source).", choices=GLASSES,
                          label="Target's glasses")
    smooth: float = option(0.5, "Steadies the face from frame to frame: raise it if the face "
                           "jitters, lower it if it lags behind quick moves. 0 is off.",
                           low=0.0, high=1.0, label="Temporal smoothing")
    fill_gap: int = option(6, "When a face is missed for a few frames (a turn, a blink), swap "
                           "it there anyway, for up to this many frames.", low=0, high=60,
                           label="Fill missed faces (frames)")
    faces: str = option("all", "Swap every face in the video, or only the largest in each "
                        "frame.", choices=("all", "largest"), label="Faces to swap")
    person: int = option(0, "Swap only this person, by their number in the list of people "
                         "found in the video.", low=0, high=999,
                         label="Person", auto="by faces to swap",
                         cli_note="the list: `extract --list-people`; 0 = as --faces says")
    person_photo: str = option("", "Swap only the person in this photo.",
                               label="Reference photo of the person",
                               cli_note="a photo file on this machine")
    start: float | None = option(None, "Start this many seconds into the video.", low=0.0,
                                 label="Start (s)", auto="the start")
    end: float | None = option(None, "Stop this many seconds into the video.", low=0.0,
                               label="End (s)", auto="the end")
    batch: int = option(8, "How many faces the model draws at once. Lower it if rendering "
                        "runs out of GPU memory.", low=1, high=512,
                        label="Faces per model call")
    label: bool = option(False, "Draw a small visible 'AI-generated' label on the video.",
                         label="Visible 'AI-generated' label")
    crf: int = option(18, "Video quality: lower numbers look better and make bigger files. "
                      "18 looks like the original; 23 is about half the size.",
                      low=0, high=51, label="Video quality (lower is better)",
                      cli_note="the H.264 CRF")
    detector: str = detector_option("the faces in the video", "rendering")
    min_confidence: float = confidence_option("rendering")
    device: str = option("auto", "Where rendering runs (auto: the GPU when there is one).",
                         choices=DEVICES, label="Device")
    precision: str = option("auto", PRECISION_HELP, choices=PRECISIONS,
                            label="Rendering precision")

    def validate(self) -> "ConvertSettings":
        super().validate()
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UserError(f"end ({self.end} s) must come after start ({self.start} s)")
        return self


@dataclass
class TrainSettings(SettingsBase):
    iterations: int = option(0, "How long the model learns, as a total number of training "
                             "steps. Leave it empty for Basic's count, which reaches good "
                             "quality for most videos; more steps give a sharper swap. A "
                             "model you continue trains on up to this total.", low=0,
                             high=100_000_000, label="Iterations (total)", auto="Basic",
                             cli_note="0 = Basic: the count after which this recipe's swap "
                             "clears the quality bar (docs/benchmarks.md, time to quality)")
    arch: str = option("auto", "The kind of model: localswap (the default, any size) or "
                       "original (a small 64 px model, for comparison). Cannot change once "
                       "the model exists.", choices=("auto",) + ARCHS,
                       label="Model architecture",
                       cli_note="auto = localswap, sized for this device")
    resolution: int = option(0, "The size of the face the model draws. Larger is sharper on "
                             "close-ups but trains slower and needs more GPU memory; auto "
                             "picks what fits your GPU. Cannot change once the model exists.",
                             choices=(0,) + RESOLUTIONS, label="Resolution (px)", auto="auto",
                             cli_note="0 = sized for this device")
    width: int = option(0, "How big the model is inside: wider learns more detail but trains "
                        "slower and needs more memory; auto fits it to your GPU. Cannot "
                        "change once the model exists.", low=0, high=256,
                        label="Model width", auto="auto",
                        cli_note="the channels of its first layer; 0 = sized for this device")
    init_from: str = option("", "Start a new model from a trained model's knowledge: it "
                            "learns far sooner when the source person is the same. Its size "
                            "and kind come from that model, which stays as it is.",
                            label="Start from", cli_note="a library name or a model folder")
    batch: int = option(0, "How many faces of each person the model learns from per step. "
                        "Lower it if training runs out of GPU memory; auto fits your GPU.",
                        low=0, high=1024, label="Batch size", auto="auto",
                        cli_note="0 = sized for this device")
    precision: str = option("auto", PRECISION_HELP, choices=PRECISIONS,
                            label="Training precision")
    device: str = option("auto", "Where training runs (auto: the GPU when there is one).",
                         choices=DEVICES, label="Device")
    lr: float = option(0.0, "How big each learning step is. Leave it on auto; lower it only "
                       "if training goes wrong (the loss jumps up).", low=0.0, high=1e-2,
                       label="Learning rate", auto="auto",
                       cli_note="the peak Adam learning rate after the warm-up; 0 = auto: "
                       "1e-3 for 64 px models, less for larger ones; a resumed model keeps "
                       "its own")
    warmup: int = option(200, "Steps at the start of a new model during which the learning "
                         "rate rises gently from zero.", low=0, label="Warm-up iterations")
    schedule: str = option("cosine", "The learning rate after the warm-up: cosine lowers it "
                           "slowly to a tenth by the end (finer detail); constant keeps it.",
                           choices=("cosine", "constant"), label="Learning-rate schedule")
    clip_grad: float = option(0.0, "Limit how far one step can move the model. Try 1 if "
                              "training goes wrong (the loss jumps up); 0 is off.", low=0.0,
                              high=1e6, label="Gradient clipping (0 = off)",
                              cli_note="the gradient norm's limit")
    eyes_mouth_weight: float = option(3.0, "How much more the model cares about the eyes and "
                                      "mouth than about the rest of the face.", low=0.0,
                                      high=100.0, label="Extra weight on eyes and mouth")
    guide: bool = option(True, "The swap opens and closes the eyes and mouth with the video "
                         "(recommended). Switch it off only for a model you will use in "
                         "DeepFaceLive. Cannot change once the model exists.",
                         label="Expression guide",
                         cli_note="--no-guide for a model that can be exported to .dfm; "
                         "localswap architecture only")
    color_match: str = option("none", "Train the source's faces in the video's colours and "
                              "light (rct), or in their own (none). Try rct when the source "
                              "was filmed in very different light.", choices=("none", "rct"),
                              label="Train the source in the target's colours",
                              cli_note="rct: Lab mean and deviation of a random target face")
    warp: bool = option(True, "Randomly bend the training faces a little: this is what "
                        "teaches the swap. Leave it on.", label="Random warp")
    sharpen: float = option(0.0, "Train the last part of the run without random bending, "
                            "which sharpens detail. 0.1 to 0.2 is typical; 0 is off.",
                            low=0.0, high=0.9,
                            label="Sharpen at the end (share of the run, 0 = off)")
    flip: bool = option(True, "Also learn from mirrored faces (more variety).",
                        label="Random mirroring")
    save_every: int = option(1000, "Save the model every this many steps.", low=1,
                             label="Save every (iterations)")
    save_minutes: float = option(10.0, "Also save the model every this many minutes; 0 is "
                                 "off.", low=0.0, label="Also save every (minutes, 0 = off)")
    preview_every: int = option(200, "Show a preview picture and a loss point every this many "
                                "steps.", low=1, label="Preview every (iterations)")
    preview_seconds: float = option(20.0, "Also show a preview when this many seconds passed "
                                    "since the last one, so a slow run shows progress; 0 is "
                                    "off.", low=0.0,
                                    label="Also preview every (seconds, 0 = off)")
    max_minutes: float = option(0.0, "Stop training after this many minutes and make the "
                                "video with what was learned; 0 is no limit.", low=0.0,
                                label="Time budget in minutes (0 = no limit)")
    plateau: float = option(0.0, "Stop early once the model has almost stopped improving: "
                            "0.01 stops when less than 1 percent more is expected; 0 is off.",
                            low=0.0, high=1.0, label="Stop at a plateau (0 = off)",
                            cli_note="from an exponential-decay fit of the loss")
    seed: int = option(0, "The same number gives the same training run again; change it "
                       "to try another.", low=0, label="Random seed")
