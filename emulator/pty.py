"""The device's pseudo-terminal, what adbd opens for `adb shell` in a terminal (`shell,v2,pty:`, or
the legacy `shell:` without a command): the kernel's line discipline between the host's keys and
the shell, with Linux's default termios (ICRNL, ONLCR, ICANON, ECHO, ECHOCTL, ISIG).

Cooked mode, while a command runs: typed characters are echoed, Backspace and Ctrl-U edit the line,
Enter (terminals send `\\r`) hands it to the reader ending in `\\n`, Ctrl-D on an empty line is the end
of the input (once: the next read waits again), Ctrl-C and Ctrl-\\ signal the foreground process
(SIGINT, SIGQUIT) and drop what was typed. Raw mode, while the shell's line editor reads keys
(emulator.shell.edit): bytes reach the reader as they come, unechoed. Output: every `\\n` leaves as
`\\r\\n`, and stdout and stderr are the same terminal, as on a phone.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
from collections import deque
from collections.abc import Iterator
from typing import Protocol

ERASE = (0x7F, 0x08)  # VERASE (^?, what Backspace sends) and ^H
KILL, EOF = 0x15, 0x04  # ^U, ^D
SIGNALS = {0x03: signal.SIGINT, 0x1C: signal.SIGQUIT}  # ^C, ^\
DEFAULT_SIZE = (24, 80)  # rows, columns until the host says otherwise
INPUT_LIMIT = 4096  # N_TTY_BUF_SIZE: unread input waits (the host's writes wait), a longer line is cut


class Killable(Protocol):
    def kill(self, status: int) -> None: ...


class _Onlcr(io.RawIOBase):
    """The terminal's output side: `\\n` becomes `\\r\\n` (ONLCR)."""

    def __init__(self, host: io.RawIOBase) -> None:
        self._host = host

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        raw = bytes(data)
        self._host.write(raw.replace(b"\n", b"\r\n"))
        return len(raw)


class TerminalInput(io.RawIOBase):
    """The terminal's input side as the shell's stdin: a cooked read returns one line at most. A
    shell started with it as stdin (`sh` at the prompt) is interactive on that terminal."""

    def __init__(self, pty: Pty) -> None:
        self.pty = pty

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.pty.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Pty:
    """One session's terminal. `feed` runs on the stream's pump thread, the reads on the shell's."""

    def __init__(self, host: io.RawIOBase) -> None:
        self.output = _Onlcr(host)
        self.input = TerminalInput(self)
        self.size = DEFAULT_SIZE
        self._foreground: Killable | None = None  # what ^C signals while a command runs
        self._pending: int | None = None  # a signal typed before the command it is for had started
        self._changed = threading.Condition()
        self._line = bytearray()  # cooked: the line being typed
        self._lines: deque[bytes] = deque()  # cooked: finished lines, b"" for a ^D
        self._keys = bytearray()  # raw: bytes not yet read
        self._raw = False
        self._hung_up = False
        self._reader_gone = False
        self._signals = 0  # signals sent so far: a read they interrupt returns

    def feed(self, data: bytes) -> None:
        """Keys from the host; waits while INPUT_LIMIT bytes are unread, as a pty's master does."""
        with self._changed:
            self._changed.wait_for(lambda: self._reader_gone or self._unread() < INPUT_LIMIT)
            if self._reader_gone:
                return
            if self._raw:
                self._keys += data
            else:
                for byte in data:
                    self._cooked(byte)
            self._changed.notify_all()

    def _unread(self) -> int:
        return len(self._keys) + sum(len(line) + 1 for line in self._lines)  # a ^D's empty line counts too

    def end(self) -> None:
        """The host closed its side: every read from now on is the end of the input."""
        with self._changed:
            self._hung_up = True
            self._changed.notify_all()

    def close_reader(self) -> None:
        """The session ended: what the host still types is dropped."""
        with self._changed:
            self._reader_gone = True
            self._changed.notify_all()

    def resize(self, rows: int, columns: int) -> None:
        self.size = (rows, columns)

    def set_foreground(self, process: Killable | None) -> None:
        """The job ^C and ^\\ signal from now on (None: the shell's editor is next). A signal typed
        between the editor's Enter and this call is its: the kernel would have signalled the shell,
        which then abandons the command."""
        with self._changed:
            self._foreground = process
            if process is not None and self._pending is not None:
                process.kill(self._pending)
            self._pending = None

    def _cooked(self, byte: int) -> None:
        if byte in SIGNALS:
            self._echo_control(byte)
            self._line.clear()
            self._lines.clear()
            self._signals += 1
            if self._foreground is not None:
                self._foreground.kill(128 + SIGNALS[byte])
            else:
                self._pending = 128 + SIGNALS[byte]
        elif byte in ERASE:
            if self._line:
                self._line.pop()
                self.output.write(b"\b \b")
        elif byte == KILL:
            self.output.write(b"\b \b" * len(self._line))
            self._line.clear()
        elif byte == EOF:
            self._lines.append(bytes(self._line))  # b"" when empty: the end of the input
            self._line.clear()
        elif byte in (0x0D, 0x0A):  # ICRNL: Enter sends \r
            self._line.append(0x0A)
            self.output.write(b"\n")
            self._lines.append(bytes(self._line))
            self._line.clear()
        elif len(self._line) < INPUT_LIMIT - 1:
            self._line.append(byte)
            if byte < 0x20 and byte != 0x09:
                self._echo_control(byte)
            else:
                self.output.write(bytes([byte]))

    def _echo_control(self, byte: int) -> None:
        self.output.write(b"^" + bytes([byte ^ 0x40]))  # ECHOCTL: ^C, ^[

    def read(self, size: int) -> bytes:
        """Up to `size` bytes: in raw mode what has come, in cooked mode (part of) the next line;
        b"" for a ^D, once the host has gone, or when a signal interrupts the wait (the reader is
        the foreground job it ends)."""
        with self._changed:
            signals = self._signals
            self._changed.wait_for(lambda: self._hung_up or self._signals != signals
                                   or (self._keys if self._raw else self._lines))
            if self._raw and self._keys:
                data = bytes(self._keys[:size])
                del self._keys[:size]
                self._changed.notify_all()
                return data
            if self._raw or not self._lines:
                return b""
            line = self._lines.popleft()
            if len(line) > size:
                self._lines.appendleft(line[size:])
            self._changed.notify_all()  # room for the host's next keys
            return line[:size]

    @contextlib.contextmanager
    def raw_mode(self) -> Iterator[None]:
        """The line editor's mode (as mksh sets it while it reads a command): what was typed ahead
        is handed over as keys, and what the editor left unread is typed again in cooked mode."""
        with self._changed:
            self._keys += b"".join(self._lines) + self._line
            self._lines.clear()
            self._line.clear()
            self._raw = True
            self._pending = None  # typed at no command: the editor shows a fresh prompt anyway
        try:
            yield
        finally:
            with self._changed:
                self._raw = False
                keys, self._keys = bytes(self._keys), bytearray()
                for byte in keys:
                    self._cooked(byte)
