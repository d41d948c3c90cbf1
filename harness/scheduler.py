"""Spread jobs over devices: one worker thread per device, a lease per job, a per-job timeout,
and bounded retries on another device when a device (or its whole adb server) is lost.

The scheduler knows nothing about deploying: it runs an `execute(task, device, attempt)` callable
and asks `passed(result)` for the verdict, so the farm, the benchmark and the tests share it.
Every task ends with exactly one Outcome; every attempt is kept, so a retry shows in the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.errors import DeviceError, EdgeloopError
from harness.inventory import FarmDevice, device_state
from harness.lease import Holder, Lease, LeaseBook

READY = "device"


@dataclass(frozen=True)
class Task:
    id: str
    profile: str
    payload: Any = None
    labels: tuple[str, ...] = ()  # a device must carry all of these
    model: str = ""  # for reports: the grid's columns
    runtime: str = ""

    def fits(self, device: FarmDevice) -> bool:
        return self.profile in device.profiles and set(self.labels) <= set(device.labels)


@dataclass
class Attempt:
    device: str
    started: float  # epoch seconds
    seconds: float
    outcome: str  # passed | failed | lost | timeout | error
    detail: str = ""


@dataclass
class Outcome:
    task: Task
    status: str  # passed | failed | timeout | error | lost | no-device
    attempts: list[Attempt]
    result: Any = None
    device: FarmDevice | None = None
    detail: str = ""

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


@dataclass(frozen=True)
class Policy:
    timeout_s: float = 600.0  # per job; past it the job counts as hung and its device is set aside
    max_tries: int = 3  # attempts per job, each on a different device
    lease_wait_s: float = 600.0  # how long to wait for a device another run holds


Executor = Callable[[Task, FarmDevice, int], Any]
Event = dict[str, Any]


@dataclass
class _Entry:
    task: Task
    attempts: list[Attempt] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)


class Scheduler:
    def __init__(
        self,
        devices: list[FarmDevice],
        execute: Executor,
        *,
        passed: Callable[[Any], bool],
        leases: LeaseBook,
        policy: Policy = Policy(),
        probe: Callable[[FarmDevice], str] = device_state,
        on_event: Callable[[Event], None] | None = None,
        on_finish: Callable[[Outcome, int, int], None] | None = None,
        run_id: str = "farm",
    ) -> None:
        self.devices = devices
        self.execute = execute
        self.passed = passed
        self.leases = leases
        self.policy = policy
        self.probe = probe
        self.on_event = on_event
        self.on_finish = on_finish  # (outcome, jobs finished, jobs in total): for progress bars
        self.run_id = run_id
        self.events: list[Event] = []
        self._cv = threading.Condition()
        self._pending: list[_Entry] = []
        self._running: dict[str, _Entry] = {}
        self._live: dict[str, FarmDevice] = {}
        self._down_servers: set[str] = set()
        self._outcomes: dict[str, Outcome] = {}
        self._total = 0

    # -- bookkeeping (callers hold self._cv) ------------------------------------------------------

    def _event(self, kind: str, device: FarmDevice | None = None, task: Task | None = None, detail: str = "") -> None:
        event = {"time": time.time(), "kind": kind, "device": device.name if device else None,
                 "job": task.id if task else None, "detail": detail}
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _finish(self, entry: _Entry, status: str, *, result: Any = None, device: FarmDevice | None = None,
                detail: str = "") -> None:
        assert entry.task.id not in self._outcomes, f"job {entry.task.id} finished twice"
        outcome = Outcome(entry.task, status, entry.attempts, result, device, detail)
        self._outcomes[entry.task.id] = outcome
        self._cv.notify_all()
        if self.on_finish is not None:
            self.on_finish(outcome, len(self._outcomes), self._total)

    def _usable(self, device: FarmDevice) -> bool:
        return device.name in self._live and device.server.address not in self._down_servers

    def _takeable(self, entry: _Entry, device: FarmDevice) -> bool:
        return entry.task.fits(device) and device.name not in entry.excluded

    def _work_for(self, device: FarmDevice) -> str:
        """'take' when a pending job fits, 'wait' when a running one might come back to it, else 'done'."""
        if not self._usable(device):
            return "done"
        if any(self._takeable(e, device) for e in self._pending):
            return "take"
        if any(self._takeable(e, device) for e in self._running.values()):
            return "wait"
        return "done"

    def _fail_orphans(self) -> None:
        """Pending jobs that no live device can take any more end now, saying why."""
        for entry in list(self._pending):
            if any(self._usable(d) and self._takeable(entry, d) for d in self._live.values()):
                continue
            self._pending.remove(entry)
            tried = ", ".join(a.device for a in entry.attempts)
            lost = any(a.outcome == "lost" for a in entry.attempts)
            detail = (f"no other {entry.task.profile} device left after losing {tried}" if lost
                      else f"no usable {entry.task.profile} device")
            self._finish(entry, "lost" if lost else "no-device", detail=detail)

    def _retire(self, device: FarmDevice, why: str | None = None) -> None:
        if device.name in self._live:
            del self._live[device.name]
            if why:
                self._event("device-retired", device, detail=why)
        self._fail_orphans()
        self._cv.notify_all()

    # -- one attempt ----------------------------------------------------------------------------

    def _run_with_timeout(self, entry: _Entry, device: FarmDevice, lease: Lease) -> tuple[str, Any]:
        """('result'|'error'|'timeout', value). A hung job keeps its lease until its thread really ends."""
        box: dict[str, Any] = {}
        done = threading.Event()
        handover = threading.Lock()
        abandoned = False

        def target() -> None:
            try:
                box["result"] = self.execute(entry.task, device, len(entry.attempts) + 1)
            except Exception as exc:
                box["error"] = exc
            finally:
                with handover:
                    done.set()
                    if abandoned:
                        lease.release()

        thread = threading.Thread(target=target, name=f"job-{entry.task.id}", daemon=True)
        thread.start()
        if not done.wait(self.policy.timeout_s):
            with handover:
                if not done.is_set():
                    abandoned = True
                    return "timeout", None
        lease.release()
        return ("error", box["error"]) if "error" in box else ("result", box.get("result"))

    def _attempt(self, entry: _Entry, device: FarmDevice, lease: Lease) -> bool:
        """Run one attempt; False when the device must not take further jobs in this run."""
        started, t0 = time.time(), time.monotonic()
        kind, value = self._run_with_timeout(entry, device, lease)
        seconds = time.monotonic() - t0
        if kind == "result" and self.passed(value):
            with self._cv:
                entry.attempts.append(Attempt(device.name, started, seconds, "passed"))
                self._running.pop(device.name, None)
                self._finish(entry, "passed", result=value, device=device)
            return True
        if kind == "timeout":
            with self._cv:
                detail = f"no answer within {self.policy.timeout_s:.0f} s"
                entry.attempts.append(Attempt(device.name, started, seconds, "timeout", detail))
                self._running.pop(device.name, None)
                self._finish(entry, "timeout", device=device, detail=f"job hung: {detail} on {device.name}")
                self._event("job-hung", device, entry.task, detail)
                self._retire(device, "still busy with a hung job")
            return False
        state = self._probe(device)
        detail = _describe(value) if kind == "error" else _result_failure(value)
        with self._cv:
            self._running.pop(device.name, None)
            # The device's fault, even when it still answers now (it dropped the connection mid-push,
            # refused a file): the job is retried on another device; the model's own failures are not.
            lost = state != READY or isinstance(value, DeviceError) or bool(getattr(value, "device_fault", False))
            if lost:
                why = (f"adb says {state}" + (f" ({detail})" if kind == "error" else "")) if state != READY else detail
                entry.attempts.append(Attempt(device.name, started, seconds, "lost", why))
                entry.excluded.add(device.name)
                if state == "server-down" and device.server.address not in self._down_servers:
                    self._down_servers.add(device.server.address)
                    self._event("server-down", device, entry.task, f"adb server {device.server.address} gone")
                if len(entry.attempts) < self.policy.max_tries:
                    self._pending.insert(0, entry)
                    what = "lost device" if state != READY else "device error"
                    self._event("retry", device, entry.task, f"{what} ({why}); retrying on another device")
                else:
                    self._finish(entry, "lost", device=device, detail=f"{len(entry.attempts)} devices lost: {why}")
                if state != READY:
                    self._retire(device, why)
                else:
                    self._fail_orphans()
                self._cv.notify_all()
                return state == READY
            # a result keeps its own word for it (a deploy result says failed or error); an exception is an error
            outcome = getattr(value, "status", "failed") if kind == "result" else "error"
            outcome = outcome if outcome in ("failed", "error") else "failed"
            entry.attempts.append(Attempt(device.name, started, seconds, outcome, detail))
            self._finish(entry, outcome, result=value if kind == "result" else None, device=device, detail=detail)
            return True

    def _probe(self, device: FarmDevice) -> str:
        """The device's state; a probe that raises (adbutils' EOFError on a half-closed server, say) says
        the device cannot be trusted with more work, never ends the worker."""
        try:
            return self.probe(device)
        except Exception as exc:
            with self._cv:
                self._event("probe-error", device, detail=_describe(exc))
            return "unresponsive"

    # -- workers --------------------------------------------------------------------------------

    def _take(self, device: FarmDevice) -> _Entry | None:
        with self._cv:
            for entry in self._pending:
                if self._usable(device) and self._takeable(entry, device):
                    self._pending.remove(entry)
                    self._running[device.name] = entry
                    return entry
        return None

    def _wait_for_work(self, device: FarmDevice) -> bool:
        with self._cv:
            while (state := self._work_for(device)) == "wait":
                self._cv.wait(0.5)
            return state == "take"

    def _worker(self, device: FarmDevice) -> None:
        """A worker that meets an unexpected exception ends the job it held as an error (the report says
        why) and retires its device: it never leaves a job without an outcome."""
        try:
            self._serve(device)
        except Exception as exc:
            with self._cv:
                entry = self._running.pop(device.name, None)
                if entry is not None and entry.task.id not in self._outcomes:
                    entry.attempts.append(Attempt(device.name, time.time(), 0.0, "error", _describe(exc)))
                    self._finish(entry, "error", device=device, detail=f"scheduler error: {_describe(exc)}")
                self._retire(device, f"scheduler error: {_describe(exc)}")

    def _serve(self, device: FarmDevice) -> None:
        reported: set[tuple[int, float]] = set()

        def on_wait(holder: Holder | None) -> None:
            if holder and holder.expired() and (holder.pid, holder.since) not in reported:
                reported.add((holder.pid, holder.since))
                with self._cv:
                    self._event("busy-past-lease", device, detail=f"held by {holder.describe()}")

        def give_up() -> bool:
            with self._cv:
                return self._work_for(device) != "take"

        keep = True
        while keep and self._wait_for_work(device):
            lease = self.leases.acquire(device.key, self.run_id, lease_s=self.policy.timeout_s,
                                        wait_s=self.policy.lease_wait_s, on_wait=on_wait, give_up=give_up)
            if lease is None:
                if give_up():
                    continue
                holder = self.leases.holder(device.key)
                with self._cv:
                    self._retire(device, f"leased elsewhere: {holder.describe() if holder else 'unknown holder'}")
                return
            entry = self._take(device)
            if entry is None:
                lease.release()
                continue
            if lease.stale and not lease.stale.alive():
                with self._cv:
                    self._event("stale-lease", device, entry.task, f"recovered from {lease.stale.describe()}")
            keep = self._attempt(entry, device, lease)
        with self._cv:
            self._retire(device)

    def run(self, tasks: list[Task]) -> list[Outcome]:
        """Run every task; returns one Outcome per task, in the order given."""
        ids = [t.id for t in tasks]
        if len(set(ids)) != len(ids):
            raise EdgeloopError("two farm jobs share an id", "job ids are model/profile/runtime and must be unique")
        with self._cv:
            self._live = {d.name: d for d in self.devices}
            self._pending = [_Entry(t) for t in tasks]
            self._total = len(tasks)
            self._fail_orphans()
        # Daemon workers: after Ctrl-C the farm writes its reports and exits without waiting for jobs
        # still running (their leases are file locks, released with the process).
        workers = [threading.Thread(target=self._worker, args=(d,), name=f"device-{d.name}", daemon=True)
                   for d in self.devices]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with self._cv:
            self._fail_orphans()
            for entry in [*self._pending, *self._running.values()]:  # no worker left to finish them
                if entry.task.id not in self._outcomes:
                    self._finish(entry, "error", detail="no worker finished it (see the run's events)")
            return [self._outcomes[i] for i in ids]


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, EdgeloopError) else str(exc)
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, EdgeloopError) else text


def _result_failure(result: Any) -> str:
    return str(getattr(result, "failure", None) or "check failed")
