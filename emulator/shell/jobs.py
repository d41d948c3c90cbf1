"""Pipelines and background jobs: how the shell runs commands concurrently.

Every stage of a pipeline is a subshell on its own thread, joined to the next by a bounded Pipe, as
mksh forks one process per stage (the last one too: `echo x | read v` leaves v unset). A job
(`cmd &`) is a subshell on its own thread with its own entry in the device's process list, so
`kill $!` ends that job only and `wait $!` returns its status.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from emulator.shell.builtins import Invocation
from emulator.shell.exec import SH
from emulator.shell.parse import AndOr, Node, Pipeline
from emulator.shell.pipes import SIGPIPE_STATUS, NullFile, Pipe, PipeClosed
from emulator.shell.procs import POLL_S, Cancel, table_for

if TYPE_CHECKING:
    from emulator.shell.interp import Interp

Fds = dict[int, BinaryIO]
NOT_A_CHILD = 127  # `wait PID` for a pid that is not a job of this shell


@dataclass
class Job:
    number: int  # %N
    pid: int  # $!
    thread: threading.Thread
    status: int | None = None  # set when it ends


class Jobs:
    """The background jobs one shell started and has not waited for."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._numbers = itertools.count(1)

    def next_number(self) -> int:
        return next(self._numbers)

    def add(self, job: Job) -> None:
        self._jobs.append(job)

    def pid_of(self, spec: str) -> int | None:
        """The pid of `%N`, `%%` / `%+` (the newest), `%-` (the one before) or `%PREFIX`, else None."""
        body = spec[1:]
        if body.isdigit():
            found = [j for j in self._jobs if j.number == int(body)]
        elif body in ("", "%", "+"):
            found = self._jobs[-1:]
        elif body == "-":
            found = self._jobs[-2:-1]
        else:
            found = []
        return found[0].pid if found else None

    def wait(self, pid: int, cancel: Cancel | None = None) -> int:
        """That job's status once it has ended (127 when it is not one of ours); it is then forgotten.
        With `cancel`, a signal to the waiting shell (^C in a terminal) ends the wait with its status."""
        job = next((j for j in self._jobs if j.pid == pid), None)
        if job is None:
            return NOT_A_CHILD
        while job.thread.is_alive():
            if cancel is not None and cancel.is_set():
                return cancel.status()
            job.thread.join(POLL_S)
        self._jobs.remove(job)
        return job.status if job.status is not None else 0

    def pids(self) -> list[int]:
        return [job.pid for job in self._jobs]

    def wait_all(self) -> None:
        for pid in self.pids():
            self.wait(pid)


def start_job(interp: Interp, node: AndOr, fds: Fds) -> int:
    """`cmd &`: a subshell with its own process entry (a child of this shell process's, so it ends with
    it, but not of a terminal's foreground line: ^C leaves it running, as job control does), stdin
    /dev/null; `$!` names it."""
    child = interp.subshell()
    started = threading.Event()
    job_fds = {**fds, 0: NullFile()}
    job = Job(interp.jobs.next_number(), 0, threading.current_thread())

    def run() -> None:
        table = table_for(interp.device)
        with table.running(SH, interp.process.session, interp.process.cancel, ppid=interp.process.pid) as process:
            child.process, child.cancel = process, process.cancel
            job.pid = process.pid
            started.set()
            job.status = child.as_process(lambda: child.run_and_or(node, dict(job_fds), True), job_fds)

    job.thread = threading.Thread(target=run, daemon=True, name=f"sh-job-{interp.process.pid}")
    job.thread.start()
    started.wait()
    interp.jobs.add(job)
    interp.state.last_job = job.pid
    return 0


def run_pipeline(interp: Interp, node: Pipeline, fds: Fds, tested: bool) -> int:
    """All stages at once, each in a subshell reading the previous one's output through a Pipe. The
    status is the last stage's (with `set -o pipefail`, the last failing stage's)."""
    if len(node.commands) == 1:
        status = interp.run_command(node.commands[0], fds, tested or node.negate)
    else:
        status = _run_stages(interp, node.commands, fds, tested or node.negate)
    if node.negate:
        status = int(status == 0)
    interp.state.status = status
    return status


def _run_stages(interp: Interp, commands: list[Node], fds: Fds, tested: bool) -> int:
    pipes = [Pipe(interp.cancel) for _ in commands[1:]]
    statuses: list[int] = [0] * len(commands)
    errors: list[BaseException] = []
    threads = []
    for k, command in enumerate(commands):
        stage = dict(fds)
        if k:
            stage[0] = pipes[k - 1].reader
        if k < len(pipes):
            stage[1] = pipes[k].writer
        ends = [f for f in (stage[0] if k else None, stage[1] if k < len(pipes) else None) if f is not None]
        body = _stage(interp, command, stage, ends, k, statuses, errors, tested and k == len(commands) - 1)
        if k < len(commands) - 1:
            thread = threading.Thread(target=body, daemon=True, name=f"sh-pipe-{interp.process.pid}-{k}")
            thread.start()
            threads.append(thread)
        else:
            body()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    if "pipefail" in interp.state.options:
        return next((s for s in reversed(statuses) if s), 0)
    return statuses[-1]


def _stage(interp: Interp, command: Node, fds: Fds, ends: list[Any], k: int, statuses: list[int],
           errors: list[BaseException], tested: bool) -> Callable[[], None]:
    """One stage's body: runs in a subshell and closes its pipe ends when done, so its reader sees the
    end of the stream and its writer learns the reader has gone."""

    def body() -> None:
        child = interp.subshell()
        try:
            statuses[k] = child.as_process(lambda: child.run_command(command, fds, tested), fds)
        except PipeClosed:
            statuses[k] = SIGPIPE_STATUS
        except Exception as exc:  # the client went away (or a bug): the pipeline's caller sees it
            errors.append(exc)
            statuses[k] = SIGPIPE_STATUS
        finally:
            for end in ends:
                end.close()

    return body


def cmd_wait(inv: Invocation) -> int:
    """wait [PID|%JOB...]: with operands, the status of the last one (127 for one that is not a job of
    this shell); without, every job, and 0."""
    jobs = inv.interp.jobs
    cancel = inv.interp.cancel
    if not inv.args:
        for pid in jobs.pids():
            status = jobs.wait(pid, cancel)
            if cancel.is_set():  # interrupted
                return status
        return 0
    status = 0
    for operand in inv.args:
        pid = jobs.pid_of(operand) if operand.startswith("%") else int(operand) if operand.isdigit() else None
        status = NOT_A_CHILD if pid is None else jobs.wait(pid, cancel)
    return status
