"""The CUDA paths, run here on the CPU through the same code (issue 15): fake CUDA memory
figures for the planner and device mapping, a CPU GradScaler for the fp16 retries, gloo for the
rank-0 plan, and a server process that must never touch CUDA for an estimate. No test relies on
the memory figures of one torch version: the fakes give the figures, the tests check the logic."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch

from localswap import cli, gpu
from localswap.system import cuda_support
from localswap.bench import doctor
from localswap.convert.swapper import half_dtype
from localswap.errors import UserError
from localswap.settings import TrainSettings
from localswap.train import data as data_mod, distributed, planner, spec, trainer
from localswap.train.data import FaceData
from localswap.errors import is_oom
from localswap.train.step import Step, run_with_oom_retry
from model_fixtures import one_torch_thread

ROOT = Path(__file__).resolve().parents[1]
GB = 1024       # MiB
TINY = dict(resolution=64, width=8, batch=4, precision="fp32", lr=3e-4, save_minutes=0.0,
            preview_every=100, save_every=100)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def facesets(tmp_path_factory, faceset_a, faceset_b):
    """Private copies (the trainer caches decoded faces inside the faceset folder)."""
    root = tmp_path_factory.mktemp("cuda_paths")
    return shutil.copytree(faceset_b, root / "b"), shutil.copytree(faceset_a, root / "a")


def fake_cuda(monkeypatch, cards: list[dict]) -> None:
    """torch.cuda as a machine with these cards would answer (figures in MiB)."""
    c = torch.cuda
    monkeypatch.setattr(c, "is_available", lambda: True)
    monkeypatch.setattr(c, "device_count", lambda: len(cards))
    monkeypatch.setattr(c, "mem_get_info", lambda i=0: (cards[i]["free"] * gpu.MiB,
                                                        cards[i]["total"] * gpu.MiB))
    monkeypatch.setattr(c, "memory_reserved", lambda i=0: cards[i].get("reserved", 0) * gpu.MiB)
    monkeypatch.setattr(c, "memory_allocated", lambda i=0: cards[i].get("allocated", 0) * gpu.MiB)
    monkeypatch.setattr(c, "get_device_name", lambda i=0: cards[i]["name"])
    monkeypatch.setattr(c, "get_device_capability", lambda i=0: cards[i]["cc"])


def cuda_dist(index: int = 0, rank: int = 0, world: int = 1) -> distributed.Dist:
    return distributed.Dist(rank, world, torch.device("cuda", index))


# -- 1. the estimate never runs in the server process -----------------------------------------
ESTIMATE = r"""
import json, sys
import torch
touched = []
def guard(name):
    def call(*a, **k):
        touched.append(name)
        raise RuntimeError("the server touched CUDA: torch.cuda." + name)
    return call
for name in ("_lazy_init", "init", "is_available", "device_count", "mem_get_info"):
    setattr(torch.cuda, name, guard(name))

from localswap.swap import speeds
from localswap.swap.estimate import estimate_swap
from localswap.swap.plan import plan_swap
from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
from localswap.workspace import Workspace

root, target, source = sys.argv[1:4]
opts = {"train": {"iterations": 100, "resolution": 64, "width": 8, "batch": 2,
                  "device": "cpu"}, "convert": {"device": "cpu"}}
out = {}
# Speeds stored by earlier runs: read here, nothing measured.
ws = Workspace(root + "/stored")
job = plan_swap([source], target, ws.root / "outputs" / "x.mp4", ws, None,
                TrainSettings(**opts["train"]), ConvertSettings(**opts["convert"]),
                ExtractSettings())
(ws.root / "speeds.json").write_text(json.dumps(
    {kind: {key: {"value": 10.0}} for kind, key in speeds.keys(job).items()}))
out["stored"] = estimate_swap(ws.root, target, [source], opts).basis
# Basic mode (no iterations): Basic's count, and how long it takes here, in words.
basic = dict(opts, train={k: v for k, v in opts["train"].items() if k != "iterations"})
est = estimate_swap(ws.root, target, [source], basic)
out["basic"] = [est.note, dict(est.stages)["train"]]
# Nothing stored: measured in a process of its own, which stores what it measured.
ws = Workspace(root + "/fresh")
out["fresh"] = estimate_swap(ws.root, target, [source], opts).basis
out["stored_after"] = sorted(json.loads((ws.root / "speeds.json").read_text()))
out["touched"] = touched
out["modules"] = [m for m in ("localswap.train.trainer", "localswap.convert.render",
                              "localswap.faces.extract") if m in sys.modules]
