"""The device's process list for `ps`, `kill` and `pkill`: every shell session (one adb shell command)
and every system program it is running, per device.

Nothing here is an OS process. Killing an entry sets the cancel event of the session it belongs to,
which is how the device stops work when a client hangs up, so a killed program and the session
that started it both end (status 143, as after SIGTERM).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

KILLED = 143  # 128 + SIGTERM: a session stopped by kill or pkill
CANCELLED = 129  # 128 + SIGHUP: what a command ends with when the client hangs up


@dataclass
class Process:
    pid: int
    ppid: int
    cmdline: str
    session: Session
    started: float = field(default_factory=time.time)


@dataclass
class Session:
    """One Shell.run: its cancel event is shared with everything it runs."""

    cancel: threading.Event
    killed: bool = False

    def kill(self) -> None:
        self.killed = True
        self.cancel.set()


class ProcessTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids = itertools.count(4000)
        self._running: dict[int, Process] = {}

    @contextmanager
    def running(self, cmdline: str, session: Session, ppid: int = 1) -> Iterator[Process]:
        with self._lock:
            process = Process(next(self._pids), ppid, cmdline, session)
            self._running[process.pid] = process
        try:
            yield process
        finally:
            with self._lock:
                self._running.pop(process.pid, None)

    def processes(self) -> list[Process]:
        with self._lock:
            return sorted(self._running.values(), key=lambda p: p.pid)

    def kill(self, pid: int) -> bool:
        with self._lock:
            process = self._running.get(pid)
        if process is None:
            return False
        process.session.kill()
        return True


_TABLES: weakref.WeakKeyDictionary[Any, ProcessTable] = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def table_for(device: Any) -> ProcessTable:
    """The process table of one device (created on first use, dropped with the device)."""
    with _TABLES_LOCK:
        table = _TABLES.get(device)
        if table is None:
            table = _TABLES[device] = ProcessTable()
        return table
