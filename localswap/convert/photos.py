"""Photos in, photos out: the converter for a single image or a folder of images.

Each photo is detected on its own (no tracking), swapped, and saved atomically with the
synthetic-media note in the file's metadata (PNG text chunk, JPEG comment, WebP/TIFF EXIF
ImageDescription).
"""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from localswap import media
from localswap.convert.frames import (STEPS, Cancelled, ConvertResult, Frame, align_faces,
                                      check_paths, compose, pick_faces, run_model,
                                      synthetic_tag)
from localswap.convert.blend import Look
from localswap.convert.glasses import find_glasses, keeper_for
from localswap.convert.occluders import check_for
from localswap.convert.occlusion import find_hands, tracker_for
from localswap.convert.smooth import TrackedFace
from localswap.convert.swapper import Swapper
from localswap.errors import UserError
from localswap.faces.detect import make_backend
from localswap.progress import Progress
from localswap.settings import ConvertSettings
from localswap.workspace import atomic_write_bytes

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
            ".tif": "TIFF", ".tiff": "TIFF"}
_EXIF_DESCRIPTION = 0x010E


def save_photo(path: Path, rgb: np.ndarray, note: str) -> None:
    """Write `rgb` by the file's extension with `note` in its metadata, atomically."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path.name}: write photos as .png, .jpg, .webp, .bmp or .tif")
    img = Image.fromarray(np.ascontiguousarray(rgb))
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", note)
        img.save(buf, fmt, pnginfo=info, compress_level=4)
    elif fmt == "JPEG":
        img.save(buf, fmt, quality=95, comment=note.encode())
    elif fmt in ("WEBP", "TIFF"):
        exif = Image.Exif()
        exif[_EXIF_DESCRIPTION] = note
        img.save(buf, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "WEBP" else {}))
    else:
        img.save(buf, fmt)  # BMP has no metadata field
    atomic_write_bytes(path, buf.getvalue())


def photo_note(path: str | Path) -> str:
    """The metadata note of a photo written by save_photo ('' if none)."""
    with Image.open(path) as img:
        text = img.info.get("Comment") or img.info.get("comment") or b""
        if not text:
            text = img.getexif().get(_EXIF_DESCRIPTION, "")
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def convert_photos(input: Path, swapper: Swapper, out: Path, s: ConvertSettings,
                   progress: Progress, cancel: threading.Event | None,
                   cast=None, knows_person: bool | None = None) -> ConvertResult:
    """`cast` (--person-photo): only faces of that person are swapped; `knows_person` as
    convert.render.convert."""
    started = time.perf_counter()
    if input.is_dir():
        items = sorted(q for q in input.rglob("*") if q.is_file() and media.is_image(q))
        if not items:
            raise UserError(f"{input}: the folder has no images (jpg, png, bmp, webp, tif)")
        if out.suffix and media.is_image(out):
            raise UserError(f"{out}: a folder of photos is written to a folder; give a folder")
        if out.resolve() == input.resolve():
            raise UserError(f"{out}: the output would overwrite the input; pick another folder")
        targets = [out / q.relative_to(input) for q in items]
    else:
        check_paths(input, out, video=False)
        items, targets = [input], [out]
    result = ConvertResult(out=str(out), model=swapper.name, device=str(swapper.device))
    look = Look.of(s)
    note = synthetic_tag(swapper)
    backend = make_backend(s.detector, video=False, min_confidence=s.min_confidence,
                           device=s.device)
    hands = tracker_for(s.occlusion, still=True)
    check = check_for(s.occlusion, swapper, knows_person)
    busy = result.stages
    try:
        for n, (src, dst) in enumerate(zip(items, targets)):
            if cancel is not None and cancel.is_set():
                raise Cancelled("conversion cancelled")
            t0 = time.perf_counter()
            image = media.read_image(src)
            t1 = time.perf_counter()
            found = pick_faces([d.landmarks for d in backend.detect(image)],
                          "all" if cast is not None else s.faces)
            if cast is not None:
                found, _ = cast(image, n, [TrackedFace(None, lm) for lm in found])
            t2 = time.perf_counter()
            frame = Frame(n, image, align_faces(image, found, swapper))
            frame.hands = find_hands(hands, image, frame.faces)
            frame.glasses = find_glasses(keeper_for(s.glasses), image, frame.faces)
            t3 = time.perf_counter()
            if frame.faces:
                run_model(swapper, frame.faces, s.batch, check)
            t4 = time.perf_counter()
            rgb = compose(frame, look, s.label, swapper)
            t5 = time.perf_counter()
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_photo(dst, rgb, note)
            t6 = time.perf_counter()
            for key, dt in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                busy[key] += dt
            result.frames += 1
            result.faces += len(frame.faces)
            result.frames_with_faces += bool(frame.faces)
            progress(n + 1, len(items), src.name)
    finally:
        backend.close()
        if hands is not None:
            hands.close()
    if check is not None:
        result.objects = check.counts()
        if check.note():
            result.notes.append(check.note())
    result.seconds = time.perf_counter() - started
    return result
