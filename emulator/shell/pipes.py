"""The shell's own streams: /dev/null, and pipes between the stages of a pipeline, bounded like a
kernel pipe so stages run concurrently and a producer waits for its reader instead of filling
memory; once the reader is gone a write fails as with SIGPIPE (the writer ends with 141), which is
how `yes | head -n 1` ends."""

from __future__ import annotations

import io
import threading
from typing import Any

from emulator.shell.builtins import ShellExit

CAPACITY = 64 << 10  # bytes a pipe holds before its writer waits, as Linux's default pipe
SIGPIPE_STATUS = 141  # 128 + SIGPIPE


class NullFile(io.RawIOBase):
    """/dev/null: reads nothing, swallows writes."""

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return 0

    def write(self, data: Any) -> int:
        return len(data)


class PipeClosed(BrokenPipeError):
    """A write to a pipe whose reader has finished."""


class Pipe:
    """One pipe: `writer` and `reader` are its two ends, each a binary stream closed once by the
    stage that owns it. `cancel` (the pipeline's process token) ends a wait when the job is killed."""

    def __init__(self, cancel: Any, capacity: int = CAPACITY) -> None:
        self.cancel = cancel
        self.capacity = capacity
        self.buffer = bytearray()
        self.changed = threading.Condition()
        self.write_open = self.read_open = True
        self.reader = _Reader(self)
        self.writer = _Writer(self)

    def wait(self, until: Any) -> None:
        """Wait (under `changed`) until `until()` holds; a killed job stops waiting."""
        while not until():
            if self.cancel.is_set():
                raise ShellExit(self.cancel.status())
            self.changed.wait(0.05)

    def put(self, data: bytes) -> None:
        view = memoryview(data)
        with self.changed:
            while view:
                self.wait(lambda: not self.read_open or len(self.buffer) < self.capacity)
                if not self.read_open:
                    raise PipeClosed("the pipe's reader has finished")
                room = self.capacity - len(self.buffer)
                self.buffer += view[:room]
                view = view[room:]
                self.changed.notify_all()

    def take(self, size: int, line: bool = False) -> bytes:
        """What is there (at most `size` bytes unless negative), once there is something; with `line`,
        up to a newline once one is there or the pipe is full. b'' at the end of the stream."""
        with self.changed:
            self.wait(lambda: not self.write_open or (
                b"\n" in self.buffer or len(self.buffer) >= self.capacity if line else bool(self.buffer)))
            end = self.buffer.find(b"\n") + 1 if line else 0
            count = min(size if size >= 0 else len(self.buffer), end or len(self.buffer))
            data = bytes(self.buffer[:count])
            del self.buffer[:count]
            self.changed.notify_all()
            return data

    def end(self, side: str) -> None:
        with self.changed:
            if side == "write":
                self.write_open = False
            else:
                self.read_open = False
                self.buffer.clear()
            self.changed.notify_all()


class _Reader(io.RawIOBase):
    def __init__(self, pipe: Pipe) -> None:
        super().__init__()
        self.pipe = pipe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.pipe.take(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self.pipe.take(size)
        return self.readall()

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.pipe.take(-1):
            chunks.append(chunk)
        return b"".join(chunks)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        line = b""
        while not line.endswith(b"\n") and (limit < 0 or len(line) < limit):
            chunk = self.pipe.take(limit - len(line) if limit >= 0 else -1, line=True)
            if not chunk:
                break
            line += chunk
        return line

    def close(self) -> None:
        if not self.closed:
            self.pipe.end("read")
        super().close()


class _Writer(io.RawIOBase):
    def __init__(self, pipe: Pipe) -> None:
        super().__init__()
        self.pipe = pipe

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.pipe.put(bytes(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.pipe.end("write")
        super().close()