print(json.dumps(out))
"""


def test_estimate_measures_in_a_short_lived_process_never_in_the_server(video_a, video_b,
                                                                        tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", ESTIMATE, str(tmp_path), str(video_a),
                          str(video_b)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["stored"] == "measured on earlier runs here"
    from localswap.train.budget import BAR_ITERATIONS
    note, train_s = out["basic"]
    assert train_s == pytest.approx(BAR_ITERATIONS["cpu"] / 10.0)   # stored: 10 it/s
    assert note == (f"Basic: about {round(train_s / 60)} minutes of training on this CPU "
                    f"({BAR_ITERATIONS['cpu']:,} iterations, the count that scored best in "
                    "the time-to-quality benchmark)")
    assert out["fresh"] == "measured just now on a few frames and iterations"
    assert out["stored_after"] == ["convert", "extract", "train"]
    assert out["touched"] == [] and "localswap.train.trainer" not in out["modules"]
    assert "localswap.convert.render" not in out["modules"]


# -- 2, 4, 10. the planner plans from torch's figures for the device training uses ------------
def test_planner_uses_torchs_figures_for_the_training_device(monkeypatch):
    # NVML (PCI order) lists a big card first; torch's device 1 is the small one.
    nvml = gpu.Probe([gpu.DeviceInfo(0, "big", 80 * GB, 79 * GB, "", 0, [9, 0]),
                      gpu.DeviceInfo(1, "small", 8 * GB, 6 * GB, "", 0, [7, 5])])
    monkeypatch.setattr(gpu, "probe", lambda: nvml)
    fake_cuda(monkeypatch, [
        {"name": "small", "total": 8 * GB, "free": 6 * GB, "cc": (7, 5)},
        {"name": "small", "total": 8 * GB, "free": 5 * GB, "cc": (7, 5),
         "reserved": 2 * GB, "allocated": GB // 2}])
    # An earlier job's cached memory in this process counts as free.
    assert gpu.torch_device_info(1).free_mb == 5 * GB + 3 * GB // 2
    plan = spec.plan_for(TrainSettings(), cuda_dist(1), {}, 4000, 512)
    assert plan.device == "cuda" and plan.precision == "fp16"      # 7.5, not NVML's 9.0
    assert plan.est_peak_mb <= 0.85 * (5 * GB + 3 * GB // 2) < plan.budget_mb + 1
    assert plan.budget_mb < 0.85 * 79 * GB / 4

    # A card this torch build has no kernels for: one sentence, and the CPU plan (auto).
    fake_cuda(monkeypatch, [{"name": "GeForce GTX 1080", "total": 8 * GB, "free": 7 * GB,
                             "cc": (6, 1)}])
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90"])
    plan = spec.plan_for(TrainSettings(), cuda_dist(0), {}, 4000, 512)
    assert plan.device == "cpu" and "GTX 1080 (compute capability 6.1) is not supported" \
        in plan.note
    with pytest.raises(UserError, match="not supported by this torch build"):
        spec.plan_for(TrainSettings(device="cuda"), cuda_dist(0), {}, 4000, 512)


def test_kernel_and_driver_sentences():
    problem, driver = cuda_support.kernel_problem, cuda_support.driver_problem
    built = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert problem("RTX 3060", (8, 6), built, "13.0") == ""
    assert problem("RTX 4090", (8, 9), built, "13.0") == ""             # sm_86 runs on 8.9
    assert problem("next", (9, 0), ["sm_80", "compute_80"], "12.1") == ""   # PTX is compiled
    assert "compute capability 9.0" in problem("next", (9, 0), ["sm_80"], "12.1")
    msg = problem("Tesla P100", (6, 0), built, "13.0")
    assert msg.count(".") <= 4 and "sm_75" in msg and "CPU" in msg
    assert "update the driver" in driver("12.4", "13.0")
    assert driver("13.1", "13.0") == driver("12.8", "12.1") == ""


# -- 3. a CPU plan on a CUDA device trains on the CPU ----------------------------------------
def test_a_cpu_plan_trains_on_the_cpu_even_when_torch_offers_cuda(facesets, tmp_path,
                                                                  monkeypatch):
    src, tgt = facesets
    monkeypatch.setattr(distributed, "pick_device", lambda name, local=0: torch.device("cuda", 0))
    monkeypatch.setattr(gpu, "torch_device_info", lambda i=0: gpu.DeviceInfo(
        0, "tiny card", 1 * GB, 200, compute_capability=[8, 6]))
    notes = []
    r = trainer.train(src, tgt, tmp_path / "m", TrainSettings(**TINY, iterations=2),
                      progress=lambda d, t, m="", **i: notes.append(m))
    assert r.iteration == 2 and r.plan["device"] == "cpu"
    assert any("too little for the smallest model" in n for n in notes)
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["device"] == "cpu"


# -- 5, 12. fp16: an OOM after unscale_ retries; overflowed steps are not iterations ----------
def test_fp16_oom_inside_the_scaler_step_retries_at_half_the_batch(facesets, tmp_path):
    src, tgt = facesets
    ctx = doctor.Ctx(torch.device("cpu"), tmp_path, resolution=64, sources=(src, tgt, None))
    check = doctor.check_scaler_oom(ctx, width=8, batch=4)       # a CPU GradScaler
    assert check.status == doctor.OK, check
    assert check.figures["halvings"] == [(4, 2)] and check.figures["final_batch"] == 2


def test_fp16_steps_the_scaler_skips_do_not_count(facesets, tmp_path, monkeypatch):
    src, tgt = facesets
    real = torch.amp.GradScaler
    # A scale far too high: the first steps overflow until GradScaler has lowered it.
    monkeypatch.setattr(torch.amp, "GradScaler", partial(real, init_scale=2.0 ** 24))
    steps, calls = [], []
    original = Step.__call__

    def counted(self, batch, seed):
        result = original(self, batch, seed)
        calls.append(result.overflow)
        return result
    monkeypatch.setattr(Step, "__call__", counted)
    r = trainer.train(src, tgt, tmp_path / "m", TrainSettings(**{
        **TINY, "precision": "fp16", "batch": 2}, iterations=3),
        progress=lambda d, t, m="", **i: steps.append(i) if i.get("event") == "step" else None)
    assert r.iteration == 3 and len(steps) == 3
    assert any(calls) and len(calls) == 3 + sum(calls)
    scale = json.loads((tmp_path / "m" / "manifest.json").read_text())["scaler"]["scale"]
    assert scale < 2.0 ** 24


# -- 6, 11. torchrun: rank 0 plans for all; a long wait for the cache; one GPU per rank -------
def _rank(rank: int, port: int, out: str) -> None:
    import datetime
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.TIMEOUT = datetime.timedelta(seconds=2)   # training collectives: short
    d = distributed.setup("cpu")
    cards = [gpu.DeviceInfo(0, "24 GB card", 24 * GB, 23 * GB, compute_capability=[8, 9]),
             gpu.DeviceInfo(1, "8 GB card", 8 * GB, 6 * GB, compute_capability=[7, 5])]
    gpu.torch_device_info = lambda i=0: cards[i]
    own = planner.plan(cards[rank], faces=4000)
    plan = spec.plan_for(TrainSettings(), cuda_dist(rank, rank, 2), {}, 4000, 512)
    t = time.monotonic()
    if rank == 0:
        time.sleep(4)            # rank 0 builds the faceset caches, longer than TIMEOUT
    distributed.barrier(d, slow=True)
    waited = time.monotonic() - t
    distributed.teardown(d)
    Path(out, f"{rank}.json").write_text(json.dumps(
        {"own": own.to_dict(), "plan": plan.to_dict(), "waited": waited}))


def test_ranks_take_rank0s_plan_for_the_weakest_card_and_wait_long_for_the_cache(tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["own"] != r1["own"]                     # alone, they would disagree
    assert r0["plan"] == r1["plan"]
    assert r0["plan"]["precision"] == "fp16"           # the 7.5 card has no bf16
    assert r0["plan"]["est_peak_mb"] <= 0.85 * 6 * GB
    assert r1["waited"] >= 3.5


def test_one_gpu_per_rank(monkeypatch):
    fake_cuda(monkeypatch, [{"name": "only", "total": 8 * GB, "free": 7 * GB, "cc": (8, 6)}])
    assert distributed.pick_device("auto", 0) == torch.device("cuda", 0)
    with pytest.raises(UserError, match="--nproc_per_node 1"):
        distributed.pick_device("auto", 1)


# -- 7. the estimate under DDP counts gradient buckets and NCCL buffers -----------------------
def test_ddp_estimate_counts_buckets_and_nccl():
    key = ("localswap", 128, 32)
    params = planner.TABLE[key][0]
    one = planner.estimate_mb(*key, 8, "bf16")
    two = planner.estimate_mb(*key, 8, "bf16", world=2)
    assert abs(two - one - (params * 4 / gpu.MiB + planner.DDP_MB)) <= 1
    card = gpu.DeviceInfo(0, "12 GB", 12 * GB, 11 * GB, compute_capability=[8, 6])
    alone, ranked = planner.plan(card), planner.plan(card, world=2)
    assert ranked.est_peak_mb <= ranked.budget_mb
    assert (ranked.resolution, ranked.width, ranked.batch) <= \
        (alone.resolution, alone.width, alone.batch)
    assert ranked.est_peak_mb == planner.estimate_mb(
        ranked.arch, ranked.resolution, ranked.width, ranked.batch, ranked.precision,
        4000 * planner.BYTES_PER_FACE * ranked.resolution ** 2 / gpu.MiB
        if ranked.data_on_device else 0, world=2)


# -- 8. faces kept in host memory go over in small pinned batches -----------------------------
def test_host_faces_are_gathered_into_a_small_pinned_buffer(facesets, monkeypatch):
    _, tgt = facesets
    pinned = []

    def pin(t):
        pinned.append(t.numel())
        return t
    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    data = FaceData(tgt, 64, torch.device("cpu"), on_device=False)
    plain = [data.sample(4, torch.Generator().manual_seed(s)) for s in (1, 2)]
    data.staged = True                  # as for a CUDA device with the faces on the host
    # (copied: on the CPU the batch is the staging buffer itself, reused by the next draw)
    staged = [data.sample(4, torch.Generator().manual_seed(s)).clone() for s in (1, 2)]
    assert all(torch.equal(a, b) for a, b in zip(plain, staged))
    assert pinned == [4 * data_mod.CHANNELS * 64 * 64] and pinned[0] < data.faces.numel()

    class Full:
        def to(self, device):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 6 GiB")
    host = Full()
    kept, note = data_mod._to_device(host, torch.device("cuda"))
    assert kept is host and "kept in host memory" in note


# -- 9. every form of CUDA out-of-memory halves the batch -------------------------------------
def test_every_form_of_out_of_memory_halves_the_batch(monkeypatch):
    def ok(batch, seed):
        return batch
    for error in (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling "
                               "`cublasCreate(handle)`"),
                  RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
                  RuntimeError("CUDA error: out of memory"),
                  torch.cuda.OutOfMemoryError("CUDA out of memory.")):
        def step(batch, seed, error=error):
            if batch > 2:
                raise error
            return ok(batch, seed)
        assert run_with_oom_retry(step, 8, 0) == (2, 2), error
    def broken(batch, seed):
        raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_oom_retry(broken, 8, 0)          # not memory: no retry
    monkeypatch.delattr(torch, "OutOfMemoryError")          # torch 2.4 has only torch.cuda's
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))


# -- 4. the worker hands cached memory back after every stage ---------------------------------
def test_the_worker_releases_cached_gpu_memory_after_every_stage(tmp_path, monkeypatch):
    import multiprocessing

    from localswap.jobs import stages, worker
    from localswap.workspace import Workspace
    released = []
    monkeypatch.setattr(gpu, "release_cached_memory", lambda: released.append(1))
    for name in ("extract_target", "extract_source", "train", "convert"):
        monkeypatch.setitem(stages.STAGE_FUNCTIONS, name, lambda ctx: {})
    w = worker.Worker(Workspace(tmp_path), True, "cpu",
                      worker.Signals(multiprocessing.get_context("spawn")))
    # a swap with a source: all four stages (no sources would be an adaptation, three)
    job = w.store.get(w.store.add("swap", {"model": "m", "target": "t.mp4",
                                           "sources": ["s.mp4"]}))
    w._run(job)
    assert len(released) == 4 and w.store.get(job.id).status == "done"

    monkeypatch.undo()
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    assert gpu.release_cached_memory() and emptied == [1]


# -- 12. conversion uses bf16 where the card has it --------------------------------------------
def test_conversion_arithmetic_follows_the_card(monkeypatch):
    cuda = torch.device("cuda", 0)
    assert half_dtype(cuda, (8, 6)) == torch.bfloat16
    assert half_dtype(cuda, (7, 5)) == torch.float16
    assert half_dtype(cuda, (6, 1)) is None
    monkeypatch.setattr("localswap.convert.swapper.cpu_has_native_bf16", lambda: False)
    assert half_dtype(torch.device("cpu")) is None


# -- doctor -----------------------------------------------------------------------------------
def test_doctor_runs_to_the_end_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: doctor runs its CUDA checks (minutes)")
    assert cli.main(["doctor", "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    for name in doctor.CUDA_CHECKS:
        assert f"{name:<12} {doctor.NO_GPU}" in out, name
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["ok"] and "no GPU checks ran" in report["summary"]
    assert [c["name"] for c in report["checks"]][:3] == ["build", "probe", "plan"]


def test_doctors_gpu_checks_run_through_the_real_code_on_the_cpu(facesets, video_a, tmp_path):
    src, tgt = facesets
    ctx = doctor.Ctx(torch.device("cpu"), tmp_path, resolution=64, width=8, iterations=2,
                     sources=(src, tgt, video_a))
    for check in (doctor.check_train(ctx, "fp32"), doctor.check_two_jobs(ctx),
                  doctor.check_convert(ctx)):
        assert check.status == doctor.OK, check
    assert check.figures["frames"] == 48 and check.figures["faces"] > 40
