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
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import filelock

from deploy.errors import DeviceError
from deploy.fsutil import atomic_write_text
from harness.transfer import DEVICE_FAILURES, device_shell, shell_quote

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
        return not _gone(self.host, self.pid)

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


def _gone(host: str, pid: int) -> bool:
    """True only when a holder is provably gone: on this host, and no such process."""
    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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


# -- the lease on the device itself ----------------------------------------------------------------

DEVICE_LEASE_TTL_S = 60.0  # a holder that has not renewed its lease for this long is taken as gone
UNREADABLE_GRACE_S = 5.0  # a lease whose owner record cannot be read (an older edgeloop cut off) is gone after this
HEARTBEAT_S = 10.0
POLL_S = 0.5
_ACQUIRED, _BUSY = "@@edgeloop-lease-acquired@@", "@@edgeloop-lease-busy@@"
_UNWRITABLE = "@@edgeloop-lease-unwritable@@"


@dataclass(frozen=True)
class DeviceHolder:
    """Who holds a device's lease, as its record on the device says, and how long ago it renewed it
    (by the device's own clock: hosts whose clocks disagree still agree on expiry)."""

    token: str
    host: str
    pid: int
    job: str
    ttl_s: float
    idle_s: float

    @classmethod
    def parse(cls, record: str, idle_s: float) -> DeviceHolder:
        try:
            data = json.loads(record)
            return cls(str(data["token"]), str(data["host"]), int(data["pid"]), str(data["job"]),
                       float(data["ttl_s"]), idle_s)
        except (ValueError, KeyError, TypeError):  # damaged, or left half-made: judged by its age alone
            return cls("", "?", 0, "?", UNREADABLE_GRACE_S, idle_s)

    @property
    def expired(self) -> bool:
        """Not renewed within its TTL, or held by a process of this host that no longer exists."""
        return self.idle_s > self.ttl_s or _gone(self.host, self.pid)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, job '{self.job}', renewed {self.idle_s:.0f} s ago"


class LeaseLost(Exception):
    """Another holder took the device's lease over (this holder stopped renewing it for too long)."""


class DeviceLease:
    """A lease kept on the device (`<store>/lease/`, made by an atomic mkdir), so every host that reaches
    the device through any adb server sees it. The holder renews it every HEARTBEAT_S from a background
    thread (touching the folder); a lease not renewed within its TTL may be taken over, by renaming it
    away only if it is still the one judged expired. See docs/farm.md."""

    def __init__(self, device: Any, root: str, job: str, *, ttl_s: float = DEVICE_LEASE_TTL_S) -> None:
        self.device = device
        self.root = root
        self.token = secrets.token_hex(8)
        self.record = json.dumps({"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                                  "job": job, "ttl_s": ttl_s}, sort_keys=True)
        self.lost = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _shell(self, command: str) -> str:
        root = shell_quote(self.root)
        return device_shell(self.device, f"mkdir -p {root} && cd {root} && {command}",
                            "taking the device's lease").stdout

    def try_acquire(self, then: str = "") -> tuple[str | None, DeviceHolder | None]:
        """One round trip: (output of `then`, run only once the lease is taken, None) or (None, holder).
        The lease folder is made aside with its owner record and renamed into place, so no one ever sees
        a lease without its owner; the owner check tells who won a race (a rename onto a lease made
        meanwhile fails, or moves into it: that leftover is removed). A record that cannot be written (a full
        device) is a DeviceError with the device's own message."""
        new, record = shell_quote(f".lease-new-{self.token}"), shell_quote(self.record)
        out = self._shell(f"rm -rf {new}; if ! {{ mkdir {new} && printf '%s\\n' {record} > {new}/owner; }} 2>&1; "
                          f"then echo; echo {_UNWRITABLE}; rm -rf {new}; "
                          f"else [ -e lease ] || mv {new} lease 2>/dev/null; rm -rf {new}; "
                          f"[ -e lease/{new} ] && rm -rf lease/{new}; "
                          f"if [ \"$(cat lease/owner 2>/dev/null)\" = {record} ]; "
                          f"then echo {_ACQUIRED}; {then or 'true'}; "
                          f"else echo {_BUSY}; date +%s; stat -c %Y lease; cat lease/owner 2>/dev/null; fi; fi")
        why, unwritable, _ = out.partition(f"\n{_UNWRITABLE}")
        if unwritable:
            raise DeviceError(f"device {self.device.serial}: could not take its lease: {why.strip()[:200]}",
                              "free some space on the device (or fix what the message says) and run again")
        head, _, rest = out.partition("\n")
        if head == _ACQUIRED:
            self._beat = threading.Thread(target=self._renew, name="edgeloop-lease", daemon=True)
            self._beat.start()
            return rest, None
        now, beat, *lines = [*rest.split("\n"), "", ""]
        idle = float(int(now) - int(beat)) if now.isdigit() and beat.isdigit() else 0.0
        holder = DeviceHolder.parse("\n".join(lines).strip(), idle)
        if holder.expired:
            self._reap(beat, "\n".join(lines).strip())
        return None, holder

    def _reap(self, beat: str, record: str) -> None:
        """Rename an expired lease away, only if it is still the one judged expired (same renewal time and
        record): a holder that renewed it, or a new one, keeps it."""
        self._shell(f"[ \"$(stat -c %Y lease 2>/dev/null)\" = {shell_quote(beat)} ] && "
                    f"[ \"$(cat lease/owner 2>/dev/null)\" = {shell_quote(record)} ] && "
                    f"mv lease .lease-expired-{self.token} && rm -rf .lease-expired-{self.token}; true")

    def acquire(self, wait_s: float, then: str = "",
                on_wait: Callable[[DeviceHolder], None] | None = None) -> str | None:
        """Take the lease within `wait_s` seconds; returns the output of `then`, or None when it stayed held."""
        deadline = time.monotonic() + wait_s
        while True:
            out, holder = self.try_acquire(then)
            if out is not None:
                return out
            if on_wait is not None and holder is not None:
                on_wait(holder)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._stop.wait(min(POLL_S, left))

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                out = self._shell(f"[ \"$(cat lease/owner 2>/dev/null)\" = {shell_quote(self.record)} ] && "
                                  f"touch lease && echo renewed; true")
            except (*DEVICE_FAILURES, DeviceError):
                continue  # the device is away; the session's own requests will say so
            if "renewed" not in out:
                self.lost = True
                return

    def release_command(self) -> str:
        """The shell command (run from the store's folder) that frees the lease if this holder still has it."""
        return f"[ \"$(cat lease/owner 2>/dev/null)\" = {shell_quote(self.record)} ] && rm -rf lease"

    def stop(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT_S)
