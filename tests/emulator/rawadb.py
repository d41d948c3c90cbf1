"""A host that speaks the adb transport byte by byte (as an attacker, or an old client, would), with
adb's RSA authentication: the tests' own key, which the devices under test are told to accept."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path

from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

from emulator.auth import RSAPUBLICKEY, SIGNATURE, TOKEN
from emulator.proto import A_AUTH, A_CNXN, A_OKAY, A_OPEN, HEADER, MAX_PAYLOAD, VERSION

Message = tuple[int, int, int, int, bytes]  # command, arg0, arg1, checksum, payload


@dataclass(frozen=True)
class Key:
    """An adb key pair made for the tests (adb-shell's keygen: the format adb itself writes)."""

    private: Path

    @property
    def public(self) -> Path:
        return Path(f"{self.private}.pub")

    @classmethod
    def make(cls, path: Path) -> Key:
        keygen(str(path))
        return cls(path)

    def sign(self, token: bytes) -> bytes:
        return PythonRSASigner.FromRSAKeyPath(str(self.private)).Sign(token)


def checksum(data: bytes) -> int:
    """adb's checksum before 0x01000001, as adb-shell computes it: the sum of the payload's bytes."""
    return sum(data) & 0xFFFFFFFF


class RawHost:
    """One TCP connection to a device; CNXN (and AUTH, with `key`) done on creation."""

    def __init__(self, port: int, key: Key | None = None, *, version: int = VERSION,
                 max_payload: int = MAX_PAYLOAD) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.checksums = version < VERSION
        self.send(A_CNXN, version, max_payload, b"host::features\0")
        self.banner = self.read()
        while self.banner[0] == A_AUTH and self.banner[1] == TOKEN and key is not None:
            self.send(A_AUTH, SIGNATURE, 0, key.sign(self.banner[4]))
            self.banner = self.read()
            key = None  # one signature per key, as adb: then the device asks again

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        head = HEADER.pack(command, arg0, arg1, len(data), checksum(data) if self.checksums else 0,
                           command ^ 0xFFFFFFFF)
        self.sock.sendall(head + data)

    def read(self) -> Message:
        command, arg0, arg1, length, sum_, _magic = HEADER.unpack(self.exact(HEADER.size))
        return command, arg0, arg1, sum_, self.exact(length)

    def expect(self, command: int) -> Message:
        while True:
            message = self.read()
            if message[0] == command:
                return message

    def exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("device closed the connection")
            data += chunk
        return data

    def open(self, service: str, local_id: int = 1) -> int:
        self.send(A_OPEN, local_id, 0, service.encode() + b"\0")
        return self.expect(A_OKAY)[1]

    def offer_public_key(self, key: Key) -> None:
        self.send(A_AUTH, RSAPUBLICKEY, 0, key.public.read_bytes() + b"\0")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
