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


def test_free_cores_since_the_last_look_sees_a_busy_neighbour():
    if threads.allowed_cores() < 2:
        pytest.skip("needs 2 cores")
    look = threads.FreeCores()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        look.now()                          # from here on the neighbour spins throughout
        time.sleep(0.5)
        shared = look.now()
    finally:
        spin.kill()
        spin.wait()
    assert shared is not None and shared <= threads.allowed_cores() - 1


class Clock:
    """Step times as the tuner would measure them: `cost[n]` seconds per step at n threads,
    and the free cores /proc/stat would report (`free`)."""

    def __init__(self, cost: dict[int, float], free: int | None = None):
        self.cost, self.threads, self.calls, self.free = cost, None, [], free
        self.steps: dict[int, int] = {}

    def set(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)

    def free_now(self) -> int | None:
        return self.free


def tuner_for(clock: Clock, **kw) -> threads.ThreadTuner:
    kw = {"start": 2, "most": 2, "period": 0.0, "spell": 0.3, "look": 0.0, **kw}
    return threads.ThreadTuner(set_threads=clock.set, free_now=clock.free_now, **kw)


def run(tuner: threads.ThreadTuner, clock: Clock, steps: int) -> None:
    """`steps` steps, then on until a try of the other count has ended (period 0 starts a
    try as soon as there are enough steps to compare with)."""
    def step():
        clock.steps[clock.threads] = clock.steps.get(clock.threads, 0) + 1
        tuner.step_done(clock.cost[clock.threads])
    for _ in range(steps):
        step()
    while tuner.trying is not None:
        step()


def test_tuner_moves_to_the_faster_count_and_back():
    clock = Clock({1: 0.10, 2: 0.25}, free=1)         # a neighbour: 1 thread is faster
    tuner = tuner_for(clock)
    run(tuner, clock, 20)
    assert tuner.threads == 1 and clock.threads == 1 and tuner.changes == 1
    clock.cost, clock.free = {1: 0.10, 2: 0.06}, 2    # the neighbour left
    run(tuner, clock, 40)
    assert tuner.threads == 2 and clock.threads == 2


def test_tuner_keeps_the_count_when_the_other_is_not_faster():
    clock = Clock({1: 0.20, 2: 0.10}, free=1)         # /proc/stat says a core is busy
    tuner = tuner_for(clock)
    run(tuner, clock, 50)
    assert tuner.threads == 2 and tuner.changes == 0
    assert 1 in clock.calls                           # it did try one thread, and went back
    assert clock.threads == 2


def test_tuner_does_not_try_while_the_free_cores_match_its_count():
    """Alone on 2 cores: no periodic try of 1 thread, which would only cost steps."""
    clock = Clock({1: 0.20, 2: 0.10}, free=2)
    tuner = tuner_for(clock)
    run(tuner, clock, 100)
    assert clock.calls == [2] and clock.steps == {2: 100}


def test_each_try_that_changes_nothing_doubles_the_wait_for_the_next():
    """/proc/stat says a core is busy but one thread is slower all the same (a neighbour at low
    priority, say): the tuner keeps its two threads and tries one less and less often."""
    clock = Clock({1: 0.50, 2: 0.10}, free=1)
    tuner = tuner_for(clock, period=100.0)
    waits = []
    for _ in range(5):
        tuner.next_try = 0.0                          # the period is over
        run(tuner, clock, 10)
        assert tuner.threads == 2 and clock.threads == 2 and clock.calls[-2:] == [1, 2]
        waits.append(tuner.wait)
        assert tuner.next_try > time.monotonic() + 0.9 * tuner.wait
    assert waits == [200.0, 400.0, 800.0, 800.0, 800.0]   # doubling, up to 8 periods
    assert [e[1:] for e in tuner.events] == [("try", 1), ("back", 2)] * 5


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
    tuner = tuner_for(clock, period=3600.0)
    run(tuner, clock, 40)
    assert tuner.threads == 2 and clock.calls == [2]          # alone: no try yet
    clock.cost = {1: 0.10, 2: 0.25}                           # the neighbour arrives
    run(tuner, clock, 12)
    assert tuner.threads == 1 and clock.threads == 1 and tuner.changes == 1
    run(tuner, clock, 60)                                     # and settles: no retry loop
    assert clock.calls.count(2) <= 2


