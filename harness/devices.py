"""Finding devices: an adb server (started on demand), its devices, their properties, the profile they match.

Real phones, farm hosts and the emulated device all come through the same adb server, so this is
the only place that decides which device a deploy talks to.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import adbutils

from deploy.errors import DeviceError, EdgeloopError
from deploy.profiles import Profile

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5037
SERVER_START_TIMEOUT = 30.0
PROP_TIMEOUT = 20.0
# What adbutils raises when a device or the server goes away mid-conversation: its own errors, socket
# errors, EOF on a short read, and (in sync STAT/LIST) a short struct or a failed assertion on the reply.
DEVICE_FAILURES: tuple[type[BaseException], ...] = (adbutils.AdbError, OSError, EOFError, struct.error, AssertionError)
_GETPROP_LINE = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]$")


class _Connection(adbutils.AdbConnection):
    def _safe_connect(self) -> socket.socket:
        return self._create_socket()  # refused: an AdbConnectionError, and nothing started

    def close(self) -> None:
        """adbutils' close without its 10 ms sleep after the shutdown: a warm deploy of the example opens
        about 36 connections, so the sleeps were a third of its device time. The shutdown still sends
        the FIN at once, however many references to the socket remain (adbutils PR #154)."""
        sock = self._AdbConnection__conn  # adbutils keeps the socket private
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        sock.close()
        self._AdbConnection__conn = None


class AdbClient(adbutils.AdbClient):
    """adbutils' client, except that a server that does not answer is an error. adbutils itself then
    runs `adb start-server` on *its* default port (5037, or $ANDROID_ADB_SERVER_PORT), whatever server
    it was asked for, and fails anyway: a farm host that went away would leave a stray local server."""

    def __init__(self, host: str, port: int, socket_timeout: float | None = None) -> None:
        super().__init__(host=host, port=port, socket_timeout=socket_timeout)
        self._timeout = socket_timeout

    def make_connection(self, timeout: float | None = None) -> adbutils.AdbConnection:
        conn = _Connection(self.host, self.port)
        if timeout or self._timeout:
            conn.conn.settimeout(timeout or self._timeout)
        return conn


@dataclass(frozen=True)
class AdbServer:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self, socket_timeout: float | None = None) -> AdbClient:
        """A client of this server; with `socket_timeout`, a host that drops off the network cannot hang it."""
        return AdbClient(self.host.strip("[]"), self.port, socket_timeout)


@dataclass(frozen=True)
class FoundDevice:
    serial: str
    props: dict[str, str]
    device: adbutils.AdbDevice

    @property
    def label(self) -> str:
        names = (self.props.get("ro.product.manufacturer"), self.props.get("ro.product.model"))
        model = " ".join(p for p in names if p)
        return f"{self.serial} ({model or 'unknown model'})"


def parse_adb_address(text: str | None = None) -> AdbServer:
    """`HOST:PORT`, `PORT` or None (then $ANDROID_ADB_SERVER_PORT, else 127.0.0.1:5037)."""
    if not text:
        return AdbServer(DEFAULT_HOST, int(os.environ.get("ANDROID_ADB_SERVER_PORT") or DEFAULT_PORT))
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_HOST, text
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise EdgeloopError(f"bad adb server address '{text}'", "use HOST:PORT, e.g. 127.0.0.1:5037")
    return AdbServer(host or DEFAULT_HOST, int(port))


def _is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def adb_binary() -> str:
    """adbutils' own platform-tools adb (a known, recent version), else whatever adbutils finds."""
    shipped = Path(adbutils.__file__).parent / "binaries" / "adb"
    return str(shipped) if os.access(shipped, os.X_OK) else adbutils.adb_path()


