"""The `sync:` service: adb's file transfer protocol (push, pull, stat, list) on the sandbox.

Requests are parsed from the stream's byte stream (they cross WRTE boundaries); replies are
batched into max-payload WRTEs, which is what makes push and pull fast. Every path goes through
the sandbox. A push writes a hidden temp file renamed at DONE: a failed or aborted push leaves
nothing behind.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import struct

from emulator.device import EmulatedDevice
from emulator.sandbox import ACCES, EXIST, ISDIR, LOOP, NOENT, NOSPC, NOTDIR, NOTEMPTY, ROFS, DeviceOSError
from emulator.stream import Stream

SYNC_DATA_MAX = 64 * 1024
MAX_PATH = 1024

_REQUEST = struct.Struct("<4sI")
_STAT_V1 = struct.Struct("<4sIII")
_STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
_DENT = struct.Struct("<4sIIII")

_ERRNO = {
    NOENT: errno.ENOENT,
    ACCES: errno.EACCES,
    NOSPC: errno.ENOSPC,
    NOTDIR: errno.ENOTDIR,
    ISDIR: errno.EISDIR,
    EXIST: errno.EEXIST,
    ROFS: errno.EROFS,
    NOTEMPTY: errno.ENOTEMPTY,
    LOOP: errno.ELOOP,
}


class SyncProtocolError(Exception):
    """The host broke the sync protocol; the stream is closed."""


class SyncSession:
    def __init__(self, stream: Stream, device: EmulatedDevice, max_payload: int) -> None:
        self.stream = stream
        self.device = device
        self.fs = device.fs
        self._max_payload = max_payload
        self._out = bytearray()

    def serve(self) -> None:
        """Answer requests until QUIT or the host goes away."""
        handlers = {
            b"STAT": self._stat,
            b"STA2": self._stat2,
            b"LST2": self._stat2,
            b"LIST": self._list,
            b"SEND": self._send,
            b"RECV": self._recv,
        }
        while True:
            ident, length = _REQUEST.unpack(self.stream.read_exact(_REQUEST.size))
            if ident == b"QUIT":
                return
            handler = handlers.get(ident)
            if handler is None or length > MAX_PATH:
                self._fail(f"unknown sync request {ident!r}" if handler is None else "path too long")
                self._flush()
                raise SyncProtocolError(f"bad sync request {ident!r} (length {length})")
            path = self.stream.read_exact(length).decode("utf-8", "surrogateescape")
            handler(ident, path)
            self._flush()

    # ---- output batching ---------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        self._out += data
        if len(self._out) >= self._max_payload:
            whole = len(self._out) - len(self._out) % self._max_payload
            self.stream.write(self._out[:whole])
            del self._out[:whole]

    def _flush(self) -> None:
        if self._out:
            self.stream.write(bytes(self._out))
            self._out.clear()

    def _fail(self, message: str) -> None:
        encoded = message.encode("utf-8", "surrogateescape")
        self._emit(_REQUEST.pack(b"FAIL", len(encoded)) + encoded)

    # ---- requests ----------------------------------------------------------------------

    def _stat(self, _ident: bytes, path: str) -> None:
        try:  # lstat, as adbd's v1 STAT and LIST (adb asks `link/` to learn whether it leads to a folder)
            st = self.fs.lstat(path)
            self._emit(_STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime)))
        except DeviceOSError:
            self._emit(_STAT_V1.pack(b"STAT", 0, 0, 0))

    def _stat2(self, ident: bytes, path: str) -> None:
        try:
            st = self.fs.lstat(path) if ident == b"LST2" else self.fs.stat(path)
        except DeviceOSError as exc:
            self._emit(_STAT_V2.pack(ident, _ERRNO.get(exc.message, errno.EACCES), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            return
        uid, gid = self.fs.owner(path)
        self._emit(
            _STAT_V2.pack(
                ident,
                0,
                st.st_dev,
                st.st_ino,
                st.st_mode,
                st.st_nlink,
                uid,
                gid,
                st.st_size,
                int(st.st_atime),
                int(st.st_mtime),
                int(st.st_ctime),
            )
        )

    def _list(self, _ident: bytes, path: str) -> None:
        try:
            names = self.fs.listdir(path)
        except DeviceOSError:
            names = []
        folder = self.fs.norm(path)
        for name in names:
            try:
                st = self.fs.lstat(name, folder)
            except DeviceOSError:
                continue  # e.g. a symlink pointing out of the sandbox: not the client's business
            encoded = name.encode("utf-8", "surrogateescape")
            self._emit(
                _DENT.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(encoded)) + encoded
            )
        self._emit(_DENT.pack(b"DONE", 0, 0, 0, 0))

    def _send(self, _ident: bytes, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        error: str | None = None
        writer = None
        try:
            mode = int(mode_text)
            if not statmod.S_ISREG(mode) and statmod.S_IFMT(mode):
                raise DeviceOSError(path, "only regular files can be pushed")
            parent = self.fs.norm(path).rsplit("/", 1)[0] or "/"
            self.fs.mkdir(parent, parents=True)
            writer = self.fs.open_write(path, mode=statmod.S_IMODE(mode) or 0o644, atomic=True)
        except ValueError:
            error = f"bad SEND request {spec!r}"
        except DeviceOSError as exc:
            error = f"{exc.path}: {exc.message}" if exc.message != NOSPC else exc.message
        received = 0
        try:
            while True:
                ident, length = _REQUEST.unpack(self.stream.read_exact(_REQUEST.size))
                if ident == b"DONE":
                    mtime = length
                    break
                if ident != b"DATA" or length > SYNC_DATA_MAX:
                    raise SyncProtocolError(f"unexpected {ident!r} ({length} bytes) during SEND")
                data = self.stream.read_exact(length)
                received += length
                if writer is not None and error is None:
                    try:
                        writer.write(data)
                    except DeviceOSError as exc:
                        error = exc.message
                        writer.abort()
        except BaseException:
            if writer is not None:
                writer.abort()
            self.device.log("push-aborted", path=path, received=received)
            raise
        if error is None and writer is not None:
            try:
                writer.close()
                os.utime(self.fs.host(path, write=True), (mtime, mtime))
            except DeviceOSError as exc:
                error = exc.message
        if error is not None:
            self.device.log("push-failed", path=path, error=error)
            self._fail(error)
            return
        self.device.log("push", path=self.fs.norm(path), size=received)
        self._emit(_REQUEST.pack(b"OKAY", 0))

    def _recv(self, _ident: bytes, path: str) -> None:
        try:
            reader = self.fs.open_read(path)
        except DeviceOSError as exc:
            self._fail(f"{exc.path}: {exc.message}")
            return
        size = 0
        with reader:
            while chunk := reader.read(SYNC_DATA_MAX):
                size += len(chunk)
                self._emit(_REQUEST.pack(b"DATA", len(chunk)) + chunk)
        self._emit(_REQUEST.pack(b"DONE", 0))
        self.device.log("pull", path=self.fs.norm(path), size=size)
