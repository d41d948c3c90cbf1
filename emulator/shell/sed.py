"""toybox's sed: a stream editor that reads its input line by line (so `producer | sed 5q` ends), with
-n -e -f -E/-r -s and -i (in place, through the Sandbox). Scripts are parsed by sed_parse."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from emulator.sandbox import DeviceOSError
from emulator.shell.builtins import Invocation, getopt
from emulator.shell.sed_parse import Address, Command, SedError, parse_script


class _Input:
    """The lines of the inputs in order, one line ahead so `$` is known; missing final newlines kept."""

    def __init__(self, streams: Iterator[BinaryIO]) -> None:
        self.streams = streams
        self.current: BinaryIO | None = None
        self.ahead = self._read()
        self.number = 0
        self.had_newline = True

    def _read(self) -> bytes | None:
        while True:
            if self.current is None:
                self.current = next(self.streams, None)
                if self.current is None:
                    return None
            line = self.current.readline()
            if line:
                return line
            self.current = None

    def next(self) -> str | None:
        line = self.ahead
        if line is None:
            return None
        self.ahead = self._read()
        self.number += 1
        self.had_newline = line.endswith(b"\n")
        return line.decode("utf-8", "surrogateescape").removesuffix("\n")

    @property
    def last(self) -> bool:
        return self.ahead is None


class _Quit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Sed:
    def __init__(self, inv: Invocation, commands: list[Command], quiet: bool, write: Any) -> None:
        self.inv, self.commands, self.quiet, self.write = inv, commands, quiet, write
        self.labels = {c.text: k for k, c in enumerate(commands) if c.name == ":"}
        for command in commands:
            if command.name in "btT" and command.text and command.text not in self.labels:
                raise SedError(f"can't find label for jump to '{command.text}'")
        self.hold = ""
        self.last_regex: re.Pattern[str] | None = None
        self.pending_newline = False
        self.files: dict[str, Any] = {}
        self.substituted = False  # for t and T: since the last input line or t
        self.unreadable = False  # an input file could not be opened

    # ---- output -------------------------------------------------------------------------

    def emit(self, text: str, newline: bool = True) -> None:
        """Write a line; one without its newline (the input's last) gets it once more output follows."""
        data = ("\n" if self.pending_newline else "") + text + ("\n" if newline else "")
        self.pending_newline = not newline
        self.write(data.encode("utf-8", "surrogateescape"))

    def emit_space(self, space: str, source: _Input) -> None:
        self.emit(space, newline=source.had_newline or not source.last)

    def to_file(self, name: str, text: str) -> None:
        if name == "/dev/stdout":
            self.emit(text)
            return
        if name not in self.files:
            self.files[name] = self.inv.fs.open_write(name, self.inv.cwd)
        self.files[name].write((text + "\n").encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    # ---- addresses ----------------------------------------------------------------------

    def matches(self, address: Address, space: str, source: _Input) -> bool:
        if address.kind == "line":
            return source.number == address.number
        if address.kind == "last":
            return source.last
        if address.kind == "regex":
            return self.search(address.regex, space) is not None
        return False

    def search(self, regex: re.Pattern[str] | None, space: str) -> re.Match[str] | None:
        if regex is None:
            regex = self.last_regex
            if regex is None:
                raise SedError("no previous regular expression")
        self.last_regex = regex
        return regex.search(space)

    def selected(self, command: Command, space: str, source: _Input) -> bool:
        first, second = command.first, command.second
        if first is None:
            return not command.negate
        if second is None:
            return self.matches(first, space, source) != command.negate
        hit = False
        if not command.active:
            if (first.kind == "zero" and source.number == 1) or self.matches(first, space, source):
                hit = command.active = True
                if first.kind == "zero":
                    command.active = not self.matches(second, space, source)
                elif second.kind == "line":
                    command.active, command.range_end = second.number > source.number, second.number
                elif second.kind == "plus":
                    command.range_end = source.number + second.number
                    command.active = second.number > 0
                elif second.kind == "last":
                    command.active = not source.last
        else:
            hit = True
            if second.kind in ("line", "plus"):
                command.active = source.number < command.range_end
            else:
                command.active = not self.matches(second, space, source)
        return hit != command.negate

    # ---- running ------------------------------------------------------------------------

    def run(self, source: _Input) -> int:
        """Every cycle over the input; the status is q's, else 0."""
        space: str | None = None
        try:
            while True:
                if space is None:
                    space = source.next()
                    if space is None:
                        return 0
                    self.substituted = False
                space = self.cycle(space, source)
        except _Quit as stop:
            return stop.status

    def cycle(self, space: str, source: _Input) -> str | None:
        """One pass of the script; returns the pattern space to run again (after D), else None."""
        appended: list[str] = []
        pc, autoprint = 0, not self.quiet
        while pc < len(self.commands):
            command = self.commands[pc]
            pc += 1
            if not self.selected(command, space, source):
                if command.name == "{":
                    pc = command.block_end + 1
                continue
            name = command.name
            if name == "s":
                space = self.substitute(command, space)
            elif name in "btT":
                jump = name == "b" or (self.substituted == (name == "t"))
                if name != "b":
                    self.substituted = False
                if jump:
                    pc = self.labels[command.text] if command.text else len(self.commands)
            elif name in "dDc":
                if name == "c" and not command.active:
                    self.emit(command.text)
                if name == "D" and "\n" in space:
                    self.flush(appended)
                    return space.split("\n", 1)[1]
                self.flush(appended)
                return None
            elif name in "nN":
                if name == "n" and autoprint:
                    self.emit_space(space, source)
                self.flush(appended)
                following = source.next()
                if following is None:
                    if name == "N" and autoprint:
                        self.emit_space(space, source)
                    raise _Quit(0)
                self.substituted = self.substituted if name == "N" else False
                space = following if name == "n" else f"{space}\n{following}"
            elif name in "qQ":
                if name == "q" and autoprint:
                    self.emit_space(space, source)
                if name == "q":
                    self.flush(appended)
                raise _Quit(int(command.text or 0))
            else:
                space = self.simple(command, space, source, appended)
        if autoprint:
            self.emit_space(space, source)
        self.flush(appended)
        return None

    def simple(self, command: Command, space: str, source: _Input, appended: list[str]) -> str:
        """The commands that neither end the cycle nor jump."""
        name = command.name
        if name == "p":
            self.emit(space)
        elif name == "P":
            self.emit(space.split("\n", 1)[0])
        elif name == "=":
            self.emit(str(source.number))
        elif name == "l":
            self.emit(_unambiguous(space))
        elif name == "a":
            appended.append(command.text + "\n")
        elif name == "i":
            self.emit(command.text)
        elif name == "r":
            appended.append(self.read_file(command.text))
        elif name == "w":
            self.to_file(command.text, space)
        elif name == "y":
            space = space.translate(command.mapping)
        elif name in "hH":
            self.hold = space if name == "h" else f"{self.hold}\n{space}"
        elif name in "gG":
            space = self.hold if name == "g" else f"{space}\n{self.hold}"
        elif name == "x":
            space, self.hold = self.hold, space
        elif name == "z":
            space = ""
        return space

    def flush(self, appended: list[str]) -> None:
        for text in appended:
            if text:
                self.emit(text.removesuffix("\n"), newline=text.endswith("\n"))
        appended.clear()

    def read_file(self, name: str) -> str:
        try:
            with self.inv.fs.open_read(name, self.inv.cwd) as f:
                return f.read().decode("utf-8", "surrogateescape")
        except DeviceOSError:
            return ""  # r of a missing file reads nothing, as POSIX says

    def substitute(self, command: Command, space: str) -> str:
        regex = command.regex if not command.empty_regex else None
        if self.search(regex, space) is None:
            return space
        result = _replace(self.last_regex, space, command)  # type: ignore[arg-type]
        if result is None:
            return space
        self.substituted = True
        if command.print_:
            self.emit(result)
        if command.write:
            self.to_file(command.write, result)
        return result


def _replace(regex: re.Pattern[str], space: str, command: Command) -> str | None:
    """s's substitution with POSIX's rule for empty matches (none right after the previous match);
    None when the chosen occurrence does not exist."""
    out, pos, count, prev_end, changed = [], 0, 0, -1, False
    while pos <= len(space):
        m = regex.search(space, pos)
        if m is None:
            break
        if m.start() == m.end() == prev_end:
            if m.start() >= len(space):
                break
            out.append(space[pos])
            pos += 1
            continue
        count += 1
        out.append(space[pos : m.start()])
        if count >= command.occurrence:
            out.append("".join(p if isinstance(p, str) else (m.group(p) or "") for p in command.replacement))
            changed = True
        else:
            out.append(m.group(0))
        prev_end = pos = m.end()
        if m.start() == m.end():
            if pos < len(space):
                out.append(space[pos])
            pos += 1
        if changed and not command.every:
            break
    if not changed:
        return None
    out.append(space[pos:])
    return "".join(out)


def _unambiguous(space: str) -> str:
    """`l`: escapes for backslash and control characters, octal for the rest, lines folded at 69."""
    names = {"\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    text = "".join(names.get(c, c if " " <= c <= "~" else "".join(f"\\{b:03o}" for b in c.encode(
        "utf-8", "surrogateescape"))) for c in space)
    lines = [text[k : k + 69] for k in range(0, len(text), 69)] or [""]
    return "\\\n".join(lines) + "$"


