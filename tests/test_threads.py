"""Thread count from the cores actually free: a real busy neighbour, and the tuner's rule on
measured step times."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from localswap.system import threads
def test_busy_neighbour_is_seen_and_leaves_fewer_threads():
    if threads.allowed_cores() < 2:
        pytest.skip("needs 2 cores")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = threads.busy_elsewhere(0.5)
        free = threads.free_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy >= 0.8                      # one spinning process is about one core
    assert free <= threads.allowed_cores() - 1


class Clock:
    """Step times as the tuner would measure them: `cost[n]` seconds per step at n threads."""

    def __init__(self, cost: dict[int, float]):
        self.cost, self.threads, self.calls = cost, None, []

    def set(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)


def run(tuner: threads.ThreadTuner, clock: Clock, steps: int) -> None:
    """`steps` steps, then on until a try of the other count has ended (period 0 starts a
    try as soon as there are enough steps to compare with)."""
    for _ in range(steps):
        tuner.step_done(clock.cost[clock.threads])
    while tuner.trying is not None:
        tuner.step_done(clock.cost[clock.threads])


def test_tuner_moves_to_the_faster_count_and_back():
    clock = Clock({1: 0.10, 2: 0.25})                 # a neighbour: 1 thread is faster
    tuner = threads.ThreadTuner(start=2, most=2, period=0.0, spell=0.3, set_threads=clock.set)
    run(tuner, clock, 20)
    assert tuner.threads == 1 and clock.threads == 1 and tuner.changes == 1
    clock.cost = {1: 0.10, 2: 0.06}                   # the neighbour left
    run(tuner, clock, 40)
    assert tuner.threads == 2 and clock.threads == 2


def test_tuner_keeps_the_count_when_the_other_is_not_faster():
    clock = Clock({1: 0.20, 2: 0.10})
    tuner = threads.ThreadTuner(start=2, most=2, period=0.0, spell=0.3, set_threads=clock.set)
    run(tuner, clock, 50)
    assert tuner.threads == 2 and tuner.changes == 0
    assert 1 in clock.calls                           # it did try one thread, and went back
    assert clock.threads == 2


def test_tuner_never_exceeds_what_the_process_was_given():
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tuner = threads.ThreadTuner()
        assert tuner.most == 1 and tuner.threads == 1
    finally:
        torch.set_num_threads(before)


def test_tuner_reacts_at_once_when_steps_slow_down():
    """A neighbour arriving mid-run: the tuner tries fewer threads without waiting a period."""
    clock = Clock({1: 0.10, 2: 0.06})
    tuner = threads.ThreadTuner(start=2, most=2, period=3600.0, spell=0.3,
                                set_threads=clock.set)
    run(tuner, clock, 40)
    assert tuner.threads == 2 and clock.calls == [2]          # alone: no try yet
    clock.cost = {1: 0.10, 2: 0.25}                           # the neighbour arrives
    run(tuner, clock, 12)
    assert tuner.threads == 1 and clock.threads == 1 and tuner.changes == 1
    run(tuner, clock, 60)                                     # and settles: no retry loop
    assert clock.calls.count(2) <= 2
