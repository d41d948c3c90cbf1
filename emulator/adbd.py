"""The device side of adb over TCP: handshake, streams and service dispatch (docs/spec.md §9).

One thread reads each connection; each OPENed service runs in its own thread with a Stream.
A connection that sends garbage is closed and logged; the others keep being served.
Faults that act on the link (drop after N bytes, throttle) are applied here.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
import traceback
from collections.abc import Callable

from emulator import auth
from emulator.device import EmulatedDevice
from emulator.proto import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_WRTE,
    MAX_PAYLOAD,
    VERSION,
    VERSION_CHECKSUMMED,
    ProtocolError,
    Sender,
    SocketReader,
    read_message,
)
from emulator.services import run_shell
from emulator.stream import Stream, StreamClosed
from emulator.sync import SyncProtocolError, SyncSession

FEATURES = ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir")  # cmd: emulator/cmd_services.py
WIND_DOWN_S = 5.0  # how long a closing connection (or a stopping device) waits for its cancelled services
MAX_CONNECTIONS = 64  # more at once are accepted and closed at once: one host holding sockets cannot starve others
ACCEPT_BACKOFF_S = 0.05  # after a failed accept (EMFILE: out of file descriptors) before the next one
REBOOT_S = 2.0  # `adb reboot`: the device is gone (connections closed, new ones refused) for this long
# What adbd on a user build (it runs as the shell user) answers to the services that need more.
USER_BUILD = {
    "root": "adbd cannot run as root in production builds\n",
    "unroot": "adbd not running as root\n",
    "remount": 'Not running as root. Try "adb root" first.\n',
    "disable-verity": "disable-verity only works for userdebug builds\n",
    "enable-verity": "enable-verity only works for userdebug builds\n",
}
Service = Callable[[Stream, str], None]


def _join_all(threads: list[threading.Thread], timeout: float) -> None:
    """Wait for the threads to end, all within one deadline."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def listen(port: int = 0) -> socket.socket:
    """A listening socket on loopback only (port 0: a free ephemeral port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


def banner(device: EmulatedDevice) -> bytes:
    props = device.props
    identity = ";".join(f"ro.product.{key}={props.get(f'ro.product.{key}', '')}" for key in ("name", "model", "device"))
    return f"device::{identity};features={','.join(FEATURES)}".encode()


class _Throttle:
    """Caps one direction of a connection to the device's throttle_bps fault (0 = unlimited)."""

    def __init__(self, device: EmulatedDevice) -> None:
        self._device = device
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._bytes = 0
        self._rate: int | None = None

    def __call__(self, nbytes: int) -> None:
        rate = self._device.faults.throttle_bps
        with self._lock:
            if rate != self._rate:  # restart the budget whenever the rate changes
                self._rate, self._start, self._bytes = rate, time.monotonic(), 0
            if rate is None:
                return
            self._bytes += nbytes
            delay = self._start + self._bytes / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # this *is* the throttle, not a synchronisation


