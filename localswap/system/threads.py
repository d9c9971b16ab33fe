"""How many CPU threads torch should use: the cores actually free, not `os.cpu_count()`.

On a 2-core machine with one busy neighbour, 2 torch threads made 222 training iterations a
minute and 1 thread 544 (alone: 840 with 2): a thread that waits for a core stalls every
parallel region. So a run starts from the cores that are idle now (affinity minus what other
processes keep busy, read from /proc/stat) and `ThreadTuner` keeps checking, by measured step
time, whether one thread more or fewer is faster as neighbours come and go.
"""
from __future__ import annotations

import math
import os
import statistics
import time


def allowed_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as fh:
        values = [float(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)       # idle + iowait
    return sum(values) - idle, sum(values)


def _own_jiffies() -> float:
    """CPU time of this process (all its threads) in clock ticks."""
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def _sample() -> tuple[float, float, float] | None:
    """(busy, total) jiffies of the machine and this process's own, or None (no /proc/stat)."""
    try:
        return _cpu_times() + (_own_jiffies(),)
    except (OSError, ValueError, IndexError):
        return None


def _busy_between(first, second) -> float | None:
    """Cores other processes kept busy between two samples (None if unknown)."""
    if first is None or second is None or second[1] <= first[1]:
        return None
    # /proc/stat counts jiffies summed over all cores: a share of `cores`.
    share = max(0.0, (second[0] - first[0]) - (second[2] - first[2])) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def threads_for(busy: float) -> int:
    """Threads worth running beside `busy` cores of other work: a core counts as taken from
    0.4 of one up (a half-busy neighbour already stalls a thread that shares its core at
    every parallel region)."""
    return max(1, allowed_cores() - max(0, math.ceil(busy - 0.4)))


def busy_elsewhere(seconds: float = 0.25) -> float:
    """Cores kept busy by other processes over a short look, e.g. 1.0 for one spinning
    neighbour. 0 where /proc/stat cannot be read."""
    first = _sample()
    time.sleep(seconds)
    busy = _busy_between(first, _sample())
    return 0.0 if busy is None else busy


class FreeCores:
    """The cores free since the last look, without sleeping: `now()` compares /proc/stat and
    this process's CPU time with the previous call's (None the first time, or where /proc/stat
    cannot be read)."""

    def __init__(self):
        self.last = _sample()

    def now(self) -> int | None:
        sample, last = _sample(), self.last
        self.last = sample
        busy = _busy_between(last, sample)
        return None if busy is None else threads_for(busy)


def free_cores(seconds: float = 0.25) -> int:
    """Threads worth running now: the allowed cores minus those others keep busy (>= 1)."""
    return threads_for(busy_elsewhere(seconds))


class ThreadTuner:
    """Adjusts torch's thread count during a CPU run from measured step times.

    It tries a neighbouring count for a short spell and keeps whichever made steps faster (by
    more than `margin`), so it follows a neighbour that starts or stops. Every `look` seconds
    it reads the cores other processes kept busy since the last look (/proc/stat, no sleep);
    when two looks in a row read the same count and it is not the current one, it tries one
    thread more or fewer that way (one look alone may have caught a blip). A neighbour
    arriving makes two-thread steps some 20x slower, so every second counts: after a step
    twice as slow as those before it, one look that reads a new count is enough. It also
    tries fewer threads when steps get 1.4x slower for a while. A try costs steps (at the
    worse count, and oneDNN builds its kernels again for a new count), so a clearly worse try
    ends after two steps, and after a try that changes nothing the same reading starts no
    other for `wait` seconds, which doubles with each such try up to 8 periods; a new reading
    (the neighbour left, or another came) may try at once. Call `step_done(seconds)` after
    each step.
    """

    def __init__(self, start: int | None = None, most: int | None = None, period: float = 30.0,
                 spell: float = 3.0, margin: float = 0.05, set_threads=None, free_now=None,
                 look: float = 1.0):
        import torch
        # Never more than the process was given (OMP_NUM_THREADS, a caller's set_num_threads).
        self.before = torch.get_num_threads()
        self.most = most or min(allowed_cores(), self.before)
        self.set_threads = set_threads or torch.set_num_threads
        self.threads = max(1, min(self.most, start or free_cores()))
        self.started_with = self.threads
        self.period, self.spell, self.margin, self.look = period, spell, margin, look
        self.recent: list[float] = []          # step times at self.threads since the last try
        self.trying: int | None = None
        self.tried: list[float] = []
        self.wait = period                     # how long a fruitless try blocks its reading
        # Until `next_try` no try for the reading `blocked` (that of the last try that changed
        # nothing); without /proc/stat, no periodic try.
        self.next_try = time.monotonic() + period
        self.blocked: int | None = None
        self.reading: int | None = None        # the free cores the latest look read
        self.next_look = time.monotonic() + look
        self.events: list[tuple] = []          # (monotonic time, "try"/"keep"/"back", threads)
        self.direction = -1
        self.changes = 0
        self.free_now = free_now or FreeCores().now
        self.set_threads(self.threads)

    @property
    def current(self) -> int:
        """The count torch runs with at this moment (the one on trial during a try)."""
        return self.trying or self.threads

    @property
    def disturbed(self) -> bool:
        """Other work took cores during the run (at the start, or it made the tuner move)."""
        return self.started_with < self.most or self.changes > 0

    def step_done(self, seconds: float) -> None:
        now = time.monotonic()
        if self.trying is None:
            # A step twice as slow as those before it: look now, and trust a single look.
            jolt = len(self.recent) >= 5 and seconds > 2 * statistics.median(self.recent[-20:])
            self.recent = (self.recent + [seconds])[-200:]
            if self.most > 1:
                change = -1 if self._slowed() else 0
                if not change and (now >= self.next_look or jolt):
                    self.next_look = now + self.look
                    change = self._free_cores_differ(now, jolt)
                if change:
                    self.direction = change
                    self._start_try()
            return
        self.tried.append(seconds)
        # A spell's worth of steps; or two already more than twice as slow: a clear loser
        # (a try of two threads beside a busy neighbour runs at a twentieth of the speed).
        if (sum(self.tried) >= self.spell and len(self.tried) >= 3) or (
                len(self.tried) >= 2 and min(self.tried) > 2 * self._base()):
            self._end_try(now)

    def _slowed(self) -> bool:
        """Steps suddenly slower (a neighbour arrived?): worth a try now, not at the next look.
        (Not the other way: steps also speed up when oneDNN has rebuilt its kernels after a
        switch, which is no reason to switch back.)"""
        if len(self.recent) < 30:
            return False
        return statistics.median(self.recent[-10:]) > 1.4 * statistics.median(self.recent[:-10])

    def _free_cores_differ(self, now: float, jolt: bool = False) -> int:
        """The way the free cores point from the current count (+1, -1) when this look read
        what the one before did (or the step just ended was a jolt) and the reading is not
        blocked by a fruitless try; else 0. Unknown (no /proc/stat): a try every `wait`
        seconds, the way not looked last time."""
        free = self.free_now()
        if free is None:
            if now < self.next_try:
                return 0
            self.next_try = now + self.wait
            return self.direction
        free = max(1, min(self.most, free))
        way = (free > self.threads) - (free < self.threads)
        changed, self.reading = free != self.reading, free
        if way and changed:
            # A try compares with steps timed since things changed: the slow step that made
            # the jolt, or those until the next look.
            self.recent = self.recent[-1:] if jolt else []
            if not jolt:
                return 0
        if not way or (free == self.blocked and now < self.next_try):
            return 0
        return way

    def _start_try(self) -> None:
        other = self.threads + self.direction
        if not 1 <= other <= self.most:
            self.direction = -self.direction
            other = self.threads + self.direction
        self.events.append((time.monotonic(), "try", other))
        self.trying, self.tried = other, []
        self.set_threads(other)

    def _base(self) -> float:
        """What a try competes with: as many of the latest steps at the current count as the
        try has made (at least 3; the latest are most like now)."""
        return statistics.median(self.recent[-max(3, len(self.tried)):])

    def _end_try(self, now: float) -> None:
        trial = statistics.median(self.tried)
        if trial < self._base() * (1 - self.margin):
            self.threads, self.recent = self.trying, list(self.tried)
            self.changes += 1
            self.wait, self.blocked = self.period, None
            self.events.append((now, "keep", self.threads))
        else:
            self.direction = -self.direction    # next time look the other way
            self.recent = self.recent[-10:]     # the new normal: no retry for the same change
            self.wait = min(2 * self.wait, 8 * self.period)
            self.blocked, self.next_try = self.reading, now + self.wait
            self.events.append((now, "back", self.threads))
        self.set_threads(self.threads)
        self.trying, self.tried = None, []
        self.reading = None                     # the next try needs two fresh looks
