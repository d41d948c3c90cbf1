"""adb transport framing: 24-byte little-endian headers plus payload (docs/spec.md §9).

Only framing lives here; what the messages mean is adbd.py's business.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import NamedTuple

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
A_STLS = 0x534C5453

COMMAND_NAMES = {
    A_SYNC: "SYNC",
    A_CNXN: "CNXN",
    A_OPEN: "OPEN",
    A_OKAY: "OKAY",
    A_CLSE: "CLSE",
    A_WRTE: "WRTE",
    A_AUTH: "AUTH",
    A_STLS: "STLS",
}

VERSION = 0x01000001  # "skip checksum": checksums are sent as 0 and not checked
VERSION_CHECKSUMMED = 0x01000000  # hosts that ask for it (the pure-Python adb-shell) get payload checksums
MAX_PAYLOAD = 1 << 20
HEADER = struct.Struct("<6I")


class ProtocolError(Exception):
    """The peer sent something that is not adb: the connection is beyond repair."""


class Message(NamedTuple):
    command: int
    arg0: int
    arg1: int
    data: bytes


def header(command: int, arg0: int, arg1: int, length: int, checksum: int = 0) -> bytes:
    return HEADER.pack(command, arg0, arg1, length, checksum, command ^ 0xFFFFFFFF)


def checksum(data: bytes | memoryview) -> int:
    """adb's payload checksum before version 0x01000001: the sum of the bytes, modulo 2**32."""
    return sum(bytes(data)) & 0xFFFFFFFF


class SocketReader:
    """Exact-size reads straight from a socket into fresh buffers: one copy from the kernel, which
    is what lets a 1 MiB payload through at memory speed."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, n: int) -> bytes:
        """n bytes, fewer only at the end of the stream."""
        buffer = bytearray(n)
        view = memoryview(buffer)
        got = 0
        while got < n:
            count = self._sock.recv_into(view[got:])
            if count == 0:
                return bytes(buffer[:got])
            got += count
        return buffer  # type: ignore[return-value] - a bytearray is as good and saves a copy


def read_message(reader: SocketReader, max_payload: int = MAX_PAYLOAD) -> Message | None:
    """The next message, or None on a clean end of stream; ProtocolError for garbage."""
    raw = reader.read(HEADER.size)
    if not raw:
        return None
    if len(raw) < HEADER.size:
        raise ProtocolError("connection ended inside a message header")
    command, arg0, arg1, length, _checksum, magic = HEADER.unpack(raw)
    if command not in COMMAND_NAMES:
        raise ProtocolError(f"unknown command 0x{command:08x}")
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for {COMMAND_NAMES[command]}")
    if length > max_payload:
        raise ProtocolError(f"payload of {length} bytes exceeds the maximum of {max_payload}")
    data = reader.read(length) if length else b""
    if len(data) < length:
        raise ProtocolError("connection ended inside a message payload")
    return Message(command, arg0, arg1, data)


class Sender:
    """Writes whole messages to a socket; one lock so streams sharing a connection never interleave."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.checksums = False  # set once a host of protocol version < VERSION connects

    def send(self, command: int, arg0: int, arg1: int, data: bytes | memoryview = b"") -> None:
        head = header(command, arg0, arg1, len(data), checksum(data) if self.checksums and data else 0)
        with self._lock:
            if len(data) < 65536:
                self._sock.sendall(head + data)
            else:  # no 1 MiB copy just to prepend 24 bytes
                self._sock.sendall(head)
                self._sock.sendall(data)