def test_a_core_counts_as_taken_from_four_tenths_busy():
    cores = threads.allowed_cores()
    assert threads.threads_for(0.0) == threads.threads_for(0.3) == cores
    assert threads.threads_for(0.5) == threads.threads_for(1.0) == max(1, cores - 1)
    assert threads.threads_for(1.5) == max(1, cores - 2)
    assert threads.threads_for(cores + 3.0) == 1


def test_a_neighbour_seen_by_two_looks_is_followed_without_waiting_a_period():
    """It arrives mid-run and makes two threads only a little slower (not the 1.4x that the
    slowdown rule waits for): the looks at /proc/stat find it, period or not."""
    clock = Clock({1: 0.10, 2: 0.06}, free=2)
    tuner = tuner_for(clock, period=3600.0)
    run(tuner, clock, 40)
    assert clock.calls == [2]
    clock.cost, clock.free = {1: 0.07, 2: 0.08}, 1
    run(tuner, clock, 6)
    assert tuner.threads == 1 and clock.threads == 1 and tuner.changes == 1
    clock.cost, clock.free = {1: 0.10, 2: 0.06}, 2           # and leaves again
    run(tuner, clock, 6)
    assert tuner.threads == 2 and clock.threads == 2 and tuner.changes == 2


def test_one_look_alone_starts_no_try():
    """A blip (a short burst of other work between two looks) is not worth a try."""
    readings = iter([1, 2] * 50)
    clock = Clock({1: 0.20, 2: 0.10})
    tuner = threads.ThreadTuner(start=2, most=2, period=0.0, spell=0.3, look=0.0,
                                set_threads=clock.set, free_now=lambda: next(readings))
    run(tuner, clock, 100)
    assert clock.calls == [2]


def test_a_new_reading_may_try_at_once_after_a_fruitless_try():
    """Four cores, one busy: trying three threads changes nothing, which blocks that reading for
    a long wait; a second neighbour (a new reading) is tried at once all the same."""
    clock = Clock({2: 0.30, 3: 0.40, 4: 0.10}, free=3)
    tuner = threads.ThreadTuner(start=4, most=4, period=3600.0, spell=0.3, look=0.0,
                                set_threads=clock.set, free_now=clock.free_now)
    run(tuner, clock, 10)
    assert clock.calls == [4, 3, 4] and tuner.threads == 4
    run(tuner, clock, 50)
    assert clock.calls == [4, 3, 4]                          # the same reading: blocked
    clock.cost, clock.free = {2: 0.30, 3: 0.15, 4: 0.40}, 2
    run(tuner, clock, 6)
    assert clock.calls[:4] == [4, 3] * 2 and tuner.threads == 3


def test_one_jolting_step_and_one_look_are_enough_to_try():
    """A neighbour arriving makes two-thread steps ~20x slower: the step that ends twice as
    slow as those before it makes the tuner look at once and try on that single reading, so
    only one such step is paid (no period, no look interval, no second look)."""
    clock = Clock({1: 0.10, 2: 0.06}, free=2)
    tuner = tuner_for(clock, period=3600.0, look=3600.0)
    run(tuner, clock, 20)
    clock.steps.clear()
    clock.cost, clock.free = {1: 0.10, 2: 1.20}, 1
    run(tuner, clock, 1)
    assert tuner.threads == 1 and clock.steps[2] == 1 and tuner.changes == 1


def test_a_try_that_is_clearly_worse_ends_after_two_steps():
    """Trying two threads beside a busy neighbour: each step ~20x slower. The try ends after
    two such steps instead of a whole spell."""
    clock = Clock({1: 0.10, 2: 2.0}, free=1)
    tuner = tuner_for(clock, start=1, spell=30.0, period=3600.0)
    clock.free = 2                                     # /proc/stat misleads: 2 look free
    run(tuner, clock, 10)
    assert tuner.threads == 1 and clock.steps[2] == 2 and clock.calls == [1, 2, 1]
