"""The device's process list for `ps`, `kill` and `pkill`: every shell session (one adb shell command)
and every system program it is running, per device.

Nothing here is an OS process. Killing an entry sets the cancel event of the session it belongs to,
which is how the device stops work when a client hangs up, so a killed program and the session
that started it both end (status 143, as after SIGTERM).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from emulator.shell.builtins import Invocation, split_flags

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


# ---- commands ------------------------------------------------------------------------------


def cmd_ps(inv: Invocation) -> int:
    """Sessions and system programs; -f (or -o args) shows whole command lines."""
    flags, _ = split_flags([a for a in inv.args if a not in ("-o", "args", "ARGS")], "Aefw")
    full = "f" in flags or bool({"args", "ARGS"} & set(inv.args))
    inv.out(f"{'USER':<10} {'PID':>5} {'PPID':>5} {'CMD' if full else 'NAME'}\n")
    for process in table_for(inv.interp.device).processes():
        name = process.cmdline if full else process.cmdline.split(" ", 1)[0].rpartition("/")[2]
        inv.out(f"{'shell':<10} {process.pid:>5} {process.ppid:>5} {name}\n")
    return 0


def _signal_args(args: list[str]) -> list[str]:
    """Drop `-9`, `-TERM`, `-s SIG`: every signal stops the session (there is one way to stop)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-s":
            skip = True
        elif not re.fullmatch(r"-(\d+|[A-Z]+)", arg):
            kept.append(arg)
    return kept


def cmd_kill(inv: Invocation) -> int:
    status = 0
    for arg in _signal_args(inv.args):
        if not arg.isdigit() or not table_for(inv.interp.device).kill(int(arg)):
            inv.err(f"{arg}: No such process")
            status = 1
    return status


def cmd_pkill(inv: Invocation) -> int:
    """pkill [-f] PATTERN: -f matches whole command lines; never the session running pkill itself."""
    flags, operands = split_flags(_signal_args(inv.args), "fx")
    if len(operands) != 1:
        inv.err("needs 1 argument")
        return 2
    try:
        pattern = re.compile(operands[0])
    except re.error as exc:
        inv.err(f"bad regex: {exc}")
        return 2
    table = table_for(inv.interp.device)
    hits = [p for p in table.processes() if p.session is not inv.interp.process.session and (
        pattern.search(p.cmdline if "f" in flags else p.cmdline.split(" ", 1)[0].rpartition("/")[2]))]
    for process in hits:
        table.kill(process.pid)
    return 0 if hits else 1
