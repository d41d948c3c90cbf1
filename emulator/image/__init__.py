"""The device image made from a profile: what a booted phone of that kind shows its shell user.

Properties (props), the silicon (hardware: cores, clocks), what the processors do over time
(activity, thermal: busy cores, heat, throttling, battery), the virtual files that show it
(procfs, sysfs, served by the Sandbox through tree), the log buffer logcat reads (logbuf) and the
settings provider (settings). The programs that read them (logcat, dumpsys, settings, taskset) are
in emulator.tools. One DeviceImage per EmulatedDevice.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from deploy.profiles import Profile
from emulator.image import procfs, sysfs, thermal
from emulator.image.activity import Activity, Work
from emulator.image.hardware import soc_for
from emulator.image.logbuf import LogBuffer
from emulator.image.props import build_props
from emulator.image.settings import Settings, default_settings
from emulator.image.tree import VirtualTree

# What a process that measures nothing has in /proc/<pid>/status (kB): a small native binary.
SMALL_PROCESS = {"VmPeak": 10_812, "VmSize": 10_812, "VmHWM": 3_104, "VmRSS": 3_104}


class DeviceProcess(Protocol):
    """An entry of the shell's process table (emulator.shell.procs.Process), as the image reads it."""

    pid: int
    ppid: int
    cmdline: str
    started: float  # Unix time
    cancel: threading.Event  # its token: a program's ProgramContext.cancel; `.parent` is its starter's


@dataclass(frozen=True)
class ProcessView:
    """A device process as /proc and dumpsys show it."""

    pid: int
    ppid: int
    cmdline: str
    started: float
    mask: int  # CPU affinity
    work: Work | None  # what it is computing, for net-run

    @property
    def name(self) -> str:
        """Its comm: the program's file name, cut to 15 characters as the kernel does."""
        return self.cmdline.split(" ", 1)[0].rpartition("/")[2][:15]

    @property
    def memory(self) -> dict[str, int]:
        return {**SMALL_PROCESS, **(self.work.memory if self.work else {})}

    @property
    def threads(self) -> int:
        return 1 + (len(self.work.cores) if self.work else 0)


class DeviceImage:
    def __init__(self, profile: Profile, serialno: str, *, secure: bool,
                 processes: Callable[[], list[DeviceProcess]], clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.props = build_props(profile, serialno, secure=secure)
        self.soc = soc_for(profile)
        self.activity = Activity(len(self.soc.cores), clock)
        self.boot_time = time.time()  # Unix time at boot; later times count on from it by the device's clock
        self.log = LogBuffer(self.wall_time)
        self.settings = Settings(default_settings(self.props.get("ro.product.model", profile.name), serialno))
        self.all_cores = (1 << len(self.soc.cores)) - 1
        self._processes = processes
        self._masks: weakref.WeakKeyDictionary[threading.Event, int] = weakref.WeakKeyDictionary()
        self.files = VirtualTree({"/proc": procfs.tree(self), "/sys": sysfs.tree(self)}, lambda: self.boot_time)
        self.log.write("I", "init", f"boot completed: {self.props.get('ro.build.fingerprint')}")

    def wall_time(self) -> float:
        return self.boot_time + (self.activity.clock() - self.activity.boot)

    # ---- processes ---------------------------------------------------------------------

    def processes(self) -> list[ProcessView]:
        works = {w.pid: w for w in self.activity.snapshot().running}
        return [ProcessView(p.pid, p.ppid, p.cmdline, p.started, self.affinity(p.cancel), works.get(p.pid))
                for p in self._processes()]

    def process(self, pid: int) -> ProcessView | None:
        return next((p for p in self.processes() if p.pid == pid), None)

    def pid_of(self, token: threading.Event) -> int | None:
        """The pid of the process whose cancel token is `token` (a program's ctx.cancel)."""
        return next((p.pid for p in self._processes() if p.cancel is token), None)

    def token_of(self, pid: int) -> threading.Event | None:
        return next((p.cancel for p in self._processes() if p.pid == pid), None)

    # ---- CPU affinity (taskset) --------------------------------------------------------

    def affinity(self, token: threading.Event | None) -> int:
        """The CPU mask of the process with this token: its own, else its starter's (a child inherits
        its parent's, as on Linux), else every core."""
        while token is not None:
            if token in self._masks:
                return self._masks[token]
            token = getattr(token, "parent", None)
        return self.all_cores

    def set_affinity(self, token: threading.Event, mask: int) -> None:
        self._masks[token] = mask & self.all_cores

    # ---- work ----------------------------------------------------------------------------

    @contextmanager
    def running(self, token: threading.Event, unit: str, memory: dict[str, int]) -> Iterator[None]:
        """The program with this token computes on `unit` for as long as the block runs: on the CPU it
        keeps every core of its affinity busy (one thread per core), on another unit one core (its
        driver thread) and that unit's heat; `memory` (kB) is what its /proc/<pid>/status shows."""
        mask = self.affinity(token)
        cores = [c for c in range(len(self.soc.cores)) if mask >> c & 1]
        busy = cores if unit == "cpu" else cores[-1:]
        work = Work(self.pid_of(token), frozenset(busy), thermal.UNIT_HEAT.get(unit, 0.0), memory)
        with self.activity.working(work):
            yield