class Connection:
    """One host connection (normally one adb server) and its streams."""

    def __init__(self, device: EmulatedDevice, sock: socket.socket, peer: str,
                 reboot: Callable[[], None] = lambda: None) -> None:
        self.device = device
        self._reboot = reboot
        self.sock = sock
        self.peer = peer
        self.sender = Sender(sock)
        self.max_payload = MAX_PAYLOAD
        self._streams: dict[int, Stream] = {}
        self._workers: list[threading.Thread] = []  # service threads, waited for when the connection ends
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_throttle = _Throttle(device)
        self._recv_throttle = _Throttle(device)
        self._authorized = not device.secure
        self._token = b""  # the AUTH token the host must sign next
        self._version = VERSION

    def serve(self) -> None:
        reader = SocketReader(self.sock)
        self.device.log("connect", peer=self.peer)
        reason = "closed by host"
        try:
            if self._loop(reader):
                reason = "dropped by the drop_after_bytes fault"
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
        except OSError as exc:
            reason = f"socket error: {exc}"
        finally:
            with self._lock:
                streams = list(self._streams.values())
                self._streams.clear()
            for stream in streams:
                stream.host_closed()
            # Logged before the close, so whoever sees the connection end finds the reason already logged.
            self.device.log("disconnect", peer=self.peer, reason=reason)
            self.sock.close()
            # Their streams are closed, which cancels what they run: let them finish (and log) before the
            # connection counts as ended, so a stopping device does not cut programs off mid-cleanup.
            _join_all(self._workers, WIND_DOWN_S)

    def _loop(self, reader: SocketReader) -> bool:
        """Handle messages until the host hangs up (False) or a drop fault fires (True)."""
        received = 0
        generation = self.device.faults_generation
        while (msg := read_message(reader, MAX_PAYLOAD)) is not None:
            faults = self.device.faults
            if generation != self.device.faults_generation:
                generation, received = self.device.faults_generation, 0
            received += 24 + len(msg.data)
            self._recv_throttle(24 + len(msg.data))
            if faults.drop_after_bytes is not None and received >= faults.drop_after_bytes:
                self.device.log("fault-drop", peer=self.peer, received=received)
                if faults.drop_once:
                    self.device.clear_drop()
                self.sock.shutdown(socket.SHUT_RDWR)
                return True
            self._handle(msg.command, msg.arg0, msg.arg1, msg.data)
        return False

    def _handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self.max_payload = max(4096, min(arg1, MAX_PAYLOAD))
            self._version = max(min(arg0, VERSION), VERSION_CHECKSUMMED)  # an older host gets its own
            self.sender.checksums = self._version < VERSION
            if self._authorized:
                self._connected()
            else:
                self._challenge()
        elif command == A_AUTH:
            self._auth(arg0, data)
        elif not self._authorized:
            return  # as adbd: nothing but CNXN and AUTH before the host has proved its key
        elif command == A_OPEN:
            self._open(arg0, data.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == A_WRTE:
            stream = self._streams.get(arg1)
            if stream is None:
                self.sender.send(A_CLSE, 0, arg0)
            else:
                stream.deliver(data)
        elif command == A_OKAY:
            stream = self._streams.get(arg1)
            if stream is not None:
                stream.acknowledged()
        elif command == A_CLSE:
            with self._lock:
                stream = self._streams.pop(arg1, None)
            if stream is not None:
                stream.host_closed()  # answered with a CLSE of ours once its service has stopped
        # STLS: TLS is for wireless debugging's pairing, which the emulated device does not offer.

    def _connected(self) -> None:
        self.sender.send(A_CNXN, self._version, MAX_PAYLOAD, banner(self.device))

    def _challenge(self) -> None:
        self._token = auth.new_token()
        self.sender.send(A_AUTH, auth.TOKEN, 0, self._token)

    def _auth(self, kind: int, data: bytes) -> None:
        """A signature of the token (then CNXN, or a new token), or the host's public key on offer."""
        if self._authorized or not self._token:
            return
        if kind == auth.SIGNATURE:
            keys = auth.load_keys([*auth.user_key_files(), *self.device.adb_keys])
            if any(key.verifies(self._token, data) for key in keys):
                self._authorized = True
                self.device.log("auth", peer=self.peer)
                self._connected()
            else:
                self._challenge()
        elif kind == auth.RSAPUBLICKEY:  # a phone would ask its user; this device has none to ask
            self.device.log("auth-refused", peer=self.peer, key=data.rstrip(b"\0").decode(errors="replace")[-60:])

    def _open(self, remote_id: int, service: str) -> None:
        target = self._service(service)
        if target is None or remote_id == 0:
            self.device.log("service-refused", service=service)
            self.sender.send(A_CLSE, 0, remote_id)
            return
        local_id = next(self._ids)
        stream = Stream(
            self.sender, local_id, remote_id, self.max_payload, on_close=self._forget, throttle=self._send_throttle
        )
        with self._lock:
            self._streams[local_id] = stream
        self.sender.send(A_OKAY, local_id, remote_id)
        worker = threading.Thread(
            target=self._run, args=(stream, service, target), daemon=True, name=f"{self.device.name}-{service[:20]}"
        )
        worker.start()
        self._workers = [t for t in self._workers if t.is_alive()] + [worker]

    def _service(self, service: str) -> Service | None:
        """The handler for a service name, or None when the device does not offer it."""
        name, _, _command = service.partition(":")
        if service == "sync:":
            return self._sync
        if name == "shell" or name.startswith("shell,") or name == "exec":
            return self._shell
        if name in USER_BUILD or name in ("tcpip", "usb", "reverse", "reboot"):
            return self._system
        return None

    def _sync(self, stream: Stream, _service: str) -> None:
        SyncSession(stream, self.device, self.max_payload).serve()

    def _shell(self, stream: Stream, service: str) -> None:
        run_shell(stream, self.device, service, max_payload=self.max_payload)

    def _system(self, stream: Stream, service: str) -> None:
        """The services a user build answers without doing much: root, remount and the like refuse as
        adbd does; tcpip/usb say what adbd says (the device listens on TCP whatever it is told);
        reverse forwarding is refused (the device opens no sockets); reboot takes the device away for
        REBOOT_S, as a phone drops off adb while it restarts."""
        name, _, argument = service.partition(":")
        self.device.log("system-service", service=service)
        if name in USER_BUILD:
            stream.write(USER_BUILD[name].encode())
        elif name == "tcpip":
            stream.write(f"restarting in TCP mode port: {argument or 5555}\n".encode())
        elif name == "usb":
            stream.write(b"restarting in USB mode\n")
        elif name == "reverse":
            if argument == "list-forward":
                stream.write(b"OKAY0000")
            else:
                message = b"reverse forwarding is not supported by the emulated device"
                stream.write(b"FAIL" + f"{len(message):04x}".encode() + message)
        else:
            stream.close()
            self._reboot()

    def _run(self, stream: Stream, service: str, target: Service) -> None:
        try:
            target(stream, service)
        except (StreamClosed, OSError):
            pass
        except SyncProtocolError as exc:
            self.device.log("sync-error", error=str(exc))
        except Exception as exc:  # a bug in one service must not take the device down
            self.device.log("service-error", service=service, error=repr(exc), traceback=traceback.format_exc())
        finally:
            stream.close()

    def _forget(self, stream: Stream) -> None:
        with self._lock:
            self._streams.pop(stream.local_id, None)


class AdbDevice:
    """Accepts connections on a listening socket and serves each in its own thread."""

    def __init__(self, device: EmulatedDevice, sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._down_until = 0.0  # rebooting: connections before then are closed at once

    def serve_forever(self) -> None:
        """Accept until shutdown(), then wait for the connections to wind down."""
        self.device.log("listening", port=self.port, profile=self.device.profile.name)
        threads: list[threading.Thread] = []
        while not self._stopped.is_set():
            try:
                conn, addr = self.sock.accept()
            except OSError as exc:  # out of descriptors, a connection reset before accept...: never fatal
                if self._stopped.is_set():
                    break
                self.device.log("accept-error", error=str(exc))
                self._stopped.wait(ACCEPT_BACKOFF_S)  # a backoff while the descriptors are used up
                continue
            if time.monotonic() < self._down_until:
                conn.close()
                continue
            with self._lock:
                full = len(self._connections) >= MAX_CONNECTIONS
                if not full:
                    self._connections.add(conn)
            if full:
                self.device.log("connection-refused", peer=f"{addr[0]}:{addr[1]}", limit=MAX_CONNECTIONS)
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(conn, f"{addr[0]}:{addr[1]}"), daemon=True)
            thread.start()
            threads = [t for t in threads if t.is_alive()] + [thread]
        _join_all(threads, WIND_DOWN_S)  # they wind down in parallel, each within WIND_DOWN_S
        self.device.log("stopped")

    def _serve(self, conn: socket.socket, peer: str) -> None:
        try:
            Connection(self.device, conn, peer, self.reboot).serve()
        finally:
            with self._lock:
                self._connections.discard(conn)

    def reboot(self) -> None:
        """Go away for REBOOT_S: every connection is closed and new ones are refused, then the device is
        back with its storage as it was (a phone's /data survives its reboot)."""
        self.device.log("reboot", down_s=REBOOT_S)
        self._down_until = time.monotonic() + REBOOT_S
        self._close_connections()

    def _close_connections(self) -> None:
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def start(self) -> threading.Thread:
        """Serve in a background thread (in-process devices for tests)."""
        thread = threading.Thread(target=self.serve_forever, daemon=True, name=f"adbd-{self.device.name}")
        thread.start()
        return thread

    def shutdown(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._close_connections()
