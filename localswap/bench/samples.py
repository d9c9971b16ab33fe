"""Sample media built from face photos that ship inside installed packages (public domain:
scikit-image's astronaut, matplotlib's Grace Hopper), for tests and `localswap bench`.

Videos are encoded by the bundled ffmpeg straight from numpy frames, independently of
localswap.media's writer, with smooth head motion (rotation, scale, shift, a perspective squeeze that
reads as a turn of the head), lighting drift and a sine-tone audio track.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np


def astronaut() -> np.ndarray:
    from skimage import data
    return data.astronaut()


def grace_hopper() -> np.ndarray:
    import matplotlib.cbook as cbook
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        buf = np.frombuffer(fh.read(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def no_face() -> np.ndarray:
    from skimage import data
    return data.coffee()


# Face centres (x, y) in the source photos, used as the centre of motion.
FACE_CENTRES = {"astronaut": (225, 120), "grace_hopper": (256, 220), "coffee": (300, 200)}


def moving_frames(photo: np.ndarray, centre: tuple[float, float], n: int, size=(480, 360),
                  zoom: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """`n` frames of `photo` moving smoothly around `centre`, rendered at `size` (w, h)."""
    w, h = size
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        angle = 8 * np.sin(2 * np.pi * t + seed)
        scale = zoom * (1 + 0.08 * np.sin(4 * np.pi * t))
        dx, dy = 20 * np.sin(2 * np.pi * t + 1), 10 * np.cos(2 * np.pi * t)
        m = cv2.getRotationMatrix2D(centre, angle, scale)
        m[:, 2] += np.array([w / 2 - centre[0] + dx, h / 2 - centre[1] + dy])
        frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        # A horizontal squeeze of one side: reads as a small turn of the head.
        squeeze = 0.06 * np.sin(2 * np.pi * t)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[0, h * squeeze], [w, -h * squeeze], [w, h + h * squeeze],
                          [0, h - h * squeeze]])
        frame = cv2.warpPerspective(frame, cv2.getPerspectiveTransform(src, dst), (w, h),
                                    borderMode=cv2.BORDER_REPLICATE)
        gain = 1 + 0.12 * np.sin(2 * np.pi * t * 1.5)
        frames.append(np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    return frames


def encode(path: Path, frames: list[np.ndarray], fps: float = 24, audio: bool = True,
           kbits: int = 0) -> Path:
    """H.264 (+ AAC tone): near-lossless, or at `kbits` kbit/s like a webcam call."""
    h, w = frames[0].shape[:2]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration="
                f"{len(frames) / fps:.3f}", "-c:a", "aac", "-b:a", "64k"]
    rate = ["-b:v", f"{kbits}k", "-maxrate", f"{kbits * 6 // 5}k", "-bufsize", f"{kbits * 2}k"] \
        if kbits else ["-crf", "18"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", *rate, "-pix_fmt", "yuv420p",
            "-shortest", str(path)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                   check=True)
    return path


def webcam_frames(photo: np.ndarray, centre: tuple[float, float], n: int, face: float,
                  soften: float, size=(400, 300), seed: int = 0) -> list[np.ndarray]:
    """A soft webcam: `photo` moving with its face about `face` px across (from a face
    ~130 px wide in the photo, as the astronaut's and Grace Hopper's are), softened by a
    Gaussian of `soften` px, as cheap optics and a small sensor give."""
    frames = moving_frames(photo, centre, n, size=size, zoom=face / 130.0, seed=seed)
    return [cv2.GaussianBlur(f, (0, 0), soften) if soften else f for f in frames]


def two_faces_frames(n: int, size=(480, 360)) -> list[np.ndarray]:
    """The astronaut moving (main person) with a smaller, still Grace Hopper inset."""
    main = moving_frames(astronaut(), FACE_CENTRES["astronaut"], n, size)
    inset = cv2.resize(grace_hopper()[60:380, 96:416], (150, 150), interpolation=cv2.INTER_AREA)
    out = []
    for f in main:
        f = f.copy()
        f[10:160, size[0] - 160:size[0] - 10] = inset
        out.append(f)
    return out


def clip_720p(folder: Path, frames: int) -> Path:
    """The benchmarks' clip: 1280x720, 24 fps, a moving face about 175 px across, audio tone."""
    path = Path(folder) / f"bench_720p_{frames}.mp4"
    if not path.exists():
        encode(path, moving_frames(astronaut(), FACE_CENTRES["astronaut"], frames,
                                   size=(1280, 720), zoom=1.8), fps=24)
    return path


def fist(photo: Path) -> np.ndarray:
    """(h, w, 4) RGBA: the real photo of a fist and wrist against a plain off-white wall
    (npm fingerpose 0.1.0, MIT: `bench.quality.fetch("hand_fist")`) cut out by colour."""
    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    red = cv2.cvtColor(cv2.GaussianBlur(bgr, (0, 0), 1.5), cv2.COLOR_BGR2LAB)[..., 1]
    # 8-bit Lab a*: the wall and its shadows are 128-131, the skin 136 and up
    hand = (red > 134).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hand)
    hand = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    hand = cv2.morphologyEx(hand, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    ys, xs = np.nonzero(hand)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    return np.dstack([rgb[box], hand[box] * 255])


def with_hand(photo: np.ndarray, hand: np.ndarray, bottom_centre: tuple[int, int],
              height: int) -> tuple[np.ndarray, np.ndarray]:
    """(photo with `hand` (RGBA) pasted in front, scaled to `height` px with its bottom
    centre at `bottom_centre`; uint8 0/255 mask of the hand's pixels in the photo)."""
    scale = height / hand.shape[0]
    hand = cv2.resize(hand, (max(1, round(hand.shape[1] * scale)), height),
                      interpolation=cv2.INTER_AREA)
    h, w = hand.shape[:2]
    x0, y0 = bottom_centre[0] - w // 2, bottom_centre[1] - h
    H, W = photo.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    part = hand[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    alpha = part[..., 3:].astype(np.float32) / 255
    out = photo.copy()
    out[cy0:cy1, cx0:cx1] = (part[..., :3] * alpha + out[cy0:cy1, cx0:cx1] * (1 - alpha)
                             ).astype(np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[cy0:cy1, cx0:cx1] = (part[..., 3] > 127) * 255
    return out, mask


def with_glasses(frame: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Dark-framed glasses drawn on a face (68 landmarks): a rim round each eye, the bridge
    over the nose between them, an arm towards each ear. For tests of what a render and the
    judge make of a target in glasses."""
    import cv2
    out = frame.copy()
    width = float(np.linalg.norm(lm[16] - lm[0]))
    thick = max(2, int(round(width / 30)))
    colour = (25, 20, 20)
    for eye in (lm[36:42], lm[42:48]):
        c = eye.mean(0)
        cv2.ellipse(out, (int(c[0]), int(c[1])), (int(0.17 * width), int(0.11 * width)), 0,
                    0, 360, colour, thick, cv2.LINE_AA)
    y = int(min(lm[37, 1], lm[44, 1]))
    cv2.line(out, (int(lm[36:42, 0].mean() + 0.17 * width), y),
             (int(lm[42:48, 0].mean() - 0.17 * width), y), colour, thick, cv2.LINE_AA)
    for eye, ear in ((lm[36:42], lm[0]), (lm[42:48], lm[16])):
        side = 1 if ear[0] > eye[:, 0].mean() else -1
        start = (int(eye[:, 0].mean() + side * 0.17 * width), int(eye[:, 1].mean()))
        cv2.line(out, start, (int(ear[0]), int(ear[1])), colour, thick, cv2.LINE_AA)
    return out
