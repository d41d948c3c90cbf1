"""Start, list and stop emulated devices running in the background, one process each.

Registry: `$EDGELOOP_HOME/emulators/<name>/` (default `~/.edgeloop/emulators/<name>/`) holds the
device's record (`device.json`, present while it runs), its sandbox (kept across restarts, like a
phone's storage), its event log (`device.log`), its faults (`faults.json`, re-read by the running
device) and its own stdout/stderr (`process.log`).

State lifetime: a device named after its profile (`pixel`) or by hand (`--name`) keeps its state when
it stops, so the next device of that name finds what was pushed (what makes warm deploys fast). A
device with a generated `<profile>-N` name is a scratch device (marked by a `scratch` file): its
state goes when it stops, and a leftover of one that was killed is wiped when the name is reused.
`remove_stopped_states` deletes the state of every device that is not running (`invoke clean --all`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from filelock import FileLock

from deploy.errors import DeviceError, EdgeloopError
from deploy.fsutil import atomic_write_text
from deploy.profiles import NAME, load_profile
from emulator.auth import key_file_problem
from emulator.device import Faults, read_faults, write_faults

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_NAME = NAME  # a device's name is a folder name, as a profile's is
_children: dict[int, subprocess.Popen[bytes]] = {}  # processes this process started, to reap them
SCRATCH_MARK = "scratch"  # a file in the state folder of a device with a generated <profile>-N name


class DevicePaths(NamedTuple):
    record: Path
    sandbox: Path
    log: Path
    faults: Path
    process_log: Path
    adb_servers: Path  # the ports of the adb servers `connect` reached, so `stop` can disconnect it there


def device_paths(state: Path) -> DevicePaths:
    return DevicePaths(state / "device.json", state / "sandbox", state / "device.log", state / "faults.json",
                       state / "process.log", state / "adb_servers.json")


def emulators_home(home: Path | None = None) -> Path:
    """Absolute: the device process runs in its own state folder, so a relative state path would name
    another folder there (unlisted, and left inside that folder)."""
    base = home or Path(os.environ.get("EDGELOOP_HOME") or Path.home() / ".edgeloop")
    return Path(base).absolute() / "emulators"


@dataclass
class DeviceRecord:
    """What the registry knows about a running device (written by the device process itself)."""

    name: str
    profile: str
    port: int
    pid: int
    state: Path

    def write(self) -> None:
        data = {**asdict(self), "state": str(self.state)}
        atomic_write_text(device_paths(self.state).record, json.dumps(data, indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> DeviceRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(data["name"], data["profile"], int(data["port"]), int(data["pid"]), Path(data["state"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


@dataclass
class RunningDevice:
    """Handle on a background device: its identity, where its files are, and how to control it."""

    name: str
    profile: str
    port: int
    pid: int
    state: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sandbox_root(self) -> Path:
        return device_paths(self.state).sandbox

    @property
    def log_path(self) -> Path:
        return device_paths(self.state).log

    @property
    def faults(self) -> Faults:
        return read_faults(device_paths(self.state).faults)

    def set_faults(self, **changes: Any) -> Faults:
        """Change faults on the running device; in effect for everything it handles afterwards."""
        faults = self.faults.replace(**changes)
        write_faults(device_paths(self.state).faults, faults)
        return faults

    def events(self) -> list[dict[str, Any]]:
        """The device's event log, parsed; a last line still being written is left for the next read."""
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]

    def alive(self) -> bool:
        return _serves(self.pid, self.state)

    def connect(self, adb_port: int = 5037) -> None:
        """`adb connect` this device to the adb server listening on adb_port."""
        import adbutils

        client = adbutils.AdbClient(host="127.0.0.1", port=adb_port)
        try:
            answer = client.connect(self.serial, timeout=10)
        except adbutils.AdbError as exc:
            raise DeviceError(f"adb server on port {adb_port} cannot connect {self.serial}: {exc}") from None
        if "connected" not in answer:
            raise DeviceError(f"adb server on port {adb_port} cannot connect {self.serial}: {answer}")
        with FileLock(self.state.parent / ".lock"):
            ports = sorted({*self._adb_servers(), adb_port})
            atomic_write_text(device_paths(self.state).adb_servers, json.dumps(ports) + "\n")

    def _adb_servers(self) -> list[int]:
        try:
            return [int(port) for port in json.loads(device_paths(self.state).adb_servers.read_text())]
        except (OSError, ValueError, TypeError):
            return []

    def _disconnect(self) -> None:
        """`adb disconnect` from every server `connect` reached: a stopped device would otherwise stay
        listed there as `offline` (adb keeps trying to reconnect it). A server that has gone is skipped."""
        import adbutils

        for port in self._adb_servers():
            with contextlib.suppress(adbutils.AdbError, OSError):
                adbutils.AdbClient(host="127.0.0.1", port=port, socket_timeout=5).disconnect(self.serial)
        device_paths(self.state).adb_servers.unlink(missing_ok=True)

    def announce(self, adb_port: int = 5037) -> None:
        """Tell a running adb server about this device the way Android's emulator does
        (`host:emulator:PORT`): it then lists it as `emulator-<port-1>` without `adb connect`."""
        request = f"host:emulator:{self.port}".encode()
        try:
            with socket.create_connection(("127.0.0.1", adb_port), timeout=10) as sock:
                sock.sendall(b"%04x" % len(request) + request)
        except OSError as exc:
            raise DeviceError(
                f"no adb server on port {adb_port}: {exc.strerror}", "start one: adb start-server"
            ) from None

    def stop(self) -> None:
        """Disconnect it from the adb servers it was connected to, then stop the device process
        (SIGTERM, then SIGKILL after STOP_TIMEOUT_S); idempotent."""
        process = self._process or _children.get(self.pid)
        self._disconnect()
        if _serves(self.pid, self.state):  # never signal a process that merely reuses a dead device's pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            if not _wait_exit(self.pid, process, STOP_TIMEOUT_S):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                _wait_exit(self.pid, process, STOP_TIMEOUT_S)
        if process is not None:
            process.wait()
            _children.pop(self.pid, None)
        device_paths(self.state).record.unlink(missing_ok=True)
        if (self.state / SCRATCH_MARK).exists():
            with FileLock(self.state.parent / ".lock"):  # a starter reusing the name waits for this
                # Checked again under the lock: the name may have been taken by hand (kept) meanwhile,
                # and a process that outlived SIGKILL still has its files open.
                if (self.state / SCRATCH_MARK).exists() and not self.alive() and _live_record(self.state) is None:
                    shutil.rmtree(self.state, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie that is only waiting to be reaped counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _serves(pid: int, state: Path) -> bool:
    """True while `pid` is the device process of this state folder: after a reboot or a kill, a stale
    record's pid may belong to an unrelated process, which must not be listed, or signalled."""
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return "emulator" in argv and "--state" in argv[:-1] and Path(argv[argv.index("--state") + 1]) == Path(state)


def _live_record(state: Path) -> DeviceRecord | None:
    """The record of the device process serving this state folder, or None when none does."""
    record = DeviceRecord.read(device_paths(state).record)
    return record if record is not None and _serves(record.pid, record.state) else None


def _wait_exit(pid: int, process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Wait for a process to end, without polling: a pidfd becomes readable when it exits (Popen.wait
    with a timeout sleeps in steps of up to 50 ms, which a deploy's stop of its device paid each time).
    A child of ours is reaped once it has ended."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        ended = True
    else:
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
            ended = bool(ready) or not _alive(pid)
        finally:
            os.close(fd)
    if ended and process is not None:
        process.wait()
    return ended


def _private(folder: Path) -> None:
    """Make `folder` (and any missing parent) and leave it 0700."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
    except OSError as exc:
        raise EdgeloopError(f"cannot make {folder} private to this user ({exc.strerror})",
                            "set EDGELOOP_HOME to a folder of your own") from None


def _reserve_name(root: Path, profile: str, name: str | None) -> Path:
    """The state folder for a new device: the given name, or the first free `<profile>[-N]`.

    `<profile>` and a given name keep their state; a generated `<profile>-N` starts empty (a scratch
    device), and skips a stopped folder of that name made by hand, which is someone's state."""
    if name is not None and not _NAME.fullmatch(name):
        raise EdgeloopError(f"invalid device name '{name}'", "use letters, digits, '.', '_' and '-'")
    candidates = [name] if name else [profile] + [f"{profile}-{i}" for i in range(2, 1000)]
    for candidate in candidates:
        state = root / candidate
        running = _live_record(state)
        if running is not None:
            if name:
                raise EdgeloopError(
                    f"emulated device '{name}' is already running on port {running.port}",
                    f"stop it first: invoke emulator.stop -n {name}",
                )
            continue
        scratch = name is None and candidate != profile
        if scratch:
            if state.exists() and not (state / SCRATCH_MARK).exists():
                continue
            shutil.rmtree(state, ignore_errors=True)  # left by a scratch device that was killed
        state.mkdir(parents=True, exist_ok=True)
        if scratch:
            (state / SCRATCH_MARK).touch()
        else:
            (state / SCRATCH_MARK).unlink(missing_ok=True)  # named by hand now: its state is kept
        device_paths(state).record.unlink(missing_ok=True)
        return state
    raise EdgeloopError(f"too many emulated '{profile}' devices", "stop some: invoke emulator.stop --all")


def start_device(
    profile: str,
    *,
    name: str | None = None,
    port: int | None = None,
    faults: Faults | None = None,
    home: Path | None = None,
    exit_with_parent: bool = False,
    adb_port: int | None = None,
    secure: bool = True,
    adb_keys: tuple[Path, ...] = (),
) -> RunningDevice:
    """Start a device process and return once it accepts connections.

    secure: hosts authenticate with an adb key (the user's own, and `adb_keys`), as on a user build.

    exit_with_parent: the device stops when this process ends (for tests; the CLI leaves it running).
    adb_port: also `adb connect` it to the adb server on that port; if that fails, the device is stopped.
    """
    resolved = load_profile(profile)  # fail here, with the profile error, rather than in the child
    for option, value, free in (("port", port, "; leave --port out for a free one"), ("adb port", adb_port, "")):
        if value is not None and not 0 < value < 65536:
            raise EdgeloopError(f"invalid {option} {value}", f"a TCP port is 1-65535{free}")
    for key in adb_keys:
        if (problem := key_file_problem(Path(key))) is not None:
            raise EdgeloopError(f"--adb-key {key}: {problem}", "give the path of an adbkey.pub")
    root = emulators_home(home)
    for folder in (root.parent, root):  # other users of the machine see nothing of any device's state
        _private(folder)
    with FileLock(root / ".lock"):
        state = _reserve_name(root, resolved.name, name)
        _private(state)
        paths = device_paths(state)
        write_faults(paths.faults, faults or Faults())
        command = [
            sys.executable, "-m", "emulator",
            "--profile", str(resolved.path), "--name", state.name, "--state", str(state), "--port", str(port or 0),
        ]  # fmt: skip
        if exit_with_parent:
            command += ["--parent-pid", str(os.getpid())]
        if not secure:
            command.append("--insecure")
        for key in adb_keys:
            command += ["--adb-key", str(Path(key).absolute())]
        with open(paths.process_log, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # Its working directory is its own state folder, never the checkout: nothing the device
                # runs can reach a host file by a relative path (onnxruntime resolves some against it).
                cwd=state,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    [str(Path(__file__).resolve().parent.parent), *filter(None, [os.environ.get("PYTHONPATH")])])},
            )
        _children[process.pid] = process
        ready = _wait_ready(process, START_TIMEOUT_S)
    if ready is None:
        process.kill()
        process.wait()
        _children.pop(process.pid, None)
        tail = paths.process_log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise DeviceError(f"emulated device '{state.name}' did not start: {tail[0]}", f"see {paths.process_log}")
    device = RunningDevice(state.name, resolved.name, int(ready["port"]), process.pid, state, process)
    if adb_port is not None:
        try:
            device.connect(adb_port)
        except DeviceError:
            device.stop()
            raise
    return device


def _wait_ready(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any] | None:
    """The child's readiness line, or None if it exits or stays silent until the deadline."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
            return None
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            return None
        line += chunk
    process.stdout.close()
    try:
        return json.loads(line)
    except ValueError:
        return None


def list_devices(home: Path | None = None) -> list[RunningDevice]:
    """The devices running now; records left by devices that died are removed."""
    root = emulators_home(home)
    found = []
    for path in sorted(root.glob("*/device.json")):
        record = DeviceRecord.read(path)
        if record is None or not _serves(record.pid, record.state):
            path.unlink(missing_ok=True)
            continue
        found.append(
            RunningDevice(record.name, record.profile, record.port, record.pid, record.state, _children.get(record.pid))
        )
    return found


def find_device(name: str, home: Path | None = None) -> RunningDevice:
    """The running device called `name`; a user error naming the command that lists them otherwise."""
    for device in list_devices(home):
        if device.name == name:
            return device
    raise EdgeloopError(f"no running emulated device named '{name}'", "see: invoke emulator.list")


def stop_device(name: str, home: Path | None = None) -> None:
    find_device(name, home).stop()


def stop_all(home: Path | None = None) -> list[str]:
    """Stop every running device; returns their names."""
    devices = list_devices(home)
    for device in devices:
        device.stop()
    return [device.name for device in devices]


class StateCleanup(NamedTuple):
    removed: list[str]  # names whose state folder was deleted
    running: list[str]  # names kept because their device is running


def _stopped(root: Path) -> Iterator[tuple[Path, bool]]:
    """Every state folder under root, with whether no device serves it now. A link is no state folder
    (start_device makes real ones): what it points at is outside the emulators folder, so it is left alone."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []
    for state in folders:
        yield state, _live_record(state) is None


def stopped_states(home: Path | None = None) -> list[str]:
    """Names of the devices that are not running but whose state (sandbox, logs) is kept."""
    return [state.name for state, stopped in _stopped(emulators_home(home)) if stopped]


def remove_stopped_states(home: Path | None = None, names: Collection[str] | None = None) -> StateCleanup:
    """Delete the state folder (sandbox, logs, faults) of every emulated device that is not running, or
    of the named ones only: the next device of that name starts empty. A running device's state is never
    touched. A name with no state folder is an error, so a typo does not pass for a reset."""
    root = emulators_home(home)
    removed: list[str] = []
    running: list[str] = []
    # Under the lock no device starts (or reuses a name) meanwhile; with no folder there is nothing to guard.
    with FileLock(root / ".lock") if root.is_dir() else contextlib.nullcontext():
        states = list(_stopped(root))
        unknown = sorted(set(names or ()) - {state.name for state, _ in states})
        if unknown:
            raise EdgeloopError(f"no emulated device named '{unknown[0]}' has state to delete",
                                "`invoke emulator.list` names the running and the stopped ones")
        for state, stopped in states:
            if names is not None and state.name not in names:
                continue
            if stopped:
                shutil.rmtree(state)
                removed.append(state.name)
            else:
                running.append(state.name)
    return StateCleanup(removed, running)


@contextlib.contextmanager
def emulated_device(profile: str, **kwargs: Any) -> Iterator[RunningDevice]:
    """A device for the duration of a `with` block; always stopped, and never outlives this process."""
    kwargs.setdefault("exit_with_parent", True)
    device = start_device(profile, **kwargs)
    try:
        yield device
    finally:
        device.stop()
