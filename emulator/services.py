"""The shell services: `shell,v2:` (framed stdin/stdout/stderr/exit), `shell:` and `exec:` (raw), each
with or without a terminal (emulator.pty) as adbd decides.

They connect an adb stream to the device's restricted shell (emulator.shell): the shell only runs
its built-ins and the device's Python system programs, never a host program.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from emulator.device import EmulatedDevice
from emulator.pty import Pty
from emulator.shell import COMMANDS, Shell
from emulator.stream import Stream, StreamClosed

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW = range(6)
_PACKET = struct.Struct("<BI")
INTERACTIVE = "sh"  # what an empty command runs without a terminal: the shell reading commands from stdin
WINDOW = re.compile(rb"(\d+)x(\d+),(\d+)x(\d+)")  # adb's window-size packet: rows x cols, x px x y px


STDIN_LIMIT = 1 << 20  # bytes of stdin a command may leave unread before the host's writes wait


class _Pipe(io.RawIOBase):
    """stdin of a running command: filled by the stream pump, read by the shell. Bounded like a pipe:
    past STDIN_LIMIT unread bytes the pump waits (and with it the stream's acknowledgements, so the
    host waits too); once the command has ended, what the host still sends is dropped."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._eof = False
        self._buffered = 0
        self._reader_gone = False

    def feed(self, data: bytes) -> None:
        with self._ready:
            while self._buffered >= STDIN_LIMIT and not self._reader_gone:
                self._ready.wait()
            if self._reader_gone:
                return
            self._chunks.append(data)
            self._buffered += len(data)
            self._ready.notify_all()

    def close_reader(self) -> None:
        """The command ended: nothing will read what is buffered, or what comes."""
        with self._ready:
            self._reader_gone = True
            self._chunks.clear()
            self._buffered = 0
            self._ready.notify_all()

    def end(self) -> None:
        with self._ready:
            self._eof = True
            self._ready.notify_all()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._ready:
            while not self._chunks and not self._eof:
                self._ready.wait()
            if not self._chunks:
                return 0
            chunk = self._chunks.popleft()
            n = min(len(buffer), len(chunk))
            buffer[:n] = chunk[:n]
            if n < len(chunk):
                self._chunks.appendleft(chunk[n:])
            self._buffered -= n
            self._ready.notify_all()
            return n


class _StreamWriter(io.RawIOBase):
    """stdout or stderr of a command: each write goes to the host, framed for shell v2."""

    def __init__(self, stream: Stream, lock: threading.Lock, packet_id: int | None, max_payload: int) -> None:
        self._stream = stream
        self._lock = lock
        self._packet_id = packet_id
        self._max_data = max_payload - _PACKET.size

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        with self._lock:
            if self._packet_id is None:
                self._stream.write(view)
            else:
                for start in range(0, len(view), self._max_data):
                    part = view[start : start + self._max_data]
                    self._stream.write(_PACKET.pack(self._packet_id, len(part)) + part)
        return len(view)


class _Input(Protocol):
    """Where the host's stdin goes: a _Pipe, or a Pty's line discipline."""

    def feed(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def close_reader(self) -> None: ...


def _pump_v2(stream: Stream, stdin: _Input, pty: Pty | None) -> None:
    """Split the host's shell-v2 packets: stdin data, close-stdin, window sizes (a pty's; else ignored)."""
    try:
        while True:
            packet_id, length = _PACKET.unpack(stream.read_exact(_PACKET.size))
            if length > STDIN_LIMIT:  # no shell-v2 client frames more; a 4 GiB claim is an attack
                break
            data = stream.read_exact(length) if length else b""
            if packet_id == ID_STDIN:
                stdin.feed(data)
            elif packet_id == ID_CLOSE_STDIN:
                break
            elif packet_id == ID_WINDOW and pty is not None and (size := WINDOW.fullmatch(data.rstrip(b"\0"))):
                pty.resize(int(size[1]), int(size[2]))
    except StreamClosed:
        pass
    finally:
        stdin.end()


def _pump_raw(stream: Stream, stdin: _Input, _pty: Pty | None) -> None:
    while chunk := stream.recv():
        stdin.feed(chunk)
    stdin.end()


@dataclass(frozen=True)
class ShellRequest:
    """What a shell service asks for: `shell[,v2][,TERM=..][,raw|,pty]:CMD` or `exec:CMD`."""

    command: str
    v2: bool  # shell protocol v2: framed streams and an exit code
    pty: bool  # a terminal: adbd's default for `shell` without a command, `pty` or `raw` decide

    @classmethod
    def parse(cls, service: str) -> ShellRequest:
        head, _, command = service.partition(":")
        name, *options = head.split(",")
        if name != "shell":  # exec: raw bytes, never a terminal
            return cls(command, v2=False, pty=False)
        return cls(command, v2="v2" in options, pty="pty" in options or (not command and "raw" not in options))


def run_shell(stream: Stream, device: EmulatedDevice, service: str, *, max_payload: int) -> None:
    """Run one command (or an interactive shell when empty) with the stream as its terminal."""
    request = ShellRequest.parse(service)
    command = request.command
    lock = threading.Lock()
    stdout = _StreamWriter(stream, lock, ID_STDOUT if request.v2 else None, max_payload)
    stderr = _StreamWriter(stream, lock, ID_STDERR if request.v2 else None, max_payload)
    pty = Pty(stdout) if request.pty else None
    stdin: _Input = pty or _Pipe()
    pump = _pump_v2 if request.v2 else _pump_raw
    threading.Thread(target=pump, args=(stream, stdin, pty), daemon=True, name=f"stdin-{stream.local_id}").start()
    device.log("shell", command=command, v2=request.v2, pty=request.pty)
    shell = Shell(device.fs, device, COMMANDS)
    try:
        if pty is not None:
            code = shell.run_terminal(pty, command, cancel=stream.cancel)
        else:
            code = shell.run(command or INTERACTIVE, stdin=io.BufferedReader(stdin), stdout=stdout, stderr=stderr,
                             cancel=stream.cancel)
    except StreamClosed:
        code = 141  # SIGPIPE: the host went away mid-output
    except Exception as exc:  # a bug in a built-in must not take the device down
        device.log("shell-error", command=command, error=repr(exc), traceback=traceback.format_exc())
        stderr.write(f"sh: internal error: {exc}\n".encode())
        code = 1
    stdin.close_reader()
    device.log("shell-end", command=command, status=code, cancelled=stream.cancel.is_set())
    if request.v2:
        stream.write(_PACKET.pack(ID_EXIT, 1) + bytes([code & 0xFF]))
