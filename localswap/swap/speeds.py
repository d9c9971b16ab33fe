"""This machine's measured speeds, for time estimates before a swap starts.

Kept in workspace/speeds.json, keyed by what the speed depends on (device, model, video
size), and refreshed after every real stage. A speed not stored yet is measured on the spot,
on the target video itself: each stage is run twice at two small sizes and the difference
taken, so fixed start-up costs (loading the detector, building the model, opening ffmpeg)
do not count as per-frame time. That takes a few seconds on a CPU.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from localswap import media
from localswap.swap.plan import SwapJob
from localswap.workspace import Workspace, atomic_write_json

FILE = "speeds.json"


@dataclass
class Speeds:
    extract_fps: float
    train_its: float
    convert_fps: float
    extract_basis: str = ""
    train_basis: str = ""
    convert_basis: str = ""
    # Measured just now and no usable face in the frames looked at: (frames, {reason: frames})
    faceless: tuple[int, dict] | None = None


def _device(name: str) -> str:
    # NVML, not torch.cuda: the web server reads stored speeds and never initialises CUDA.
    from localswap.gpu import nvidia_present
    return "cuda" if name in ("auto", "cuda") and nvidia_present() else "cpu"


def keys(job: SwapJob) -> dict[str, str]:
    info = media.probe(job.target)
    size = f"{info.width}x{info.height}"
    t = job.train
    return {"extract": f"{_device(job.extract.device)}:{job.extract.detector}:{size}",
            "train": f"{_device(t.device)}:{t.arch}:{t.resolution}:{t.width}:{t.batch}:"
                     f"{t.precision}",
            "convert": f"{_device(job.convert.device)}:{t.arch}:{t.resolution}:{t.width}:"
                       f"{size}"}


def load(ws: Workspace) -> dict:
    try:
        data = json.loads((ws.root / FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record(ws: Workspace, kind: str, value: float, job: SwapJob,
           quick: bool = False) -> None:
    """Remember a measured speed (frames/s or it/s) for `kind` under the job's key. A real
    stage's speed replaces a quick on-the-spot measurement and is averaged (half each) with
    earlier real ones, so one odd run moves an estimate only half way."""
    if value and value > 0:
        _record_value(ws, kind, keys(job)[kind], value, quick)


def _record_value(ws: Workspace, kind: str, key: str, value: float, quick: bool) -> None:
    data = load(ws)
    old = data.get(kind, {}).get(key) or {}
    if not quick and not old.get("quick") and isinstance(old.get("value"), (int, float)) \
            and old["value"] > 0:
        value = (old["value"] + value) / 2
    data.setdefault(kind, {})[key] = {"value": round(float(value), 4), "quick": quick,
                                      "when": time.strftime("%Y-%m-%d %H:%M")}
    atomic_write_json(ws.root / FILE, data)


def for_job(job: SwapJob, ws: Workspace) -> Speeds:
    """Stored speeds where this machine has them for this kind of job, measured otherwise."""
    stored, k = load(ws), keys(job)
    got = {kind: (stored.get(kind, {}).get(k[kind]) or {}).get("value") for kind in k}
    out = Speeds(0, 0, 0)
    if all(got.values()):
        basis = "measured on earlier runs here"
        return Speeds(got["extract"], got["train"], got["convert"], basis, basis, basis)
    measured = measure(job)
    for kind in ("extract", "train", "convert"):
        value, basis = (got[kind], "measured on earlier runs here") if got[kind] else \
            (measured[kind], measured[f"{kind}_basis"])
        setattr(out, {"extract": "extract_fps", "train": "train_its",
                      "convert": "convert_fps"}[kind], max(value, 1e-3))
        setattr(out, f"{kind}_basis", basis)
    out.faceless = measured.get("faceless")
    for kind in ("extract", "train", "convert"):
        if not got[kind] and measured[f"{kind}_basis"].startswith("measured"):
            record(ws, kind, measured[kind], job, quick=True)
    return out


def _rate(small: tuple[int, float], large: tuple[int, float]) -> float:
    """Units per second from two runs of different sizes (n, seconds): start-up cancels."""
    (n1, t1), (n2, t2) = small, large
    if n2 > n1 and t2 > t1:
        return (n2 - n1) / (t2 - t1)
    return n2 / max(t2, 1e-6)


# First guesses before anything was measured here (frames/s, it/s; the quality check in
# faces read per second, on the CPU whatever the device), by device kind.
GUESS = {"cpu": {"extract": 15.0, "train": 2.0, "convert": 4.0, "judge": 10.0},
         "cuda": {"extract": 60.0, "train": 20.0, "convert": 30.0, "judge": 10.0}}

# The app's quality check after a render (localswap.evaluate): this many frames of the target
# and of the render, and this many source faces (7-9 s on 2 CPU cores).
JUDGE_FRAMES, JUDGE_SOURCE_FACES = 40, 20


def judge_faces(target_frames: int) -> int:
    """The faces the quality check reads: the source's, and the target's and the render's
    in each sampled frame. Its time is about proportional to them."""
    return JUDGE_SOURCE_FACES + 2 * min(JUDGE_FRAMES, max(1, int(target_frames)))


def judge_key(target: Path) -> str:
    info = media.probe(target)
    return f"cpu:{info.width}x{info.height}"      # dlib and the detector run on the CPU


def record_judge(ws: Workspace, target: Path, seconds: float) -> None:
    """Remember how fast the quality check of a render of `target` went (faces/s)."""
    if seconds and seconds > 0:
        rate = judge_faces(media.probe(target).frames) / seconds
        _record_value(ws, "judge", judge_key(target), rate, quick=False)


def judge_seconds(ws: Workspace, target: Path, device: str = "cpu") -> tuple[float, str]:
    """(seconds, basis) the quality check of a render of `target` will take here."""
    rate = (load(ws).get("judge", {}).get(judge_key(target)) or {}).get("value")
    basis = "measured on earlier runs here"
    if not rate:
        rate, basis = GUESS.get(device, GUESS["cpu"])["judge"], "a first guess"
    return judge_faces(media.probe(target).frames) / rate, basis


def measure(job: SwapJob) -> dict:
    """Quick measurements on the job's own target video, in a temp folder. Never raises for
    what the video holds: a speed that cannot be measured (no face in the frames looked at,
    a stage that fails) is a first guess, and its basis says so."""
    from localswap.errors import is_disk_full
    guess = GUESS[_device(job.train.device)]
    found = {"extract": None, "train": None, "convert": None}
    faceless: list = []             # filled when the frames looked at showed no usable face
    why = ""
    with tempfile.TemporaryDirectory(prefix="localswap-speed-") as tmp:
        try:
            _measure(job, Path(tmp), found, faceless)
        except Exception as exc:            # the job itself will say what is wrong, if anything
            if is_disk_full(exc):
                raise
            why = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else \
                type(exc).__name__
    out: dict = {"faceless": faceless[0] if faceless else None}
    for kind in found:
        if found[kind]:
            out[kind], out[f"{kind}_basis"] = found[kind], \
                "measured just now on a few frames and iterations"
        else:
            out[kind] = guess[kind]
            out[f"{kind}_basis"] = ("a first guess: " + (why or "no face in the frames "
                                    "measured") + "; it gets exact after the first job here")
    return out


def _measure(job: SwapJob, tmp: Path, found: dict, faceless: list) -> None:
    """Fill `found` with extract (frames/s), train (it/s), convert (frames/s), as far as the
    video allows: training needs faces, the render a trained model. When the frames looked
    across the clip show no usable face, `faceless` gets (those frames, {reason: frames}):
    one reason a frame (localswap.faces.extract), so the counts add up to the frames."""
    from localswap.convert.render import convert
    from localswap.errors import NoFacesError
    from localswap.faces.extract import extract
    from localswap.faces.faceset import Faceset
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.train.trainer import train

    info = media.probe(job.target)
    base = {**job.extract.to_dict(), "every": 1, "role": "target", "person": 0,
            "person_photo": ""}
    runs = []
    for n in (3, 11):
        t = time.perf_counter()
        try:
            extract([job.target], tmp / f"fs{n}", ExtractSettings(**{**base, "max_frames": n}))
        except NoFacesError:
            pass                    # the time still counts; faces are looked for below
        runs.append((min(n, info.frames), time.perf_counter() - t))
    found["extract"] = _rate(*runs)
    faces = tmp / "fs11"
    if not (faces / "faceset.json").is_file():
        # No face in the first frames: look across the whole clip for some.
        spread = max(1, info.frames // 12)
        try:
            extract([job.target], tmp / "fs-spread",
                    ExtractSettings(**{**base, "every": spread, "max_frames": 12}))
        except NoFacesError as exc:
            seen = exc.summary      # the user reads about these frames, across the clip
            faceless.append((seen.frames_read, dict(seen.rejected)) if seen else (0, {}))
            return
        faces = tmp / "fs-spread"
    if len(Faceset.load(faces)) < 1:
        return
    runs = []
    # The first run in a process builds the kernels (oneDNN, cuDNN) and later runs reuse
    # them: an untimed run first, or the 4-iteration run pays for what the 16 one does
    # not and their difference reads far too fast (70 it/s "measured" against 8.4 real).
    for n in (4, 4, 16):
        s = TrainSettings(**{**job.train.to_dict(), "iterations": n, "save_every": 10 ** 6,
                             "preview_every": 10 ** 6, "save_minutes": 0.0,
                             "max_minutes": 0.0, "plateau": 0.0})
        t = time.perf_counter()
        train(faces, faces, tmp / f"model{n}-{len(runs)}", s)
        runs.append((n, time.perf_counter() - t))
    found["train"] = _rate(*runs[1:])
    runs = []
    for span in (0.5, 2.0):     # long enough that start-up noise does not dominate
        end = min(info.duration, span)
        s = ConvertSettings(**{**job.convert.to_dict(), "start": None, "end": end})
        result = convert(job.target, tmp / "model4-0", tmp / f"c{span}.mp4", s)
        runs.append((result.frames, result.seconds))
    found["convert"] = _rate(*runs)
