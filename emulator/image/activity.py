"""What the device's processors do over time: busy cores, load averages, die temperature and energy.

Work (a net-run) is the device's only load: while it runs it keeps its cores busy and adds its
unit's heat. Every quantity is the integral of that piecewise-constant input, advanced in closed
form at each change and when read, so readings depend on the clock alone: a test that drives the
clock (`Activity(clock=...)`) gets exact values, and reading never disturbs them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from emulator.image import thermal

LOAD_TAUS_S = (60.0, 300.0, 900.0)  # /proc/loadavg's 1, 5 and 15 minute averages


@dataclass(eq=False)
class Work:
    """One program's share of the device: the cores it keeps busy, its unit's extra heat, its memory
    (kB, as /proc/<pid>/status names them) and the core-seconds it has used."""

    pid: int | None
    cores: frozenset[int]
    heat: float
    memory: dict[str, int] = field(default_factory=dict)
    busy_s: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """The device's activity at one moment (seconds since boot)."""

    uptime: float
    busy: tuple[float, ...]  # seconds each core has been busy
    temperature: float  # the die's, °C
    loadavg: tuple[float, ...]  # 1, 5 and 15 minutes
    load_heat: float  # heat of the work running now (idle heat excluded)
    load_heat_s: float  # its integral since boot
    running: tuple[Work, ...]

    def idle(self, core: int) -> float:
        return self.uptime - self.busy[core]

    def is_busy(self, core: int) -> bool:
        return any(core in w.cores for w in self.running)


class Activity:
    def __init__(self, cores: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cores = cores
        self.clock = clock
        self._lock = threading.Lock()
        self.boot = self._last = clock()
        self._busy = [0.0] * cores
        self._works: list[Work] = []
        self._temperature = thermal.idle_temperature()
        self._loadavg = [0.0, 0.0, 0.0]
        self._load_heat_s = 0.0

    def _load_heat(self) -> float:
        busy = len(set().union(*(w.cores for w in self._works)))
        return busy / self.cores + sum(w.heat for w in self._works)

    def _advance(self) -> float:
        """Integrate up to now with the input in force since the last change; returns now."""
        now = self.clock()
        dt = now - self._last
        if dt > 0:
            for core in set().union(*(w.cores for w in self._works)):
                self._busy[core] += dt
            for work in self._works:
                work.busy_s += dt * len(work.cores)
            heat = self._load_heat()
            self._temperature = thermal.approach(self._temperature, thermal.IDLE_HEAT + heat, dt)
            self._load_heat_s += heat * dt
            threads = sum(len(w.cores) for w in self._works)
            self._loadavg = [threads + (avg - threads) * math.exp(-dt / tau)
                             for avg, tau in zip(self._loadavg, LOAD_TAUS_S, strict=True)]
            self._last = now
        return now

    @contextmanager
    def working(self, work: Work) -> Iterator[Work]:
        """`work` keeps its cores busy for as long as the block runs."""
        with self._lock:
            self._advance()
            self._works.append(work)
        try:
            yield work
        finally:
            with self._lock:
                self._advance()
                self._works.remove(work)

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._advance()
            return Snapshot(now - self.boot, tuple(self._busy), self._temperature, tuple(self._loadavg),
                            self._load_heat(), self._load_heat_s, tuple(self._works))
