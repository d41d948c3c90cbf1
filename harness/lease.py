"""Device leases: one job per device at a time, across threads, farm runs and pytest-xdist workers.

A lease is an OS file lock (flock through `filelock`) on `<lock dir>/<device key>.lock`, so the
kernel releases it when the holder dies; beside it a holder record (pid, host, job, since,
lease length) says who holds the device, which makes a device "busy past its lease" and a stale
record of a dead process detectable and reportable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import filelock

from deploy.fsutil import atomic_write_text

LOCK_DIR_ENV = "EDGELOOP_LOCK_DIR"


def default_lock_dir() -> Path:
    """One folder per user and host, shared by every edgeloop process (farm runs, pytest workers)."""
    env = os.environ.get(LOCK_DIR_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / f"edgeloop-leases-{os.getuid()}"


def lease_key(server: str, serial: str) -> str:
    """A file-name-safe key for a device as seen through one adb server."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{server}__{serial}")


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    job: str
    since: float  # epoch seconds
    lease_s: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.since + self.lease_s

    def alive(self) -> bool:
        """False only when the holder is provably gone (same host, no such process)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        age = time.time() - self.since
        return f"pid {self.pid} on {self.host}, job '{self.job}', for {age:.1f} s (lease {self.lease_s:.0f} s)"


@dataclass
class Lease:
    """A held device; release() (or leaving the `with` block) frees it for the next job."""

    key: str
    holder: Holder
    stale: Holder | None  # a record left by a holder that never released (it crashed): worth reporting
    _lock: filelock.BaseFileLock
    _record: Path

    def release(self) -> None:
        if self._lock.is_locked:
            self._record.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LeaseBook:
    """Acquires and inspects leases in one lock folder."""

    def __init__(self, lock_dir: Path | None = None) -> None:
        self.lock_dir = lock_dir or default_lock_dir()
        self.lock_dir.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.lock_dir / f"{key}.lock", self.lock_dir / f"{key}.holder.json"

    def holder(self, key: str) -> Holder | None:
        """The recorded holder of `key`, if any (the record outlives a crashed holder: check alive())."""
        try:
            return Holder(**json.loads(self._paths(key)[1].read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def try_acquire(self, key: str, job: str, *, lease_s: float, wait_s: float = 0.0) -> Lease | None:
        """Take the lease within `wait_s` seconds, or return None while someone else holds it."""
        lock_path, record = self._paths(key)
        lock = filelock.FileLock(lock_path, thread_local=False)
        try:
            lock.acquire(timeout=wait_s, poll_interval=0.02)
        except filelock.Timeout:
            return None
        stale = self.holder(key)
        holder = Holder(pid=os.getpid(), host=socket.gethostname(), job=job, since=time.time(), lease_s=lease_s)
        atomic_write_text(record, json.dumps(asdict(holder)))
        return Lease(key=key, holder=holder, stale=stale, _lock=lock, _record=record)

    def acquire(
        self,
        key: str,
        job: str,
        *,
        lease_s: float,
        wait_s: float,
        on_wait: Callable[[Holder | None], None] | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> Lease | None:
        """Wait up to `wait_s` for the device; `on_wait(holder)` is called once per poll while it is busy
        (so callers can report a holder past its lease), `give_up()` stops waiting early (returns None)."""
        deadline = time.monotonic() + wait_s
        while True:
            lease = self.try_acquire(key, job, lease_s=lease_s, wait_s=min(0.2, max(0.0, deadline - time.monotonic())))
            if lease is not None:
                return lease
            if on_wait is not None:
                on_wait(self.holder(key))
            if time.monotonic() >= deadline or (give_up is not None and give_up()):
                return None

    def acquire_any(self, keys: list[str], job: str, *, lease_s: float, wait_s: float) -> Lease | None:
        """The first of several interchangeable devices to be free, within `wait_s` seconds."""
        deadline = time.monotonic() + wait_s
        while True:
            for key in keys:
                lease = self.try_acquire(key, job, lease_s=lease_s)
                if lease is not None:
                    return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # block on one of them for a moment instead of spinning over all
            lease = self.try_acquire(keys[0], job, lease_s=lease_s, wait_s=min(0.2, remaining))
            if lease is not None:
                return lease
