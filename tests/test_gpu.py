"""The GPU probe and the training planner: NVML absent here, plans for 2 to 80 GB cards."""
from __future__ import annotations

import json

import pytest

from localswap import cli, gpu
from localswap.train import planner
from localswap.train.memory import measure, saved_bytes

SIZES_GB = (2, 4, 8, 12, 24, 48, 80)


def card(gb: float, capability=(8, 6), free_share=0.95) -> gpu.DeviceInfo:
    total = int(gb * 1024)
    return gpu.DeviceInfo(0, f"test card {gb} GB", total, int(total * free_share), "550.54",
                          3, list(capability) if capability else None)


def test_probe_without_nvml_or_driver_is_a_note_not_a_crash():
    # This machine has nvidia-ml-py but no NVIDIA driver: NVML cannot load its library.
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present here")
    except pynvml.NVMLError:
        pass
    probe = gpu.probe()
    assert probe.devices == [] and "no NVIDIA driver or GPU" in probe.note
    plan = planner.plan(probe)
    assert plan.device == "cpu" and plan.arch == "localswap" and plan.batch >= 1
    assert "no NVIDIA driver" in plan.note and "CPU is slow" in plan.note


def test_gpu_command_prints_probe_and_plan(capsys):
    assert cli.main(["gpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"probe", "plan", "problems"} and out["plan"]["device"] in ("cpu", "cuda")
    assert not out["problems"] or out["probe"]["devices"]     # only about GPUs found
    assert cli.main(["gpu"]) == 0
    assert "training plan: " in capsys.readouterr().out


def test_plans_fit_85_percent_of_free_memory_and_grow_with_it():
    plans = [planner.plan(card(gb), faces=4000) for gb in SIZES_GB]
    for gb, p in zip(SIZES_GB, plans):
        assert p.device == "cuda" and p.precision == "bf16", (gb, p)
        assert p.est_peak_mb <= 0.85 * card(gb).free_mb, (gb, p)
        assert p.batch >= planner.MIN_BATCH and p.resolution in planner.gpu_resolutions()
        assert p.est_peak_mb == planner.estimate_mb(p.arch, p.resolution, p.width, p.batch,
                                                p.precision, _data_mb(p, 4000))
    sizes = [(p.resolution, p.width, p.batch) for p in plans]
    assert sizes == sorted(sizes) and sizes[0] != sizes[-1]
    assert plans[0].resolution <= 128 and plans[-1].resolution == 512
    # Faces smaller than the plan's resolution cap it: upscaled 128 px crops teach nothing.
    assert planner.plan(card(24), max_resolution=128).resolution == 128


def _data_mb(p: planner.Plan, faces: int) -> float:
    # the faceset's faces and the synthetic blinks the trainer adds (train.blink)
    stored = faces * (1 + planner.BLINK_SHARE)
    return stored * planner.BYTES_PER_FACE * p.resolution ** 2 / gpu.MiB if p.data_on_device else 0


def test_precision_follows_the_card_and_user_choices_are_kept():
    assert planner.plan(card(8, (7, 5))).precision == "fp16"       # Turing: fp16 + loss scaling
    assert planner.plan(card(8, (6, 1))).precision == "fp32"       # Pascal
    fp32 = planner.plan(card(8, (6, 1)))
    bf16 = planner.plan(card(8, (8, 6)))
    assert (fp32.resolution, fp32.width) <= (bf16.resolution, bf16.width)
    fixed = planner.plan(card(8), resolution=192, width=48)
    assert (fixed.resolution, fixed.width) == (192, 48) and fixed.batch >= 8
    orig = planner.plan(card(8), arch="original")
    assert (orig.arch, orig.resolution, orig.width) == ("original", 64, 128)
    assert planner.plan(card(8), batch=6).batch == 6


def test_too_little_memory_gives_a_cpu_plan_with_the_reason():
    p = planner.plan(card(1, free_share=0.5))
    assert p.device == "cpu" and "too little for the smallest model" in p.note


def _near(table: int, measured: int, share: float = 0.2) -> bool:
    """Within `share` of each other, or within 1 MiB: what autograd saves for a step changes a
    little between torch versions (requirements allow torch>=2.4; the table is from 2.14)."""
    return abs(table - measured) <= max(share * max(table, measured), 1 << 20)


def test_memory_table_matches_a_fresh_measurement():
    for key in (("localswap", 64, 32), ("original", 64, 128), ("localswap", 128, 32)):
        m = measure(*key)
        params, act32, fix32, act16, fix16 = planner.TABLE[key]
        assert params == m["params"], key              # the architecture's, not torch's
        for name, table in (("act_fp32", act32), ("fixed_fp32", fix32), ("act_half", act16),
                            ("fixed_half", fix16)):
            assert _near(table, m[name]), (key, name, table, m[name])
        # Relations that hold on any torch: 16-bit activations take less room than fp32
        # ones, and a larger picture saves more per sample.
        assert m["act_half"] < m["act_fp32"], key
    assert measure("localswap", 128, 32)["act_fp32"] > 2 * measure("localswap", 64, 32)["act_fp32"]


def test_fake_tensor_count_equals_a_real_run():
    for half in (False, True):
        assert saved_bytes("localswap", 64, 8, 2, half, fake=True) == \
            saved_bytes("localswap", 64, 8, 2, half, fake=False)


def test_step_flops_table_matches_a_fresh_count():
    from localswap.train.flops import step_flops
    for key in (("localswap", 64, 32), ("localswap", 128, 32)):
        assert _near(planner.STEP_FLOPS[key], step_flops(*key), 0.05), key
    # Every rung the planner can pick has its count (TABLE itself also grows at run time with
    # the configurations other tests measure, so compare with the ladder, fixed at import).
    assert set(planner.LADDER) | {("original", 64, 128)} <= set(planner.STEP_FLOPS)
    # One sample is one face of A and one of B: a step's FLOPs grow with the batch exactly.
    assert step_flops("localswap", 64, 8, batch=3) == 3 * step_flops("localswap", 64, 8)
    # More pixels and more channels cost more along the ladder, by a lot from end to end.
    ladder = [planner.STEP_FLOPS[k] for k in reversed(planner.LADDER)]
    assert ladder == sorted(ladder) and ladder[-1] > 500 * ladder[0]


def test_fake_flop_count_equals_a_real_run():
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from localswap.train.flops import step_flops
    from localswap.train.losses import face_loss
    from localswap.train.models import build_model

    torch.manual_seed(0)
    model = build_model("localswap", 64, 8, guided=True)
    x, masks, g = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    with FlopCounterMode(display=False) as counter:
        ra, ma, rb, mb = model(x, x, g, g)
        (face_loss(ra, ma, x, masks) + face_loss(rb, mb, x, masks)).backward()
    assert counter.get_total_flops() == step_flops("localswap", 64, 8, batch=2)
    # backward counted op by op: about twice the forward (no input gradient for the first conv)
    forward = FlopCounterMode(display=False)
    with forward, torch.no_grad():
        ra, ma, rb, mb = model(x, x, g, g)
        face_loss(ra, ma, x, masks) + face_loss(rb, mb, x, masks)
    assert 2.5 < counter.get_total_flops() / forward.get_total_flops() < 3.05
