"""One emulated device's state: identity (profile and props), image, filesystem, faults and event log.

Faults can change while the device runs: the lifecycle writes them to a small JSON file that the
device re-reads whenever its stat signature changes (one `stat` per look, no polling thread), so
a change is in effect for every packet the device handles after the write.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_write_text
from deploy.profiles import Profile
from deploy.yamlnode import did_you_mean
from emulator.sandbox import Sandbox

if TYPE_CHECKING:
    from emulator.image import DeviceImage


@dataclass
class Faults:
    """Failures on demand for reliability tests.

    drop_after_bytes: close a connection once it has received this many more bytes from the host
        (counted per connection, from when it opened or the fault was last set); with drop_once
        the fault clears itself after the first drop.
    throttle_bps: cap each connection's traffic in each direction to this many bytes per second.
    storage_full: every write fails with 'No space left on device'.
    netrun_crash: net-run exits 139 ('Segmentation fault'); netrun_hang: net-run blocks until cancelled.
    slowdown: net-run computes this many times as long (1.3: 30 % slower), as a slower or throttled chip.
    """

    drop_after_bytes: int | None = None
    throttle_bps: int | None = None
    storage_full: bool = False
    netrun_crash: bool = False
    netrun_hang: bool = False
    drop_once: bool = False
    slowdown: float | None = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "faults") -> Faults:
        """Validate names and types; bad input is a user error naming the key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            key = key.replace("-", "_")
            if key not in known:
                raise EdgeloopError(f"{source}: unknown fault '{key}'", did_you_mean(key, known))
            if key in ("drop_after_bytes", "throttle_bps"):
                values[key] = _positive_or_none(key, value, source)
            elif key == "slowdown":
                values[key] = _factor_or_none(key, value, source)
            else:
                values[key] = _boolean(key, value, source)
        return cls(**values)

    def replace(self, **changes: Any) -> Faults:
        return Faults.from_mapping({**asdict(self), **changes})

    def active(self) -> dict[str, Any]:
        """Only the faults that are on, for logs and listings."""
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


def parse_fault_items(items: list[str]) -> dict[str, str]:
    """Command-line faults: `name=value`, or a bare `name` meaning true (`storage_full`)."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        parsed[key.strip()] = value.strip() if sep else "true"
    return parsed


def _positive_or_none(key: str, value: Any, source: str) -> int | None:
    if value is None or value in ("", "none", "off"):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number <= 0 or isinstance(value, bool):
        raise EdgeloopError(f"{source}: fault '{key}' must be a positive integer, got {value!r}")
    return number


def _factor_or_none(key: str, value: Any, source: str) -> float | None:
    if value is None or value in ("", "none", "off"):
        return None
    try:
        factor = float(value)
    except (TypeError, ValueError):
        factor = 0.0
    if isinstance(value, bool) or not math.isfinite(factor) or factor < 1:
        raise EdgeloopError(f"{source}: fault '{key}' must be a factor of at least 1 (1.3: 30 % slower), got {value!r}")
    return factor


def _boolean(key: str, value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise EdgeloopError(f"{source}: fault '{key}' must be true or false, got {value!r}")


def read_faults(path: Path) -> Faults:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Faults()
    except (OSError, ValueError) as exc:
        raise EdgeloopError(f"{path}: cannot read faults: {exc}") from None
    return Faults.from_mapping(data, str(path))


def write_faults(path: Path, faults: Faults) -> None:
    atomic_write_text(path, json.dumps(asdict(faults), indent=1) + "\n")


def device_serialno(name: str) -> str:
    """A stable `ro.serialno` per device name, so two emulated devices never share one."""
    return "EMU" + hashlib.sha256(name.encode()).hexdigest()[:12].upper()


class EmulatedDevice:
    """What every service of one device shares. Thread-safe: connections run in parallel."""

    def __init__(
        self,
        profile: Profile,
        *,
        name: str,
        port: int,
        sandbox_root: Path,
        log_path: Path,
        faults: Faults | None = None,
        faults_path: Path | None = None,
        secure: bool = True,
        adb_keys: tuple[Path, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` (monotonic seconds) drives the image's activity: tests that drive it get exact readings."""
        self.profile = profile
        self.name = name
        self.port = port
        self.serial = f"127.0.0.1:{port}"
        # secure: hosts must prove they hold an accepted adb key (emulator.auth), as on a user build
        self.secure = secure
        self.adb_keys = adb_keys  # public key files accepted besides the user's own
        # Imported here: the host side (emulator.lifecycle) imports this module for Faults, not the image.
        from emulator import tools  # noqa: F401  (it registers the image's programs: logcat, dumpsys, settings, taskset)
        from emulator.image import DeviceImage
        from emulator.shell.procs import table_for

        self.image: DeviceImage = DeviceImage(profile, device_serialno(name), secure=secure, clock=clock,
                                              processes=lambda: table_for(self).processes())
        self.props = self.image.props
        self.fs = Sandbox(sandbox_root, profile.storage_mb * 1024 * 1024, hexagon=profile.hexagon is not None,
                          virtual=self.image.files)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._log_lock = threading.Lock()
        self._faults_lock = threading.Lock()
        self._faults_path = faults_path
        self._faults_sig: tuple[int, int, int] | None = None
        self._faults = Faults()
        self.faults_generation = 0  # bumps on every change, so connections can restart their counters
        if faults is not None:
            self.set_faults(faults)
        self._refresh_faults()

    @property
    def faults(self) -> Faults:
        """The faults in effect now (re-read from the control file if it changed)."""
        self._refresh_faults()
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Change faults in-process (and in the control file, so both views agree)."""
        if self._faults_path is not None:
            write_faults(self._faults_path, faults)
        self._apply(faults)

    def _refresh_faults(self) -> None:
        if self._faults_path is None:
            return
        try:
            st = os.stat(self._faults_path)
        except FileNotFoundError:
            return
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._faults_sig:
            return
        with self._faults_lock:
            if signature != self._faults_sig:
                self._faults_sig = signature
                self._apply(read_faults(self._faults_path))

    def _apply(self, faults: Faults) -> None:
        if faults != self._faults:
            self.log("faults", **faults.active())
            self.faults_generation += 1
        self._faults = faults
        self.fs.storage_full = faults.storage_full

    def clear_drop(self) -> None:
        """A drop_once fault has fired: switch it off for everyone."""
        self.set_faults(self.faults.replace(drop_after_bytes=None, drop_once=False))

    def log(self, event: str, **fields: Any) -> None:
        """Append one JSON line: monotonic and wall-clock time, device name, event and fields."""
        record = {"t": time.monotonic(), "wall": time.time(), "device": self.name, "event": event, **fields}
        line = (json.dumps(record, default=str) + "\n").encode()
        with self._log_lock:
            if self._log_fd >= 0:
                os.write(self._log_fd, line)
        self.image.log.event(event, fields)

    def close(self) -> None:
        with self._log_lock:
            if self._log_fd >= 0:
                os.close(self._log_fd)
                self._log_fd = -1
