"""The judge's verdict: numbers (to_dict), a table, and one sentence a user can act on."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from localswap.evaluate.glasses import ERASED     # glasses kept in fewer frames: erased

# The quality bar (issue 16): dlib distance <= 0.6 reads as one person; expressions follow
# when eye and mouth opening correlate with the target's; steady when the face changes from
# frame to frame no more than 1.2x the original's.
SAME_PERSON = 0.6
EYES_FOLLOW = 0.6
MOUTH_FOLLOW = 0.8
STEADY = 1.2
FLICKERS = 1.5       # above this, "flickers" rather than "slight flicker"
SEAM_SHOWS = 1.5     # border gradient energy over the target's: an edge the original lacks
BLURRED = 0.6        # texture in the face over the target's: below this, a smudge
# how much redder (Lab a*, the reddest tenth) a region is than both people's: painted lips,
# pink eye rims, red blotches (evaluate.colours: honest corpus renders <= 2.9, blotched 4.1+)
REDDER = 3.5


@dataclass
class Report:
    output: str = ""
    target: str = ""
    sources: list[str] = field(default_factory=list)
    frames: int = 0                          # frame pairs judged (sampled)
    target_faces: int = 0                    # of those, frames where the target shows a face
    missing_faces: int = 0                   # ... and the output shows none there (a failure)
    source_faces: int = 0                    # source faces behind the source's centroid
    closer_to_source: float | None = None    # share of target-face frames whose output face is
    #                                          nearer the source centroid than the target's
    distance_to_source: float | None = None  # mean, output faces to the source centroid
    distance_to_target: float | None = None  # mean, output faces to the target centroid
    target_distance_to_source: float | None = None  # reference: the unswapped target
    source_spread: float | None = None       # reference: source faces to their own centroid
    eye_correlation: float | None = None     # None: a series too flat to correlate
    mouth_correlation: float | None = None
    yaw_error: float | None = None           # mean absolute difference, degrees
    pitch_error: float | None = None
    roll_error: float | None = None
    detail: float | None = None              # texture in the face, output / target
    stability: float | None = None           # frame-to-frame change per texture, out / target
    seam: float | None = None                # border gradient energy, output / target
    red_lips: float | None = None            # redder than both people's lips (Lab a*)
    red_eyes: float | None = None            # ... the skin around the eyes
    red_cheeks: float | None = None
    red_face: float | None = None            # ... the whole face
    glasses_kept: float | None = None        # share of frames keeping the target's glasses
    #                                          (None: the target wears none; evaluate.glasses)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "sentence": self.sentence()}

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        """Back from to_dict() (a job's stored result); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def rows(self) -> list[tuple[str, str, str]]:
        """(measure, value, what to aim for), for the text table and the web app's."""
        def f(v, fmt="{:.2f}"):
            return "-" if v is None else fmt.format(v)
        return [
            ("frames judged", f"{self.frames}", f"target face in {self.target_faces}"),
            ("output face missing", f"{self.missing_faces}", "0 (a missing face is a failure)"),
            ("closer to source", f(self.closer_to_source, "{:.0%}"), ">= 95%"),
            ("distance to source", f(self.distance_to_source),
             f"<= {SAME_PERSON} same person; target itself "
             f"{f(self.target_distance_to_source)}, source's own spread "
             f"{f(self.source_spread)}"),
            ("distance to target", f(self.distance_to_target), "larger is further from A"),
            ("eye opening corr.", f(self.eye_correlation), f">= {EYES_FOLLOW}"),
            ("mouth opening corr.", f(self.mouth_correlation), f">= {MOUTH_FOLLOW}"),
            ("pose error yaw/pitch/roll",
             "/".join(f(v, "{:.1f}") for v in (self.yaw_error, self.pitch_error,
                                              self.roll_error)), "degrees, small"),
            ("detail", f(self.detail), f"1.0 = as sharp as the target; < {BLURRED} blurred"),
            ("stability", f(self.stability), f"1.0 = as steady as the target; "
                                              f"> {STEADY} flickers"),
            ("seam", f(self.seam), f"1.0 = like the target; > {SEAM_SHOWS} an edge shows"),
            ("redder lips/eyes/cheeks/face",
             "/".join(f(v, "{:.1f}") for v in (self.red_lips, self.red_eyes, self.red_cheeks,
                                              self.red_face)),
             f"<= 0 no redder than one of the two people; > {REDDER:g} painted"),
            ("target's glasses kept", f(self.glasses_kept, "{:.0%}"),
             "- = the target wears none; below "
             f"{ERASED:.0%} erased"),
        ]

    def table(self) -> str:
        """Aligned text: measure, value, what to look for."""
        rows = self.rows()
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows)

    def sentence(self) -> str:
        """One plain sentence: who it looks like, whether expressions follow, how steady."""
        parts = []
        if self.target_faces == 0:
            return "No face found in the target's frames: nothing to judge."
        if self.missing_faces:
            parts.append(f"No face in {self.missing_faces} of {self.target_faces} frames")
        if self.closer_to_source is not None:
            who = f"Looks like the source in {self.closer_to_source:.0%} of frames"
            if self.distance_to_source is not None and self.distance_to_source > SAME_PERSON:
                who += (f", but not yet the same person (distance {self.distance_to_source:.2f}"
                        f" > {SAME_PERSON})")
            parts.append(who if not parts else who[0].lower() + who[1:])
        parts.append(self._expression())
        if self.detail is not None and self.detail < BLURRED:
            parts.append(f"the face is blurred ({self.detail:.0%} of the target's detail)")
        if self.stability is not None:
            if self.stability > FLICKERS:
                parts.append(f"flickers ({self.stability:.1f}x the target's change)")
            elif self.stability > STEADY:
                parts.append("slight flicker")
            else:
                parts.append("steady")
        if self.seam is not None and self.seam > SEAM_SHOWS:
            parts.append("a seam shows at the face's edge")
        painted = self.painted()
        if painted:
            parts.append(f"painted red: {' and '.join(painted)} (redder than either person's)")
        if self.glasses_erased():
            parts.append(f"the target's glasses are erased (kept in {self.glasses_kept:.0%} of "
                         "frames)")
        return "; ".join(parts) + "."

    def glasses_erased(self) -> bool:
        return self.glasses_kept is not None and self.glasses_kept < ERASED

    def painted(self) -> list[str]:
        """The regions redder than both people's by more than REDDER (painted lips, rims)."""
        named = (("the lips", self.red_lips), ("the skin around the eyes", self.red_eyes),
                 ("the cheeks", self.red_cheeks))
        out = [name for name, v in named if v is not None and v > REDDER]
        if not out and self.red_face is not None and self.red_face > REDDER:
            out.append("the face")
        return out

    def _expression(self) -> str:
        eye, mouth = self.eye_correlation, self.mouth_correlation
        if eye is None and mouth is None:
            return "expressions not judged (the target's or output's eyes and mouth hardly move)"
        good, bad, unjudged = [], [], []
        for name, value, bar in (("eyes", eye, EYES_FOLLOW), ("mouth", mouth, MOUTH_FOLLOW)):
            if value is None:      # one series flat: said, or the sentence reads as a pass
                unjudged.append(f"{name} not judged "
                                f"({'they hardly move' if name == 'eyes' else 'it hardly moves'})")
            else:
                (good if value >= bar else bad).append((name, value))

        def verb(items, plural, single):  # "eyes follow", "mouth follows"
            return plural if len(items) > 1 or items[0][0] == "eyes" else single
        text = []
        if good:
            text.append(f"{' and '.join(n for n, _ in good)} "
                        f"{verb(good, 'follow', 'follows')} the target")
        if bad:
            text.append(f"{' and '.join(f'{n} ({v:.2f})' for n, v in bad)} "
                        f"{verb(bad, 'do not', 'does not')} follow the target")
        return "; ".join(text + unjudged)
