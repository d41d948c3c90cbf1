"""net-run's engine in a process of its own, limited to the device's RAM.

onnxruntime builds and runs sessions in an engine process whose address space is capped at the
profile's `ram_mb` (RLIMIT_AS): a container that needs more than the phone has (a 2 GB
ConstantOfShape in a 1 KB file) fails that run with "out of memory", as Android's lowmemorykiller
ends the app that asked, and the device goes on. Engines are forked from a fork server that has
onnxruntime loaded (a new engine is ready in milliseconds; the server itself starts when the device
boots), one per device process, kept warm across runs (its sessions are cached, emulator.runtimes);
a dead one is replaced at the next run. Runs on one device take the engine in turn.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

POLL_S = 0.05  # how often a waiting run looks at its cancel flag (the answer itself wakes it at once)
# The engine's own program: nothing of the device's is imported but what the engine needs.
_PROGRAM = "import sys; from emulator.runtimes import serve_fd; serve_fd(int(sys.argv[1]), int(sys.argv[2]))"


class EngineError(Exception):
    """The engine could not do what was asked: `message` says why; `out_of_memory` when it ran out of
    the device's RAM (or died, as a process the lowmemorykiller ends does)."""

    def __init__(self, message: str, *, out_of_memory: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.out_of_memory = out_of_memory


class TimedOut(Exception):
    """The run took longer than the device allows (the profile's run_limit_s): the engine was stopped."""


class Cancelled(Exception):
    """The run was cancelled (its shell stream closed) while the engine worked: the engine was stopped."""


class _Forked:
    """The part of Popen's interface the engine uses, for a process made with os.fork."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


class Engine:
    def __init__(self, ram_bytes: int, *, fork: bool = False) -> None:
        self.ram_bytes = ram_bytes
        ours, theirs = socket.socketpair()
        self._process = _fork(theirs, ram_bytes) if fork else subprocess.Popen(
            [sys.executable, "-c", _PROGRAM, str(theirs.fileno()), str(ram_bytes)], pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True)  # stdout: the device's is not ours
        theirs.close()
        self._conn = Connection(ours.detach())
        self._lock = threading.Lock()
        try:  # the engine says it is ready once its memory limit is in place
            ready = self._conn.recv() == ("ok", "ready")
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.stop()
            raise EngineError("net-run's engine did not start")

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def call(self, request: tuple[Any, ...], cancel: threading.Event, deadline: float = float("inf")) -> Any:
        """One request, answered by the engine by `deadline` (time.monotonic()); EngineError, Cancelled
        or TimedOut when it is not."""
        with self._lock:
            try:
                self._conn.send(request)
                while not self._conn.poll(max(0.0, min(POLL_S, deadline - time.monotonic()))):
                    if cancel.is_set():
                        self.stop()
                        raise Cancelled
                    if time.monotonic() >= deadline:
                        self.stop()
                        raise TimedOut
                    if not self.alive:
                        raise EOFError
                kind, value = self._conn.recv()
                if time.monotonic() > deadline:  # answered, but too late: the engine itself is fine
                    raise TimedOut
            except (EOFError, OSError):
                self.stop()
                raise EngineError("the engine was killed (out of memory)", out_of_memory=True) from None
        if kind == "ok":
            return value
        raise EngineError(value, out_of_memory=kind == "oom")

    def stop(self) -> None:
        self._process.kill()
        self._process.wait()
        self._conn.close()


def _fork(theirs: socket.socket, ram_bytes: int) -> _Forked:
    """An engine forked from this process: it keeps its socket and stderr (the device's log), nothing else."""
    pid = os.fork()
    if pid:
        return _Forked(pid)
    status = 1
    try:
        from emulator.runtimes import serve  # loaded already: the device's net-run imported it

        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        keep = theirs.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        serve(Connection(os.dup(keep)), ram_bytes)
        status = 0
    finally:
        os._exit(status)


_ENGINES: dict[int, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine(ram_mb: int) -> Engine:
    """The live engine for a device of `ram_mb` MiB (started, or replaced if it died)."""
    with _ENGINES_LOCK:
        current = _ENGINES.get(ram_mb)
        if current is None or not current.alive:
            current = _ENGINES[ram_mb] = Engine(ram_mb << 20)
        return current


def start(ram_mb: int) -> None:
    """Fork the device's first engine: called as the device boots, before it starts any thread."""
    with _ENGINES_LOCK:
        _ENGINES[ram_mb] = Engine(ram_mb << 20, fork=True)
