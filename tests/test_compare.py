"""The before/after clip (moviepy): original | swapped side by side, audio kept, offered by the
job view for download."""
from __future__ import annotations

import shutil


def test_comparison_clip_is_side_by_side_with_audio(video_a, tmp_path):
    from localswap import media
    from localswap.convert.compare import comparison_clip
    src = media.probe(video_a)
    out = comparison_clip(video_a, video_a, tmp_path / "cmp.mp4", height=180)
    info = media.probe(out)
    assert info.codec.startswith("h264") and info.has_audio
    assert info.height == 180 and abs(info.width - 2 * round(180 * src.width / src.height)) <= 2
    assert abs(info.frames - src.frames) <= 1
    assert not list(tmp_path.glob(".*partial*"))


def test_job_view_offers_the_clip_of_a_finished_job(video_a, tmp_path):
    from localswap import media
    from localswap.jobs.runner import Runner
    from localswap.jobs.snapshot import Snapshots
    from localswap.jobs.store import DONE
    from localswap.ui.context import Context
    from localswap.ui.job_files import compare_clip
    from localswap.workspace import Workspace
    ws = Workspace(tmp_path / "ws")
    shutil.copy(video_a, ws.root / "uploads" / "t.mp4")
    shutil.copy(video_a, ws.root / "outputs" / "swap-1.mp4")
    runner = Runner(ws)
    job = runner.store.add("quick_swap", {"target": "uploads/t.mp4", "model": "m"}, "t")
    runner.store.update(job, status=DONE, result={"output": "outputs/swap-1.mp4"})
    ctx = Context(ws, runner, Snapshots(runner.store))
    update = compare_clip(ctx, job)
    path = ws.root / "outputs" / "swap-1-before-after.mp4"
    assert update["value"] == str(path) and update["visible"] is True
    assert media.probe(path).has_audio
    runner.store.close()


def test_timelapse_video_of_the_previews(tmp_path):
    import numpy as np

    from localswap import media
    from localswap.convert.compare import timelapse_clip
    paths = []
    for k in range(6):
        p = tmp_path / f"p{k}.png"
        media.write_image(p, np.full((128, 192, 3), 40 * k, np.uint8))
        paths.append(p)
    media.write_image(paths[-1], np.zeros((130, 190, 3), np.uint8))    # another size: fitted
    info = media.probe(timelapse_clip(paths, tmp_path / "t.mp4", fps=4))
    assert info.codec.startswith("h264") and (info.width, info.height) == (192, 128)
    assert info.frames == 6
