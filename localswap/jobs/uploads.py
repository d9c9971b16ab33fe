"""Uploaded media: checked against the limits, then stored under a generated name.

The name a user gave a file is display text only; on disk it becomes uploads/<random>.<ext>
with the extension taken from a fixed list, so no user string ever becomes a path.
The command line checks its inputs against the same limits (`check_inputs`) when its
--max-gb / --max-video-minutes flags are given, with the same sentences.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from localswap import media
from localswap.errors import NoFacesError, UserError
from localswap.settings import ExtractSettings, SettingsBase, option
from localswap.workspace import AtomicFile, Workspace

GB = 1024 ** 3


@dataclass
class UploadSettings(SettingsBase):
    max_gb: float = option(2.0, "largest video or photo accepted, in GB", low=0.01, high=1000.0)
    max_minutes: float = option(10.0, "longest video accepted, in minutes", low=0.05,
                                high=600.0)
    downscale: int = option(0, "downscale videos wider than this many pixels before "
                            "processing (0 = keep the size; 1440 is what hosted services use)",
                            low=0, high=8192)


@dataclass
class Upload:
    rel: str            # path relative to the workspace root
    name: str           # the name the user gave it (display only)
    video: bool
    width: int = 0
    height: int = 0
    duration: float = 0.0
    frames: int = 0


def check_media(path: Path, name: str, limits: UploadSettings, photos: bool) -> Upload:
    """Probe `path`; UserError with a sentence a user can act on when it is unusable."""
    size = path.stat().st_size if path.is_file() else 0
    if size == 0:
        raise UserError(f"{name}: the file is empty or missing.")
    if size > limits.max_gb * GB:
        raise UserError(f"{name} is {size / GB:.3g} GB; the limit is {limits.max_gb:g} GB. "
                        "Trim or compress it first.")
    if media.is_video(name):
        try:
            info = media.probe(path)
        except UserError as exc:
            raise UserError(f"{name}: cannot read this video (damaged, truncated or not a "
                            "video file).") from exc
        if info.duration > limits.max_minutes * 60:
            d = info.duration
            lasts = f"{d:.1f} s ({d / 60:.2f} minutes)" if d < 60 else f"{d / 60:.2f} minutes"
            raise UserError(f"{name} lasts {lasts}; the limit is {limits.max_minutes:g} "
                            "minutes. Trim it first.")
        return Upload("", name, True, info.width, info.height, info.duration, info.frames)
    if photos and media.is_image(name):
        image = media.read_image(path)
        return Upload("", name, False, image.shape[1], image.shape[0], 0.0, 1)
    kinds = "a video (mp4, mov, mkv, webm, avi)" + (" or a photo (jpg, png, webp)"
                                                     if photos else "")
    raise UserError(f"{name}: not {kinds}.")


def photos_without_face(photos: list[tuple[str | os.PathLike, str]],
                        settings: ExtractSettings | None = None) -> list[str]:
    """The names of the photos among `photos` ((path, name) pairs; videos are left out) in
    which extraction, with the job's settings, keeps no face: the job would find nothing in
    them. One small extraction (64 px crops, in a temporary folder, on the CPU), so the check
    applies exactly the detector, size and sharpness rules the job applies."""
    from localswap.faces.extract import extract
    from localswap.faces.faceset import Faceset
    photos = [(Path(p).absolute(), n) for p, n in photos if media.is_image(n)]
    if not photos:
        return []
    s = dataclasses.replace(settings or ExtractSettings(), size=64, device="cpu", person=0,
                            person_photo="", max_frames=0)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            extract([p for p, _ in photos], Path(tmp) / "faces", s)
            kept = {str(Path(f.source)) for f in Faceset.load(Path(tmp) / "faces").faces}
        except NoFacesError:
            kept = set()
    return [n for p, n in photos if str(p) not in kept]


def no_face_sentence(name: str, settings: ExtractSettings | None = None) -> str:
    from localswap.faces.sharpness import SMALL_FACE
    min_face = (settings or ExtractSettings()).min_face or SMALL_FACE
    return (f"{name}: no usable face in this photo, so it would teach the model nothing. Use "
            f"a photo where one face is clearly visible, lit and at least {min_face} px wide, "
            "or leave it out.")


def check_inputs(inputs: list[str | os.PathLike], limits: UploadSettings) -> None:
    """The command line's check, before any work: every video and photo among `inputs`
    (folders: the photos in them) against `limits`. Other files are left to the stage, which
    names what it accepts."""
    for raw in inputs:
        p = Path(raw)
        files = sorted(q for q in p.rglob("*") if media.is_image(q)) if p.is_dir() else [p]
        for f in files:
            if f.is_file() and (media.is_video(f) or media.is_image(f)):
                check_media(f, f.name, limits, photos=True)


def store_upload(workspace: Workspace, path: str | os.PathLike, name: str | None,
                 limits: UploadSettings, photos: bool = False) -> Upload:
    """Check the file, then move it into uploads/ under a generated name."""
    path = Path(path)
    name = Path(name or path.name).name
    up = check_media(path, name, limits, photos)
    ext = Path(name).suffix.lower()
    allowed = media.VIDEO_EXTS | (media.IMAGE_EXTS if photos else set())
    if ext not in allowed:
        raise UserError(f"{name}: unsupported file type {ext or '(none)'}.")
    dest = workspace.root / "uploads" / f"{secrets.token_hex(8)}{ext}"
    with AtomicFile(dest, suffix=".part") as tmp:
        shutil.copyfile(path, tmp)
    up.rel = str(dest.relative_to(workspace.root))
    return up
