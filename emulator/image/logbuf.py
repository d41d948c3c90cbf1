"""The device's log buffer, what `logcat` reads: a bounded ring of (time, pid, priority, tag, message).

The device's own lines come from two places: its event log (adbd's connections, program crashes;
`line_for_event` says which events show and how) and programs writing here directly (net-run's start
and finish lines, with its pid and memory peak).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CAPACITY = 5000  # entries kept; older ones go, as a phone's 256 KiB main buffer drops its oldest
ADBD_PID = 712  # adbd is no entry of the shell's process table; its lines carry a fixed pid
PRIORITIES = "VDIWEFS"  # verbose ... fatal, silent


@dataclass(frozen=True)
class Entry:
    seq: int
    wall: float  # Unix time
    pid: int
    priority: str  # one of PRIORITIES
    tag: str
    message: str


class LogBuffer:
    def __init__(self, wall: Callable[[], float], capacity: int = CAPACITY) -> None:
        self._wall = wall
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self._next = 0
        self._changed = threading.Condition()

    def write(self, priority: str, tag: str, message: str, pid: int = ADBD_PID) -> None:
        with self._changed:
            self._entries.append(Entry(self._next, self._wall(), pid, priority, tag, message))
            self._next += 1
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._entries.clear()

    def after(self, seq: int) -> tuple[list[Entry], int]:
        """The entries kept whose seq is at least `seq`, oldest first, and the seq the next one will have."""
        with self._changed:
            return [e for e in self._entries if e.seq >= seq], self._next

    def wait(self, seq: int, timeout: float) -> None:
        """Return once an entry numbered `seq` or later exists, or after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._next > seq, timeout)

    def event(self, event: str, fields: dict[str, Any]) -> None:
        line = line_for_event(event, fields)
        if line is not None:
            self.write(*line)


def line_for_event(event: str, fields: dict[str, Any]) -> tuple[str, str, str] | None:
    """(priority, tag, message) of the log line a device event shows as; None for the events a phone
    does not log (pushes, pulls, shell commands: adbd is quiet about them)."""
    peer = fields.get("peer", "?")
    lines = {
        "listening": ("I", "adbd", f"adbd listening on port {fields.get('port')}"),
        "connect": ("I", "adbd", f"new connection from {peer}"),
        "auth": ("I", "adbd", f"host {peer} authorized"),
        "auth-refused": ("W", "adbd", f"refused host {peer}: key not authorized"),
        "disconnect": ("I", "adbd", f"connection from {peer} closed: {fields.get('reason', '')}"),
        "service-refused": ("W", "adbd", f"refused service {fields.get('service', '')}"),
        "reboot": ("I", "adbd", "reboot requested"),
        "program_crash": ("F", "DEBUG", f"{fields.get('program')} crashed: {fields.get('error')}"),
    }
    return lines.get(event)
