"""One adb stream (an OPENed service) as its service thread sees it: blocking reads and writes
with adb's flow control done underneath.

Host → device: a WRTE is acknowledged with OKAY as soon as it arrives while fewer than INBOX_WINDOW
payloads wait for the service, so the host keeps sending while the service writes; beyond that the
OKAY waits until the service takes a payload (bounded memory per stream).
Device → host: at most max-payload bytes per WRTE, and the next WRTE only after the host's OKAY.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable

from emulator.proto import A_CLSE, A_OKAY, A_WRTE, Sender

INBOX_WINDOW = 4
# A host sends its next WRTE only after our OKAY. One that sends on regardless may have this many
# payloads unacknowledged; then the connection's reader stops reading its socket (TCP pushes back on
# the host) until the service takes payloads: a flood costs at most (INBOX_WINDOW + MAX_UNACKED) payloads.
MAX_UNACKED = 4


class StreamClosed(BrokenPipeError):
    """The host closed the stream (or the connection died): like writing to a closed pipe."""


class Stream:
    def __init__(
        self,
        sender: Sender,
        local_id: int,
        remote_id: int,
        max_payload: int,
        *,
        on_close: Callable[[Stream], None],
        throttle: Callable[[int], None],
    ) -> None:
        self.local_id = local_id
        self.remote_id = remote_id
        self.cancel = threading.Event()  # set once the host is gone; long programs stop on it
        self._sender = sender
        self._max_payload = max_payload
        self._on_close = on_close
        self._throttle = throttle
        self._inbox: deque[bytes] = deque()
        self._owed_okays = 0  # payloads received but not yet acknowledged (the inbox was full)
        self._inbox_ready = threading.Condition()
        self._can_send = threading.Event()
        self._can_send.set()
        self._pending: bytes = b""  # the payload read_exact is consuming, from _offset on
        self._offset = 0
        self._closed = False
        self._answered = False  # our CLSE went out (a host's CLSE is answered with one, as adbd does)

    # ---- called by the connection's reader thread --------------------------------------

    def deliver(self, data: bytes) -> None:
        with self._inbox_ready:
            while len(self._inbox) >= INBOX_WINDOW + MAX_UNACKED and not self._closed:
                self._inbox_ready.wait()
            self._inbox.append(data)
            room = len(self._inbox) <= INBOX_WINDOW
            if not room:
                self._owed_okays += 1
            self._inbox_ready.notify()
        if room:
            self._sender.send(A_OKAY, self.local_id, self.remote_id)

    def acknowledged(self) -> None:
        self._can_send.set()

    def host_closed(self) -> None:
        """The host sent CLSE or the connection ended: wake everyone blocked on this stream."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        self.cancel.set()
        self._can_send.set()
        with self._inbox_ready:
            self._inbox_ready.notify_all()

    # ---- called by the service ---------------------------------------------------------

    def recv(self) -> bytes:
        """The next payload from the host; b'' once the stream is closed."""
        with self._inbox_ready:
            while not self._inbox and not self._closed:
                self._inbox_ready.wait()
            if not self._inbox:
                return b""
            data = self._inbox.popleft()
            self._inbox_ready.notify_all()  # a reader held back by a flood may deliver again
            owed = self._owed_okays > 0
            if owed:
                self._owed_okays -= 1
        if owed and not self._closed:
            self._sender.send(A_OKAY, self.local_id, self.remote_id)
        return data

    def read_exact(self, n: int) -> bytes:
        """Exactly n bytes of the host's byte stream, across payload boundaries (one copy when the
        bytes lie within one payload, the usual case for sync DATA inside a 1 MiB WRTE)."""
        if len(self._pending) - self._offset >= n:
            data = self._pending[self._offset : self._offset + n]
            self._offset += n
            return data
        parts = [self._pending[self._offset :]]
        have = len(parts[0])
        while have < n:
            chunk = self.recv()
            if not chunk:
                raise StreamClosed("stream closed by the host")
            parts.append(chunk)
            have += len(chunk)
        joined = b"".join(parts)
        self._pending, self._offset = joined, n
        return joined[:n]

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), self._max_payload):
            chunk = view[start : start + self._max_payload]
            self._can_send.wait()
            if self._closed:
                raise StreamClosed("stream closed by the host")
            self._can_send.clear()
            self._throttle(len(chunk))
            self._sender.send(A_WRTE, self.local_id, self.remote_id, chunk)

    def close(self) -> None:
        """Close from the device side, or answer the host's close: one CLSE either way; idempotent."""
        self._closed = True
        self._wake()
        if not self._answered:
            self._answered = True
            with contextlib.suppress(OSError):
                self._sender.send(A_CLSE, self.local_id, self.remote_id)
        self._on_close(self)
