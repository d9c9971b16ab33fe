"""`bench --only sharing`: how much of its speed CPU training keeps next to a busy neighbour.

One real training run (the default recipe on the tuning pair's facesets) while a CPU-bound
neighbour process comes and goes: after a warm-up, phases alone and with the neighbour take
turns (alone, neighbour, alone, neighbour, alone). Taking turns inside one run keeps this
host's drifting speed out of the ratio; a neighbour that arrives and leaves mid-run also
checks that the thread tuner follows it. Issue 16's target: training keeps >= 60% of its
solo iterations per minute while the neighbour runs.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

TARGET = 0.6
SPIN = "while True: pass"


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Neighbour:
    """A spinning Python process, paused until `run()`; its CPU seconds from /proc."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", SPIN])
        self.pause()

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def run(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _rate(marks: list[tuple[float, int, int]], start: float, end: float) -> float:
    """Iterations a minute between two times, from (time, iteration, threads) step marks."""
    inside = [m for m in marks if start <= m[0] <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) * 60


def measure(faceset_a, faceset_b, model_dir, settings, phase: float, warmup: float,
            phases: int = 5) -> dict:
    """Train while the neighbour takes turns; per phase its/min (whole and second half), the
    thread count the tuner ended the phase with and the neighbour's cores."""
    from localswap.train.trainer import train
    marks: list[tuple[float, int, int]] = []
    started = threading.Event()
    done = threading.Event()
    spans: list[dict] = []
    neighbour = Neighbour()

    def progress(done_, total, message="", **info):
        if info.get("event") == "step":
            marks.append((time.monotonic(), info["iteration"], info.get("cpu_threads") or 0))
            started.set()

    def conduct():
        try:
            while not started.wait(0.5):     # the first step (data loaded), or a failure
                if done.is_set():
                    return
            time.sleep(warmup)
            for k in range(phases):
                busy = k % 2 == 1
                if busy:
                    neighbour.run()
                t0, c0 = time.monotonic(), neighbour.cpu()
                if done.wait(phase):
                    return
                t1 = time.monotonic()
                spans.append({"neighbour": busy, "start": t0, "end": t1,
                              "neighbour_cores": round((neighbour.cpu() - c0) / (t1 - t0), 2)})
                if busy:
                    neighbour.pause()
        finally:
            done.set()

    conductor = threading.Thread(target=conduct, daemon=True)
    conductor.start()
    try:
        settings = dataclasses.replace(
            settings, max_minutes=(warmup + phase * phases) / 60 + 10, iterations=10 ** 8)
        train(faceset_a, faceset_b, model_dir, settings, progress=progress, cancel=done,
              basic=False)
    finally:
        done.set()
        conductor.join()
        neighbour.close()
    rows = []
    for s in spans:
        mid = (s["start"] + s["end"]) / 2
        last = [m for m in marks if m[0] <= s["end"]]
        rows.append({"neighbour": s["neighbour"], "seconds": round(s["end"] - s["start"], 1),
                     "its_per_min": round(_rate(marks, s["start"], s["end"]), 1),
                     "settled_its_per_min": round(_rate(marks, mid, s["end"]), 1),
                     "threads_at_end": last[-1][2] if last else 0,
                     "threads_settled_after_s": _settled(marks, s["start"], s["end"]),
                     "neighbour_cores": s["neighbour_cores"]})
    return {"phases": rows} | _shares(rows)


def _settled(marks: list[tuple[float, int, int]], start: float, end: float) -> float:
    """Seconds into a phase from which the thread count stayed what it ended with (the
    first step's end when the count changed at once; 0 when it did not change)."""
    before = [m for m in marks if m[0] < start][-1:]
    inside = before + [m for m in marks if start <= m[0] <= end]
    changed = [k for k, m in enumerate(inside) if m[2] != inside[-1][2]] if inside else []
    return round(max(0.0, inside[changed[-1] + 1][0] - start), 1) if changed else 0.0


def _shares(rows: list[dict]) -> dict:
    alone = [r for r in rows if not r["neighbour"]]
    shared = [r for r in rows if r["neighbour"]]
    if not alone or not shared:
        return {"share": None, "settled_share": None}
    out = {}
    for key, name in (("its_per_min", "share"), ("settled_its_per_min", "settled_share")):
        solo = statistics.median(r[key] for r in alone)
        out[name] = round(statistics.median(r[key] for r in shared) / solo, 3) if solo else None
    return out


def section_sharing(ctx: dict) -> dict:
    from localswap.bench.quality import PAIRS, _tiny_pair, prepare
    from localswap.settings import TrainSettings
    if ctx["device"].type != "cpu":
        return {"skipped": "training runs on the GPU; the shared-CPU check is for CPU training"}
    if sys.platform != "linux":
        return {"skipped": "needs /proc and SIGSTOP (Linux)"}
    settings = TrainSettings(device="cpu")
    if ctx["tiny"]:
        prepared = _tiny_pair(ctx["tmp"])
        settings = dataclasses.replace(settings, resolution=64, width=8, batch=2,
                                       precision="fp32")
        phase, warmup, pair = 5.0, 2.0, "tiny (packaged photos)"
    else:
        prepared = prepare(PAIRS["tune"])
        phase, warmup = (30.0, 20.0) if ctx["quick"] else (60.0, 30.0)
        pair = "tune: " + " + ".join(PAIRS["tune"]["source"]) + " -> " + PAIRS["tune"]["target"]
    result = measure(prepared["faceset_source"], prepared["faceset_target"],
                     ctx["tmp"] / "sharing-model", settings, phase, warmup)
    return {"pair": pair, "phase_seconds": phase, "target": TARGET} | result | {
        "meets_target": result["share"] is not None and result["share"] >= TARGET}