def cmd_sed(inv: Invocation) -> int:
    opts = getopt(inv.args, "nErsiz", "ef")
    in_place = "i" in opts.flags
    pieces = list(opts.values.get("e", []))
    for path in opts.values.get("f", []):
        try:
            with inv.fs.open_read(path, inv.cwd) as f:
                pieces.append(f.read().decode("utf-8", "surrogateescape").removesuffix("\n"))
        except DeviceOSError as exc:
            return inv.fail(path, exc)
    operands = opts.operands
    if not pieces:
        if not operands:
            inv.err("no script")
            return 1
        pieces = [operands.pop(0)]
    try:
        commands = parse_script("\n".join(pieces), extended=bool(opts.flags & {"E", "r"}))
    except SedError as exc:
        inv.err(str(exc))
        return 1
    quiet = "n" in opts.flags
    if in_place:
        return inv.each(operands, lambda name: _in_place(inv, commands, quiet, name))
    status = 0
    sed = _Sed(inv, commands, quiet, inv.out)
    try:
        if "s" in opts.flags:
            for name in operands or ["-"]:
                status = sed.run(_Input(_open_each(inv, sed, [name]))) or status
        else:
            status = sed.run(_Input(_open_each(inv, sed, operands or ["-"])))
    except SedError as exc:
        inv.err(str(exc))
        return 1
    finally:
        sed.close()
    return status or int(sed.unreadable)


def _open_each(inv: Invocation, sed: _Sed, names: list[str]) -> Iterator[BinaryIO]:
    """The inputs in turn; one that cannot be opened is reported and skipped (the status is then 1)."""
    for name in names:
        if name == "-":
            yield inv.stdin
            continue
        try:
            f = inv.fs.open_read(name, inv.cwd)
        except DeviceOSError as exc:
            inv.fail(name, exc)
            sed.unreadable = True
            continue
        with f:
            yield f


def _in_place(inv: Invocation, commands: list[Command], quiet: bool, name: str) -> None:
    """-i: the file's new text replaces it at once (an atomic write), as toybox renames a temporary."""
    with inv.fs.open_read(name, inv.cwd) as f:
        source = f.read()
    chunks: list[bytes] = []
    sed = _Sed(inv, commands, quiet, chunks.append)
    try:
        sed.run(_Input(iter([io.BytesIO(source)])))
    finally:
        sed.close()
    with inv.fs.open_write(name, inv.cwd, atomic=True) as out:
        out.write(b"".join(chunks))
