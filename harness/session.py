"""Device sessions: every use of a device, by deploy, the farm or the pytest plugin, is one session.

A session holds the device's lease for its whole length (on the device itself, so that every host
sharing the device through any adb server sees it: harness.lease.DeviceLease), learns the device's
facts and reads its store in the round trip that takes the lease, installs jobs into the store
(harness.store), gives each run a folder of its own under `runs/<session id>/`, and at the end
collects the store's garbage, writes its index and frees the lease in two more requests.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import adbutils

from deploy.bundle import Bundle
from deploy.errors import DeviceError
from harness.devices import AdbServer, FoundDevice, device_props, listening
from harness.lease import DeviceHolder, DeviceLease
from harness.run import NETRUN
from harness.store import BLOBS, INDEX, JOBS, RUNS, SNAPSHOT, TMP_PREFIX, Installed, Store, budget_bytes, new_session_id
from harness.transfer import DEVICE_ROOT, Progress, batches, device_shell, shell_quote

LEASE_TIMEOUT_S = 600.0  # how long a session waits for a device another session holds (--lease-timeout)
RECONNECT_S = 10.0  # how long a closing session waits for its device to come back to free the lease
RETRY_S = 0.5
_NETRUN_MARK = "@@edgeloop-netrun@@"


@dataclass
class DeviceSession:
    """A leased device: its handle, facts and store, for as long as the session lasts."""

    found: FoundDevice
    emulated: bool  # the device's image has edgeloop's net-run (the emulated device); a phone has not
    store: Store
    lease: DeviceLease
    budget: int = field(default_factory=budget_bytes)
    id: str = field(default_factory=new_session_id)
    _runs: Iterator[int] = field(default_factory=itertools.count)

    @property
    def device(self) -> adbutils.AdbDevice:
        return self.found.device

    @property
    def serial(self) -> str:
        return self.found.serial

    @property
    def props(self) -> dict[str, str]:
        return self.found.props

    def install(self, bundle: Bundle, progress: Progress | None = None) -> Installed:
        """Make `bundle`'s job folder whole and verified in the device store (see harness.store)."""
        self._check_lease()
        return self.store.install(bundle, progress)

    def new_run(self, name: str) -> PurePosixPath:
        """A run folder no other run uses (the session's id and a counter): only this session removes it."""
        self._check_lease()
        return DEVICE_ROOT / RUNS / self.id / f"{next(self._runs)}-{name}"

    def lost_server(self) -> str | None:
        """Why a failed request was not the device's fault: its adb server is gone (None while it answers)."""
        client = self.device._client  # adbutils keeps the device's client private
        if listening(client.host, client.port):
            return None
        return f"the adb server at {client.host}:{client.port} stopped; restart it (`adb start-server`) and run again"

    def _check_lease(self) -> None:
        if self.lease.lost:
            raise DeviceError(f"device {self.serial}: another host took over this session's lease",
                              "the device stopped answering for longer than the lease lasts; deploy again")

    def close(self) -> None:
        """Collect garbage, write the store's index, remove this session's runs and free the lease. Best
        effort, except for the lease: when the device went away, it is freed once adb has it back (within
        RECONNECT_S), and otherwise expires by itself."""
        self.lease.stop()
        doomed = [*self.store.collect(self.budget, self.id), f"{RUNS}/{self.id}"]
        steps = [f"rm -rf {' '.join(map(shell_quote, batch))}" for batch in batches(doomed)]
        # by serial too: a device that reconnected mid-session has a new transport id
        by_serial = adbutils.AdbDevice(self.device._client, serial=self.serial)
        for device in (self.device, by_serial):
            self.store.device = device
            indexed = True
            try:
                self.store.write_index()
            except DeviceError:  # a full device, say: the lease is still freed
                indexed = False
            last = (f"mv -f {TMP_PREFIX}{INDEX} {INDEX}; " if indexed else "") + self.lease.release_command()
            try:
                for batch in batches([*steps, last], cost=lambda step: len(step) + 2):
                    device_shell(device, f"cd {shell_quote(str(DEVICE_ROOT))} && " + "; ".join(batch),
                                 "closing the device session")
                return
            except DeviceError:
                continue
        _release(by_serial, self.lease, RECONNECT_S)


class DeviceBusy(DeviceError):
    """The device stayed leased by another session for the whole wait."""


@contextlib.contextmanager
def device_session(found: FoundDevice, job: str, *, lease_timeout: float = LEASE_TIMEOUT_S,
                   on_wait: Callable[[DeviceHolder], None] | None = None) -> Iterator[DeviceSession]:
    """Lease `found` (waiting up to `lease_timeout` s while another session holds it; `on_wait` hears of
    the holder once per poll), read its store, and close the session however the block ends."""
    lease = DeviceLease(found.device, str(DEVICE_ROOT), job)
    holders: list[DeviceHolder] = []

    def waiting(holder: DeviceHolder) -> None:
        holders.append(holder)
        if on_wait is not None:
            on_wait(holder)

    probe = f"mkdir -p {BLOBS} {JOBS} {RUNS}; test -x {NETRUN} && echo {_NETRUN_MARK}; {SNAPSHOT}"
    try:
        out = lease.acquire(lease_timeout, probe, waiting)
    except BaseException:  # Ctrl-C while the answer was on its way: the lease may be ours already
        lease.stop()
        _release(found.device, lease)
        raise
    if out is None:
        held = f" by {holders[-1].describe()}" if holders else ""
        raise DeviceBusy(f"device {found.serial} stayed leased{held} for {lease_timeout:.0f} s",
                         "wait for that session to end, or give a longer --lease-timeout")
    try:
        emulated = out.startswith(_NETRUN_MARK + "\n")
        session = DeviceSession(found, emulated, Store.parse(found.device, out.removeprefix(_NETRUN_MARK + "\n")),
                                lease)
    except BaseException:
        lease.stop()
        _release(found.device, lease)
        raise
    try:
        yield session
    finally:
        session.close()


def _release(device: adbutils.AdbDevice, lease: DeviceLease, within_s: float = 0.0) -> None:
    """Free `lease` in a request of its own, small enough to get through where a longer one failed,
    retried for `within_s` seconds while adb reconnects the device (a cut TCP connection is back in
    about 2 s); a device that stays away lets the lease expire by itself."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            device_shell(device, f"cd {shell_quote(str(DEVICE_ROOT))} && {lease.release_command()}; true",
                         "freeing the device's lease")
            return
        except DeviceError:
            if time.monotonic() >= deadline:
                return
            time.sleep(RETRY_S)


@contextlib.contextmanager
def server_session(server: AdbServer, serial: str, job: str, *, lease_timeout: float = LEASE_TIMEOUT_S,
                   timeout_s: float = 10.0) -> Iterator[DeviceSession]:
    """A session on the device `serial` of `server` (a farm's or the local one), its facts read first."""
    device = server.client(timeout_s).device(serial)
    with device_session(FoundDevice(serial, device_props(device), device), job,
                        lease_timeout=lease_timeout) as session:
        yield session
