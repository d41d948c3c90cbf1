"""`/system/bin/logcat`: the device's log buffer (emulator.image.logbuf) as Android's logcat prints it.

Options: -d (dump and exit; without it logcat follows the log until the client hangs up), -c /
--clear, -t N (the last N lines, then exit), -s (silence every tag not named), -v FORMAT
(threadtime, the default; brief, time, tag, process, raw), -b BUFFER (main, system, crash, all,
default: one buffer holds everything) and filter specs TAG[:PRIORITY] / *:PRIORITY.
"""

from __future__ import annotations

import time

from emulator.image.logbuf import PRIORITIES, Entry
from emulator.programs import ProgramContext, register
from emulator.shell.procs import CANCELLED

FORMATS = ("threadtime", "brief", "time", "tag", "process", "raw")
BUFFERS = ("main", "system", "crash", "events", "all", "default")
FOLLOW_POLL_S = 0.2  # how often a following logcat looks at its cancel token between lines


class _Usage(Exception):
    pass


def _stamp(entry: Entry) -> str:
    moment = time.localtime(entry.wall)
    return time.strftime("%m-%d %H:%M:%S", moment) + f".{int(entry.wall * 1000) % 1000:03d}"


def render(entry: Entry, fmt: str) -> str:
    """One entry in one of logcat's -v formats, as `logprint.c` lays them out."""
    head = f"{entry.priority}/{entry.tag}"
    return {
        "threadtime": f"{_stamp(entry)} {entry.pid:5d} {entry.pid:5d} {entry.priority} {entry.tag:<8}: {entry.message}",
        "brief": f"{head}({entry.pid:5d}): {entry.message}",
        "time": f"{_stamp(entry)} {head}({entry.pid:5d}): {entry.message}",
        "tag": f"{head}: {entry.message}",
        "process": f"{entry.priority}({entry.pid:5d}) {entry.message}  ({entry.tag})",
        "raw": entry.message,
    }[fmt] + "\n"


class _Options:
    def __init__(self, args: list[str]) -> None:
        self.dump = self.clear = False
        self.tail: int | None = None
        self.fmt = "threadtime"
        self.default = "V"  # the lowest priority shown for tags no spec names
        self.tags: dict[str, str] = {}
        rest = iter(args)
        for arg in rest:
            if arg in ("-d", "-c", "--clear", "-s"):
                self.dump |= arg == "-d"
                self.clear |= arg in ("-c", "--clear")
                self.default = "S" if arg == "-s" else self.default
            elif arg in ("-v", "-t", "-b"):
                self._valued(arg, next(rest, None))
            elif arg.startswith("-"):
                raise _Usage(f"invalid option -- '{arg.lstrip('-')[:1]}'")
            else:
                self._spec(arg)

    def _valued(self, option: str, value: str | None) -> None:
        if value is None:
            raise _Usage(f"option requires an argument -- '{option[1]}'")
        if option == "-v":
            if value not in FORMATS:
                raise _Usage(f"Invalid parameter \"{value}\" to -v")
            self.fmt = value
        elif option == "-t":
            if not value.isdigit() or int(value) == 0:
                raise _Usage(f"-t \"{value}\" not a positive number")
            self.tail = int(value)
        elif value not in BUFFERS:
            raise _Usage(f"unknown buffer {value}")

    def _spec(self, spec: str) -> None:
        tag, _, priority = spec.partition(":")
        priority = (priority or "V").upper()
        if priority not in PRIORITIES:
            raise _Usage(f"Invalid filter expression '{spec}'")
        if tag == "*":
            self.default = priority
        else:
            self.tags[tag] = priority

    def shows(self, entry: Entry) -> bool:
        least = self.tags.get(entry.tag, self.default)
        return least != "S" and PRIORITIES.index(entry.priority) >= PRIORITIES.index(least)


@register("/system/bin/logcat")
def main(ctx: ProgramContext) -> int:
    try:
        options = _Options(ctx.argv[1:])
    except _Usage as exc:
        ctx.stderr.write(f"logcat: {exc}\n".encode())
        return 1
    buffer = ctx.device.image.log
    if options.clear:
        buffer.clear()
        return 0
    entries, seq = buffer.after(0)
    shown = [e for e in entries if options.shows(e)]
    if options.tail is not None:
        shown = shown[-options.tail:]
    if shown:
        ctx.stdout.write(("--------- beginning of main\n" + "".join(render(e, options.fmt) for e in shown)).encode())
    if options.dump or options.tail is not None:
        return 0
    while not ctx.cancel.is_set():  # follow: new lines as they come, until the client hangs up
        buffer.wait(seq, FOLLOW_POLL_S)
        entries, seq = buffer.after(seq)
        if text := "".join(render(e, options.fmt) for e in entries if options.shows(e)):
            ctx.stdout.write(text.encode())
            ctx.stdout.flush()
    return CANCELLED
