"""The trainer end to end on real faces: a tiny 64 px model, a few dozen iterations."""
from __future__ import annotations

import json
import re
import shutil
import threading

import cv2
import pytest
import torch
from safetensors.torch import load_file

from localswap import cli
from localswap.errors import UserError
from localswap.settings import TrainSettings
from localswap.train import checkpoint
from localswap.train.augment import AugmentSettings
from localswap.train.data import FaceData
from localswap.train.models import build_model
from localswap.train.step import Step, run_with_oom_retry
from localswap.train import distributed
from localswap.train.trainer import Trainer, train
from model_fixtures import one_torch_thread

TINY = dict(resolution=64, width=8, batch=4, precision="fp32", device="cpu", lr=3e-4,
            save_minutes=0.0, preview_seconds=0.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a small shared CPU, two threads spin-wait on each other (10x slower
    under load, measured)."""
    with one_torch_thread():
        yield


def tiny(**kw) -> TrainSettings:
    return TrainSettings(**{**TINY, **kw})


@pytest.fixture(scope="module")
def facesets(tmp_path_factory, faceset_a, faceset_b):
    """Private copies (the trainer caches decoded faces inside the faceset folder)."""
    root = tmp_path_factory.mktemp("train")
    return shutil.copytree(faceset_b, root / "b"), shutil.copytree(faceset_a, root / "a")


@pytest.fixture(scope="module")
def trained(facesets, tmp_path_factory):
    """40 iterations with progress events recorded; shared by the checks below."""
    src, tgt = facesets
    model = tmp_path_factory.mktemp("model") / "m"
    events = []
    result = train(src, tgt, model, tiny(iterations=40, preview_every=10, save_every=20),
                   progress=lambda done, total, message="", **info: events.append(
                       (done, total, message, info)))
    return model, result, events


def test_a_few_dozen_iterations_reduce_the_loss(trained):
    model, result, _ = trained
    assert result.stopped == "target" and result.iteration == 40 and result.start_iteration == 0
    history = json.loads((model / "manifest.json").read_text())["loss_history"]
    assert [h[0] for h in history] == [10, 20, 30, 40]
    first, last = history[0][1] + history[0][2], history[-1][1] + history[-1][2]
    assert last < 0.8 * first, history


def test_previews_progress_and_manifest(trained):
    model, result, events = trained
    previews = sorted((model / "previews").glob("preview_*.png"))
    assert [p.name for p in previews] == [f"preview_{i:08d}.png" for i in (10, 20, 30, 40)]
    img = cv2.imread(str(model / "preview.png"))
    assert img.shape[0] == 6 * 64 and img.shape[1] > 6 * 64          # rows A..B>A, 6 faces
    assert result.preview == str(previews[-1])
    steps = [info for _, _, _, info in events if info.get("event") == "step"]
    assert len(steps) == 40 and steps[-1]["iteration"] == 40
    for key in ("loss_a", "loss_b", "it_s", "eg_s", "batch"):
        assert isinstance(steps[-1][key], (int, float)) and steps[-1][key] > 0
    assert steps[-2]["eta"] > 0 and steps[-1]["preview"].endswith("preview_00000040.png")
    assert all(total == 40 for _, total, _, _ in events)
    assert any("plan: localswap 64 px, width 8" in m for _, _, m, _ in events)
    manifest = json.loads((model / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("arch", "resolution", "width", "face_type", "iteration")} \
        == {"arch": "localswap", "resolution": 64, "width": 8, "face_type": "face",
            "iteration": 40}
    assert manifest["source"] == "b" and manifest["target"] == "a"
    assert manifest["learns_mask"] and manifest["plan"]["device"] == "cpu"
    assert (model / "backup" / "manifest.json").is_file()
    # the source's sharp crops travel with the model (convert.detail)
    bank = json.loads((model / "detail" / "bank.json").read_text())
    assert bank["face_type"] == "face" and 0 < len(bank["faces"]) <= 96
    assert all((model / "detail" / f["image"]).is_file() for f in bank["faces"])


def test_conversion_loads_what_the_trainer_wrote(trained):
    from localswap.convert.swapper import load_model
    model, _, _ = trained
    loaded, manifest = load_model(model)
    saved = load_file(model / "model.safetensors")
    assert manifest["iteration"] == 40 and loaded.decoder_b.mask is not None
    assert all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())


def test_resume_continues_exactly(facesets, tmp_path):
    src, tgt = facesets
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    s = dict(preview_every=3, save_every=3)
    train(src, tgt, straight, tiny(iterations=10, **s))
    # Stopped at 6 of the same target of 10 (as a crash or a cancel leaves it): the learning
    # rate schedule follows the target, so the resumed run replays the straight one.
    done = []
    first = train(src, tgt, resumed, tiny(iterations=10, **s),
                  lambda d, t, m="", **i: done.append(d), cancel=lambda: bool(done) and
                  done[-1] >= 6)
    # A save cut off by kill -9 leaves hidden temp files; the next run clears them.
    leftovers = [resumed / ".model.safetensors.k1ll3d.tmp",
                 resumed / "backup" / ".optimizer.safetensors.k1ll3d.tmp"]
    for p in leftovers:
        p.write_bytes(b"half a checkpoint")
    second = train(src, tgt, resumed, tiny(iterations=10, **s))
    assert not any(p.exists() for p in leftovers)
    assert first.iteration == 6 and second.start_iteration == 6 and second.iteration == 10
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(straight / name), load_file(resumed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (straight, resumed))
    assert ma["loss_history"] == mb["loss_history"] and ma["iteration"] == mb["iteration"] == 10
    # Nothing to do at the target; a setting fixed at creation is refused, in words.
    assert train(src, tgt, resumed, tiny(iterations=10)).stopped == "done"
    with pytest.raises(UserError, match="--resolution 96 cannot change"):
        train(src, tgt, resumed, tiny(iterations=12, resolution=96))
    with pytest.raises(UserError, match="--width 16 cannot change"):
        train(src, tgt, resumed, tiny(iterations=12, width=16))


def test_a_truncated_checkpoint_is_detected_and_the_backup_used(facesets, tmp_path):
    src, tgt = facesets
    model = tmp_path / "m"
    train(src, tgt, model, tiny(iterations=8, preview_every=4, save_every=4))
    backup_it = json.loads((model / "backup" / "manifest.json").read_text())["iteration"]
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 3])
    result = train(src, tgt, model, tiny(iterations=10, preview_every=4, save_every=4))
    assert result.start_iteration == backup_it > 0 and result.iteration == 10
    assert any("damaged" in n and "backup" in n for n in result.notes)
    assert checkpoint.load(model).manifest["iteration"] == 10      # the main one is whole again


def test_weights_only_model_continues_and_foreign_folders_are_left_alone(trained, facesets,
                                                                         tmp_path):
    src, tgt = facesets
    model, result, _ = trained
    imported = tmp_path / "imported"           # what a library import without optimizer holds
    imported.mkdir()
    shutil.copy(model / "model.safetensors", imported)
    manifest = json.loads((model / "manifest.json").read_text())
    for key in ("files", "width", "loss_history"):
        del manifest[key]
    (imported / "manifest.json").write_text(json.dumps(manifest))
    more = train(src, tgt, imported, tiny(iterations=result.iteration + 2))
    assert more.start_iteration == 40 and more.iteration == 42
    assert any("state started afresh" in n for n in more.notes)
    stray = tmp_path / "stray"                 # weights but no manifest: refused, untouched
    stray.mkdir()
    shutil.copy(model / "model.safetensors", stray)
    before = (stray / "model.safetensors").read_bytes()
    with pytest.raises(UserError, match="no readable manifest"):
        train(src, tgt, stray, tiny(iterations=5))
    assert (stray / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in stray.iterdir()) == ["model.safetensors"]


def test_cancel_time_budget_and_plateau_stop_training(facesets, tmp_path):
    src, tgt = facesets
    stop = threading.Event()

    def progress(done, total, message="", **info):
        if done >= 3:
            stop.set()
    result = train(src, tgt, tmp_path / "c", tiny(iterations=50), progress, cancel=stop)
    assert result.stopped == "cancel" and result.iteration == 3
    assert checkpoint.load(tmp_path / "c").manifest["iteration"] == 3   # saved on the way out
    result = train(src, tgt, tmp_path / "f", tiny(iterations=50), cancel=lambda: True)
    assert result.stopped == "cancel" and result.iteration == 0
    saves = []
    result = train(src, tgt, tmp_path / "t", tiny(iterations=100_000, max_minutes=0.05,
                                                  save_every=10 ** 6, save_minutes=0.01),
                   lambda d, t, m="", **i: saves.append(d) if i.get("event") == "save" else 0)
    assert result.stopped == "time" and 1 <= result.iteration < 100_000
    assert (f"the 0.05-minute limit ended training at iteration {result.iteration:,} of "
            "100,000") in result.notes
    assert 3.0 <= result.seconds < 30.0
    # Saved at the start, every 0.6 s by the clock, and at the end.
    assert saves[0] == 0 and saves[-1] == result.iteration and len(saves) >= 4
    # A time budget alone: no iteration total to show, the time left in the message instead.
    seen = []
    result = train(src, tgt, tmp_path / "m", tiny(iterations=0, max_minutes=0.03),
                   lambda d, t, m="", **i: seen.append((t, m, i.get("event"), i.get("fraction"))))
    assert result.stopped == "time" and result.iteration >= 1
    assert {t for t, _, _, _ in seen} == {0}
    assert any(e == "step" and m.endswith(" left") for _, m, e, _ in seen)
    # ... and the share of the budget spent, for the web app's bar (it stayed at 0%).
    shares = [f for _, _, e, f in seen if e == "step"]
    assert shares == sorted(shares) and 0 < shares[0] < shares[-1] <= 1
    result = train(src, tgt, tmp_path / "p", tiny(iterations=500, preview_every=1,
                                                  plateau=0.999))
    assert result.stopped == "plateau" and 8 <= result.iteration < 500
    assert result.plateau["remaining"] < 0.999 and "further improvement" in result.notes[-1]


def _real_step(facesets, batch_note=None):
    src, tgt = facesets
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model("localswap", 64, 8, guided=True, hides=True)     # as trained by default
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = Step(model, opt, FaceData(tgt, 64, cpu), FaceData(src, 64, cpu), cpu, "fp32",
                AugmentSettings())
    return model, opt, step


def test_non_finite_loss_skips_the_step_then_reloads_then_gives_up(facesets, tmp_path):
    model, opt, step = _real_step(facesets)
    with torch.no_grad():
        model.decoder_a.rgb.weight[0, 0, 0, 0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = step(4, seed=1)
    assert not result.applied and result.loss_a != result.loss_a          # NaN
    assert all(torch.equal(before[k], v, ) or k == "decoder_a.rgb.weight"
               for k, v in model.state_dict().items())
    assert not opt.state                                                  # Adam never stepped
    # In the trainer: a poisoned checkpoint keeps failing; skip, reload, and finally stop.
    src, tgt = facesets
    folder = tmp_path / "nan"
    train(src, tgt, folder, tiny(iterations=2))
    loaded = checkpoint.load(folder)
    model.load_state_dict(loaded.model)
    with torch.no_grad():
        model.decoder_a.rgb.weight.fill_(float("nan"))
    opt = torch.optim.Adam(model.parameters())
    opt.load_state_dict(loaded.optimizer)
    checkpoint.save(folder, model, opt, loaded.manifest)
    notes = []
    with pytest.raises(UserError, match="diverged"):
        train(src, tgt, folder, tiny(iterations=10),
              progress=lambda d, t, m="", **i: notes.append(m))
    assert sum("step skipped" in n for n in notes) == 12
    assert sum("reloaded the last checkpoint (iteration 2)" in n for n in notes) == 3


def test_cuda_out_of_memory_halves_the_batch_and_continues(facesets):
    model, opt, step = _real_step(facesets)
    before = model.decoder_b.rgb.weight.detach().clone()
    tried, halvings = [], []

    def step_that_needs_little_memory(batch, seed):
        tried.append(batch)
        if batch > 2:
            torch.empty(0).new_zeros(1)   # the real step would allocate here
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step(batch, seed)
    result, batch = run_with_oom_retry(step_that_needs_little_memory, 8, 0,
                                       lambda old, new: halvings.append((old, new)), opt)
    assert batch == 2 and tried == [8, 4, 2] and halvings == [(8, 4), (4, 2)]
    assert result.applied and not torch.equal(before, model.decoder_b.rgb.weight)

    def never_fits(batch, seed):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(UserError, match="even at batch 1"):
        run_with_oom_retry(never_fits, 4, 0)


def test_cli_train_and_refusal(facesets, tmp_path, capsys):
    src, tgt = facesets
    args = ["train", "--source", str(src), "--target", str(tgt), "--model", str(tmp_path / "m"),
            "--iterations", "3", "--resolution", "64", "--width", "8", "--batch", "2",
            "--device", "cpu", "--precision", "fp32", "--json"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iteration"] == 3 and out["stopped"] == "target" and out["batch"] == 2
    args[args.index("--resolution") + 1] = "128"
    args[args.index("--iterations") + 1] = "5"
    assert cli.main(args) == 2
    assert "cannot change once a model exists" in capsys.readouterr().err


def test_a_slow_run_shows_a_preview_by_the_clock(facesets, tmp_path):
    """Previews come every preview_every iterations, and at least every preview_seconds."""
    src, tgt = facesets
    result = train(src, tgt, tmp_path / "p", tiny(iterations=6, preview_every=10 ** 6,
                                                  preview_seconds=1e-3, sharpen=0.5))
    previews = sorted((tmp_path / "p" / "previews").glob("preview_*.png"))
    assert [p.name for p in previews] == [f"preview_{i:08d}.png" for i in range(1, 7)]
    assert result.preview == str(previews[-1])


def test_a_finite_divergence_goes_back_to_the_last_good_state_at_half_the_rate(facesets,
                                                                               tmp_path):
    """Too high a learning rate can saturate a decoder without any NaN (measured at 96 px with
    lr 1e-3: the loss doubled and stayed). The fault is made here the way it looks: at
    iteration 95 decoder A's output layer is scaled up until its sigmoid saturates."""
    src, tgt = facesets
    notes, losses = [], {}

    def progress(done, total, message="", **info):
        notes.append(message)
        if info.get("event") == "step":
            losses.setdefault(info["iteration"], info["loss_a"])    # before any rollback
            if info["iteration"] == 95 and not any("diverged" in n for n in notes):
                with torch.no_grad():
                    trainer.model.decoder_a.rgb.weight.mul_(300)
                    trainer.model.decoder_a.rgb.bias.fill_(30)

    d = distributed.setup("cpu")
    trainer = Trainer(src, tgt, tmp_path / "m", tiny(iterations=140, preview_every=10,
                                                     save_every=1000), progress, None, d)
    try:
        result = trainer.run()
    finally:
        distributed.teardown(d)
    backs = [n for n in notes if n.startswith("training diverged at iteration")]
    # found at the first history point whose average the fault dominates (100 or 110), and
    # taken back to a point before it
    assert len(backs) == 1 and re.match(r"training diverged at iteration (100|110) .* back to "
                                        r"iteration [1-9]0, learning rate halved to "
                                        r"0\.00015$", backs[0])
    # (the rollback happens before iteration 100 is reported: its first report is after it)
    assert min(losses[i] for i in range(96, 100)) > 1.3 * losses[90]   # the fault took hold
    assert result.iteration == 140 and losses[140] < losses[96] / 1.2   # and is gone
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["lr"] == pytest.approx(1.5e-4)
    # resumed with the automatic rate, the model keeps the one it had come down to
    train(src, tgt, tmp_path / "m", tiny(iterations=150, lr=0.0, preview_every=10))
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["lr"] == \
        pytest.approx(1.5e-4)
    its = [p[0] for p in manifest["loss_history"]]              # no point from the lost stretch
    assert its == sorted(set(its)) and its[-1] == 140


def _bar_states(stderr: str) -> list[str]:
    """Each state tqdm drew of the 'train' bar (it redraws in place with carriage returns)."""
    return [s.strip() for s in re.split(r"[\r\n]", stderr) if s.strip().startswith("train:")]


def test_the_cli_bar_of_a_continued_model_counts_this_run(facesets, tmp_path):
    """A continued model's bar read 'iteration 285 of 578' as 49%: it counted from 0. The
    real `python -m localswap train`, run twice on one model: the second bar counts from
    where the run started (its share, rate and ETA are this run's) and names the model's
    iteration beside it."""
    import os
    import subprocess
    import sys
    src, tgt = facesets
    model = tmp_path / "m"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}

    def run(iterations: int) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-m", "localswap", "train", "--source", str(src), "--target",
             str(tgt), "--model", str(model), "--iterations", str(iterations), "--arch",
             "localswap", "--resolution", "64", "--width", "8", "--batch", "2", "--device",
             "cpu", "--precision", "fp32", "--preview-every", "1000", "--save-every", "1000"],
            capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        return _bar_states(out.stderr)

    first = run(4)
    assert first and re.search(r"100%.*\b4/4\b", first[-1]), first
    again = run(10)
    drawn = [re.search(r"train:\s+(\d+)%\|.*?\|\s*(\d+)/(\d+) \[.*?iteration (\d+) of (\d+)", s)
             for s in again]
    drawn = [tuple(int(v) for v in m.groups()) for m in drawn if m]
    assert drawn, again
    for share, n, total, it, of in drawn:
        assert (total, of) == (6, 10), again            # this run: 6 of the model's 10
        assert n == it - 4, again                       # counted from iteration 4
        assert abs(share - 100 * n / total) < 1, again
    assert drawn[0][1] == 0 and drawn[-1][1:4] == (6, 6, 10), drawn
    # its rate is this run's 6 iterations over the seconds the bar shows (whole seconds)
    clock = re.search(r"\[(\d+):(\d+)<[^,]*,\s*([\d.]+)(it/s|s/it)", again[-1])
    assert clock, again[-1]
    minutes, seconds, rate, unit = clock.groups()
    elapsed = 60 * int(minutes) + int(seconds)
    took = 6 / float(rate) if unit == "it/s" else 6 * float(rate)
    assert elapsed - 0.05 <= took < elapsed + 1.05, again[-1]
    assert not any(re.search(r"\b(4|10)/10\b", s) for s in again), again