def listening(host: str, port: int) -> bool:
    """Whether anything accepts connections at host:port: an adb server (a refused connection starts
    nothing: AdbClient), or an emulated device, which stops listening as soon as it starts to stop."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def ensure_server(server: AdbServer) -> adbutils.AdbClient:
    """Reach the adb server; start a local one (adbutils' adb) when none answers, as `adb` itself does."""
    client = server.client()
    if listening(server.host, server.port):
        return client
    if not _is_local(server.host):
        raise DeviceError(f"no adb server answers at {server.address}",
                          "start it there (`adb -a start-server`) or pick another with --adb")
    adb = adb_binary()
    try:
        subprocess.run([adb, "-P", str(server.port), "start-server"], check=True, capture_output=True,
                       timeout=SERVER_START_TIMEOUT)
        client.server_version()
    except (subprocess.SubprocessError, *DEVICE_FAILURES) as exc:
        raise DeviceError(f"cannot start an adb server on port {server.port}: {exc}",
                          "check that the port is free, or pass --adb HOST:PORT of a running server") from None
    return client


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` with no argument prints `[key]: [value]` lines (values may be empty)."""
    props = {}
    for line in text.splitlines():
        match = _GETPROP_LINE.match(line.strip())
        if match:
            props[match["key"]] = match["value"]
    return props


def device_props(device: adbutils.AdbDevice) -> dict[str, str]:
    try:
        result = device.shell2("getprop", timeout=PROP_TIMEOUT, v2=True)
    except DEVICE_FAILURES as exc:
        raise DeviceError(f"{device.serial}: cannot read its properties ({exc})",
                          "check the device with `adb devices -l`") from None
    return parse_getprop(result.output)


def _handle(client: adbutils.AdbClient, info: adbutils.AdbDeviceInfo) -> adbutils.AdbDevice:
    """Address the device by transport id when the server gives one: each request then skips the
    server-version round trip adbutils makes for serials (about half the cost of a sync call)."""
    transport = info.tags.get("transport_id", "")
    return adbutils.AdbDevice(client, serial=info.serial, transport_id=int(transport) if transport.isdigit() else None)


def list_devices(client: adbutils.AdbClient) -> list[FoundDevice]:
    """Every device the server sees in state `device` (offline and unauthorized ones cannot be used)."""
    found = []
    try:
        infos = client.list(extended=True)
    except DEVICE_FAILURES as exc:
        raise DeviceError(f"the adb server stopped answering ({exc})", "restart it with `adb kill-server`") from None
    for info in infos:
        if info.state != "device":
            continue
        device = _handle(client, info)
        found.append(FoundDevice(info.serial, device_props(device), device))
    return found


def find_device(client: adbutils.AdbClient, profile: Profile, serial: str | None = None) -> FoundDevice:
    """The one device to use for `profile`; every ambiguity is a one-line error that says what to do."""
    devices = list_devices(client)
    seen = ", ".join(d.label for d in devices) or "none"
    if serial:
        chosen = [d for d in devices if d.serial == serial]
        if not chosen:
            raise EdgeloopError(f"no device with serial '{serial}' (devices seen: {seen})",
                                "check `adb devices -l` or drop --serial")
        if not profile.matches(chosen[0].props):
            raise EdgeloopError(f"device {chosen[0].label} does not match profile '{profile.name}'",
                                "choose the profile of that device with --device")
        return chosen[0]
    matching = [d for d in devices if profile.matches(d.props)]
    if not matching:
        raise EdgeloopError(f"no device matches profile '{profile.name}' (devices seen: {seen})",
                            f"connect one, or add --emulate to use an emulated {profile.name}")
    if len(matching) > 1:
        raise EdgeloopError(f"{len(matching)} devices match profile '{profile.name}': "
                            f"{', '.join(d.label for d in matching)}", "choose one with --serial")
    return matching[0]


def connect(client: adbutils.AdbClient, serial: str, timeout: float = 20.0) -> adbutils.AdbDevice:
    """`adb connect HOST:PORT` and wait until the server lists the device as ready."""
    try:
        message = client.connect(serial, timeout=timeout)
        if "connected" not in message:
            raise DeviceError(f"adb could not connect to {serial}: {message}")
        client.wait_for(serial, state="device", timeout=timeout)
        infos = [i for i in client.list(extended=True) if i.serial == serial]
    except DEVICE_FAILURES as exc:
        raise DeviceError(f"adb could not connect to {serial}: {exc}") from None
    return _handle(client, infos[0]) if infos else client.device(serial=serial)
