"""What an extraction run found: the counts a user reads after it, and the one sentence that
says why nothing was kept."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from localswap.faces.landmarks import SWAPPABLE_FACE
from localswap.progress import plural
from localswap.settings import ExtractSettings


@dataclass
class ExtractSummary:
    out: str
    frames_read: int = 0
    faces_kept: int = 0
    faces_total: int = 0                   # in the faceset after this run
    frames_skipped: int = 0                # already extracted on an earlier run
    multi_face_frames: int = 0
    soft: int = 0                          # kept though soft (a target keeps them all)
    small: int = 0                         # target faces kept though under --min-face
    # Why each frame read without a face kept was left out: one reason a frame, so
    # faces_kept + frames_skipped + the rejected counts add up to frames_read.
    rejected: dict = field(default_factory=dict)
    other_faces: int = 0                   # other people's faces beside the one kept
    yaw: dict = field(default_factory=lambda: {"frontal": 0, "three_quarter": 0, "profile": 0})
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames_read / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": round(self.fps, 2)}

    def kept_though(self) -> str:
        """'12 soft, 3 small', for the faces kept though soft or small."""
        return ", ".join(f"{n} {what}" for n, what in ((self.soft, "soft"),
                                                       (self.small, "small")) if n)

    def rejected_text(self) -> str:
        return self.rejected_text_of(self.rejected)

    @property
    def frames_rejected(self) -> int:
        return sum(self.rejected.values())

    @staticmethod
    def rejected_text_of(counts: dict) -> str:
        """'blurry 3, too small 2': frames, one reason each."""
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items())
                         if v) or "none"

    def report(self) -> str:
        rej = self.rejected_text()
        yaw = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in self.yaw.items())
        return (f"faceset {self.out}: kept {plural(self.faces_kept, 'face')} from "
                f"{plural(self.frames_read, 'frame')} ({self.faces_total} in the faceset)\n"
                + (f"kept though {self.kept_though()}\n" if self.soft or self.small else "")
                + f"frames left out: {rej}\n"
                f"frames with several faces: {self.multi_face_frames} (kept the main person; "
                f"{plural(self.other_faces, 'other face')} left out)\n"
                f"poses: {yaw}\n"
                f"time: {self.seconds:.1f} s, {self.fps:.1f} frames/s"
                + (f"\nskipped {plural(self.frames_skipped, 'frame')} extracted earlier"
                   if self.frames_skipped else ""))



def no_faces_sentence(names: list[str], summary: ExtractSummary,
                      settings: ExtractSettings) -> str:
    """One sentence: which files, what was found and what to do about it."""
    named = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    rej = summary.rejected
    cause = max(("no_face", "too_small", "blurry", "soft", "other_person", "unreadable"),
                key=lambda k: rej.get(k, 0))
    advice = {
        "no_face": "use a video or photos where one face is clearly visible and lit",
        "too_small": f"the faces are under {settings.min_face or SWAPPABLE_FACE} px across: "
                     "use a closer shot, or lower 'Smallest source face (px)' (--min-face)",
        "blurry": "the faces are blurred: use a sharper video or photos, or set 'Leave out "
                  "soft source faces' to 0 (--soft-share 0) to learn from them anyway",
        "soft": "use a sharper video or photos, or set --soft-share 0 to keep every face",
        "other_person": "the chosen person was not found: pick another person",
        "unreadable": "the files could not be read: export them again as mp4, jpg or png",
    }[cause if rej.get(cause) else "no_face"]
    return (f"{named}: no usable face found in {plural(summary.frames_read, 'frame')} "
            f"(rejected: {summary.rejected_text()}): {advice}")
