"""`swap` end to end on the CPU: extract both people, train a tiny model, convert."""
import json

import pytest

from localswap.bench import samples as mb
from localswap import cli, media
from localswap.swap import pipeline, speeds
from localswap.swap.estimate import estimate
from localswap.swap.plan import STAGES, plan_swap
from localswap.errors import UserError
from localswap.settings import ConvertSettings, TrainSettings
from localswap.workspace import Workspace
from model_fixtures import one_torch_thread

TINY = ["--iterations", "4", "--arch", "localswap", "--resolution", "64", "--width", "8",
        "--batch", "4", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def small_clips(tmp_path_factory):
    """Shorter, smaller clips than the session videos: the swap runs every stage on them."""
    d = tmp_path_factory.mktemp("swap_media")
    size = (320, 240)
    a = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 24, size=size, zoom=0.9)
    b = mb.moving_frames(mb.grace_hopper(), mb.FACE_CENTRES["grace_hopper"], 24, size=size,
                         zoom=0.7, seed=1)
    return mb.encode(d / "target.mp4", a, 24), mb.encode(d / "source.mp4", b, 24)


def test_swap_runs_end_to_end_and_estimates_first(small_clips, tmp_path, capsys):
    video_a, video_b = small_clips
    ws_root, out = tmp_path / "ws", tmp_path / "swapped.mp4"
    code = cli.main(["swap", "--source", str(video_b), "--target", str(video_a), "--out",
                     str(out), "--workspace", str(ws_root), "--mask", "hull", *TINY])
    printed = capsys.readouterr().out
    assert code == 0
    # The estimate comes first, one line per stage, from speeds measured just now.
    lines = printed.splitlines()
    first_done = next(i for i, line in enumerate(lines) if line.startswith("extract_target:"))
    head = "\n".join(lines[:first_done])
    for stage in STAGES:
        assert stage in head
    assert "measured just now" in head and "total" in head
    info, src = media.probe(out), media.probe(video_a)
    assert (info.frames, info.has_audio) == (src.frames, True)
    ws = Workspace(ws_root)
    [model] = ws.names("models")
    assert model == "source-on-target"      # source.mp4 on target.mp4, as the app names it
    manifest = json.loads((ws.root / "models" / model / "manifest.json").read_text())
    assert manifest["iteration"] == 4 and manifest["resolution"] == 64
    assert {"extract", "train", "convert"} <= set(speeds.load(ws))
    # The next estimate for the same kind of job comes from the stored speeds, at once.
    job = plan_swap([video_b], video_a, tmp_path / "again.mp4", ws,
                             train=TrainSettings(iterations=10, arch="localswap",
                                                 resolution=64, width=8, batch=4,
                                                 device="cpu"),
                             convert=ConvertSettings(device="cpu"))
    est = estimate(job, ws)
    assert [stage for stage, _ in est.stages] == list(STAGES)
    assert all(est.bases[stage] == "measured on earlier runs here" and seconds > 0
               for stage, seconds in est.stages)
    # Continuing the same model trains only the iterations it lacks.
    again = plan_swap([video_b], video_a, tmp_path / "more.mp4", ws, model=model,
                               train=TrainSettings(iterations=5, device="cpu"))
    assert again.model_dir == ws.root / "models" / model
    result = pipeline.run_stage(again, "extract_target", ws)
    assert result.faces_kept == 0 and result.frames_skipped == src.frames   # already there
    pipeline.run_stage(again, "extract_source", ws)
    trained = pipeline.run_stage(again, "train", ws)
    assert (trained.start_iteration, trained.iteration) == (4, 5)


def test_basic_mode_trains_the_bars_iterations_and_says_how_long(small_clips, tmp_path):
    """No iterations and no time budget = Basic: the iterations after which the recipe
    cleared the quality bar (train/budget.py), shown as minutes on this machine."""
    from localswap.train import budget
    video_a, video_b = small_clips
    ws = Workspace(tmp_path / "ws")
    job = plan_swap([video_b], video_a, tmp_path / "o.mp4", ws,
                             train=TrainSettings(device="cpu"))
    assert job.basic and job.device_kind == "cpu"
    assert job.train.iterations == budget.BAR_ITERATIONS["cpu"] > 1000
    # ... and stops at Basic's time limit on a machine too slow for them (the 25 minutes)
    assert job.train.max_minutes == budget.BASIC_MINUTES
    assert budget.train_seconds(6300, 9.0, job.train.max_minutes) == pytest.approx(700)
    assert budget.train_seconds(6300, 3.0, job.train.max_minutes) == budget.BASIC_MINUTES * 60
    timed = plan_swap([video_b], video_a, tmp_path / "o.mp4", ws,
                               train=TrainSettings(max_minutes=3, device="cpu"))
    assert not timed.basic and timed.train.iterations == budget.UNLIMITED   # the clock decides
    assert budget.train_seconds(timed.train.iterations, 9.0,
                                timed.train.max_minutes) == 180  # not years
    fixed = plan_swap([video_b], video_a, tmp_path / "o.mp4", ws,
                               train=TrainSettings(iterations=50, device="cpu"))
    assert not fixed.basic and fixed.train.iterations == 50
    assert budget.describe(4200, 4.6 * 60, "cpu") == (
        "about 5 minutes of training on this CPU (4,200 iterations, the count that scored "
        "best in the time-to-quality benchmark)")
    assert budget.describe(6300, budget.BASIC_MINUTES * 60, "cpu") == (
        "about 20 minutes of training on this CPU (up to 6,300 iterations: this machine is too "
        "slow for all of them in 20 minutes, so the result will be softer)")


def test_swap_refuses_bad_inputs_before_any_work(video_a, video_b, tmp_path):
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(UserError, match="must be a video"):
        plan_swap([video_b], tmp_path / "photo.png", tmp_path / "o.mp4", ws)
    with pytest.raises(UserError, match="name it .mp4"):
        plan_swap([video_b], video_a, tmp_path / "o.avi", ws)
    with pytest.raises(UserError, match="not found"):
        plan_swap([tmp_path / "missing.mp4"], video_a, tmp_path / "o.mp4", ws)
    with pytest.raises(UserError, match="invalid name"):
        plan_swap([video_b], video_a, tmp_path / "o.mp4", ws, model="bad*name")
    assert ws.names("models") == [] and ws.names("facesets") == []
