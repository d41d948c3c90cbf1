"""The device's process list for `ps`, `kill` and `pkill`: every shell session (one adb shell command),
background job and system program, per device.

Nothing here is an OS process. Each entry has a Cancel token: killing it sets that token, whose
children (what the process started: a job's commands, a program's context) see it too, so a killed
job ends and its shell goes on; killing a session stops everything in it. A client hanging up sets
the session's root event (status 129, as after SIGHUP).
"""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from emulator.shell.builtins import Invocation, UsageError, split_flags

CANCELLED = 129  # 128 + SIGHUP: what a command ends with when the client hangs up
POLL_S = 0.05  # how often a wait looks at its parents' tokens (their setting wakes no one directly)
# Signals whose default action is not to end a process (or that stop one, which the device cannot).
HARMLESS = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH, signal.SIGSTOP,
                      signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})


class Cancel(threading.Event):
    """A process's cancel flag: set when it is killed (with 128 + the signal as its status) or when
    its parent's is. A threading.Event, so system programs wait on it as on the client's hang-up."""

    def __init__(self, parent: threading.Event | None = None) -> None:
        super().__init__()
        self.parent = parent
        self.killed_with: int | None = None  # 128 + signal number

    def kill(self, status: int) -> None:
        self.killed_with = status
        self.set()

    def is_set(self) -> bool:
        return super().is_set() or (self.parent is not None and self.parent.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True

    def status(self) -> int:
        """What a process ends with once this is set: its own kill's, else its parent's, else 129."""
        if self.killed_with is not None:
            return self.killed_with
        return self.parent.status() if isinstance(self.parent, Cancel) else CANCELLED


@dataclass
class Process:
    pid: int
    ppid: int
    cmdline: str
    session: Session
    cancel: Cancel
    started: float = field(default_factory=time.time)


@dataclass(frozen=True, eq=False)
class Session:
    """One Shell.run: pkill never stops the session it runs in."""


class ProcessTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids = itertools.count(4000)
        self._running: dict[int, Process] = {}

    @contextmanager
    def running(self, cmdline: str, session: Session, parent: threading.Event | None,
                ppid: int = 1) -> Iterator[Process]:
        """An entry for as long as the block runs; its token's parent is `parent` (the starter's)."""
        with self._lock:
            process = Process(next(self._pids), ppid, cmdline, session, Cancel(parent))
            self._running[process.pid] = process
        try:
            yield process
        finally:
            with self._lock:
                self._running.pop(process.pid, None)

    def processes(self) -> list[Process]:
        with self._lock:
            return sorted(self._running.values(), key=lambda p: p.pid)

    def get(self, pid: int) -> Process | None:
        with self._lock:
            return self._running.get(pid)

    def kill(self, pid: int, signo: int = signal.SIGTERM) -> bool:
        """Send a signal: False when there is no such process; signal 0 only checks."""
        process = self.get(pid)
        if process is None:
            return False
        if signo and signo not in HARMLESS:
            process.cancel.kill(128 + signo)
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
        name = process.cmdline if full else program_name(process)
        inv.out(f"{'shell':<10} {process.pid:>5} {process.ppid:>5} {name}\n")
    return 0


def signal_number(name: str) -> int:
    """`TERM`, `SIGTERM`, `term` or `15` -> 15; a UsageError for anything else."""
    if name.isdigit() and int(name) < 65:
        return int(name)
    upper = name.upper()
    try:
        return int(signal.Signals[upper if upper.startswith("SIG") else "SIG" + upper])
    except KeyError:
        raise UsageError(f"{name}: unknown signal") from None


def split_signal(args: list[str]) -> tuple[int, list[str]]:
    """`-9`, `-TERM`, `-s SIG`, `-n N` at the front (SIGTERM by default), and the operands after them."""
    signo, rest = int(signal.SIGTERM), list(args)
    if rest[:1] in (["-s"], ["-n"]) and len(rest) > 1:
        signo, rest = signal_number(rest[1]), rest[2:]
    elif rest and re.fullmatch(r"-\w+", rest[0]) and rest[0] not in ("-l", "-f", "-x"):
        signo, rest = signal_number(rest[0][1:]), rest[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return signo, rest


def cmd_kill(inv: Invocation) -> int:
    """kill [-SIG | -s SIG] PID|%JOB...: a job of this shell or any process of the device; -0 only
    checks that it exists; -l lists the signal names."""
    if inv.args[:1] == ["-l"]:
        inv.out("".join(f"{s.name[3:]}\n" for s in signal.Signals if s.name.startswith("SIG")
                        and not s.name.startswith(("SIGRT", "SIGIOT", "SIGCLD", "SIGPOLL"))))
        return 0
    signo, operands = split_signal(inv.args)
    if not operands:
        raise UsageError("usage: kill [-s signame | -signum | -signame] { job | pid } ...")
    table, status = table_for(inv.interp.device), 0
    for operand in operands:
        pid = inv.interp.jobs.pid_of(operand) if operand.startswith("%") else (
            int(operand) if re.fullmatch(r"\d+", operand) else None)
        if pid is None:
            why = "no such job" if operand.startswith("%") else "arguments must be jobs or process IDs"
            inv.err(f"{operand}: {why}")
            status = 1
        elif not table.kill(pid, signo):
            inv.err(f"{operand}: No such process")
            status = 1
    return status


def cmd_pkill(inv: Invocation) -> int:
    """pkill [-SIG] [-f] PATTERN: -f matches whole command lines; never the session running pkill."""
    signo, args = split_signal(inv.args)
    flags, operands = split_flags(args, "fx")
    if len(operands) != 1:
        inv.err("needs 1 argument")
        return 2
    try:
        pattern = re.compile(operands[0])
    except re.error as exc:
        inv.err(f"bad regex: {exc}")
        return 2
    table = table_for(inv.interp.device)
    match = pattern.fullmatch if "x" in flags else pattern.search
    hits = [p for p in table.processes() if p.session is not inv.interp.process.session
            and match(p.cmdline if "f" in flags else program_name(p))]
    for process in hits:
        table.kill(process.pid, signo)
    return 0 if hits else 1


def program_name(process: Process) -> str:
    return process.cmdline.split(" ", 1)[0].rpartition("/")[2]


def cmd_pidof(inv: Invocation) -> int:
    """pidof NAME...: the pids of the device's processes of that name, newest first (toybox's order)."""
    _flags, names = split_flags(inv.args, "sox")
    pids = [p.pid for p in reversed(table_for(inv.interp.device).processes()) if program_name(p) in names]
    if pids:
        inv.out(" ".join(map(str, pids)) + "\n")
    return 0 if pids else 1
