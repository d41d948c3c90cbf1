"""sed scripts parsed into commands: addresses (N, $, /RE/, \\cREc, N,M, N,+M, 0,/RE/, !), blocks, and
the commands toybox's sed has (s y p P d D n N g G h H x b t T : a i c q Q = l r w z). A syntax
error is a SedError with sed's kind of message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emulator.shell.regex import RegexError, compile_posix


class SedError(Exception):
    """A script sed refuses: `bad pattern`, `unknown command`, ..."""


@dataclass
class Address:
    kind: str  # "line", "last", "regex", "plus" (addr2 +N), "zero" (0 of 0,/re/)
    number: int = 0
    regex: re.Pattern[str] | None = None  # None for // (the last regex used)


@dataclass
class Command:
    name: str
    first: Address | None = None
    second: Address | None = None
    negate: bool = False
    text: str = ""  # a/i/c text, labels, file names, q's status
    regex: re.Pattern[str] | None = None  # s
    empty_regex: bool = False  # s//.../: the last regex used
    replacement: list[str | int] = field(default_factory=list)  # s: text pieces and group numbers (0 is &)
    occurrence: int = 1  # s: replace from this match on (with g) or only this one
    every: bool = False  # s///g
    print_: bool = False  # s///p
    write: str = ""  # s///w FILE
    mapping: dict[int, int] = field(default_factory=dict)  # y
    block_end: int = 0  # {: index of its matching }
    active: bool = False  # a range: between its first and second address
    range_end: int = 0  # a range with a line-number end: that line


class _Reader:
    def __init__(self, text: str, extended: bool) -> None:
        self.text, self.i, self.extended = text, 0, extended

    def peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def skip_space(self, newlines: bool = False) -> None:
        while self.peek() and (self.peek() in " \t" or (newlines and self.peek() in "\n;")):
            self.i += 1

    def number(self) -> int:
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        return int(self.text[start : self.i])

    def delimited(self, delimiter: str, what: str) -> str:
        """Text up to an unescaped `delimiter` (consumed); `\\delimiter` becomes the delimiter itself."""
        out, text = [], self.text
        while True:
            if self.i >= len(text):
                raise SedError(f"unterminated {what}")
            c = text[self.i]
            if c == "\\" and self.i + 1 < len(text):
                nxt = text[self.i + 1]
                out.append(nxt if nxt == delimiter and delimiter != "&" else c + nxt)
                self.i += 2
                continue
            if c == "[" and what == "regex":
                end = _bracket_end(text, self.i)
                out.append(text[self.i : end])
                self.i = end
                continue
            self.i += 1
            if c == delimiter:
                return "".join(out)
            out.append(c)

    def regex(self, delimiter: str, flags: str = "") -> re.Pattern[str] | None:
        source = self.delimited(delimiter, "regex")
        if not source:
            return None
        try:
            return compile_posix(source, extended=self.extended, ignore_case="I" in flags or "i" in flags,
                                 multiline="M" in flags or "m" in flags)
        except RegexError as exc:
            raise SedError(f"bad regex '{source}': {exc}") from None

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.i)
        end = len(self.text) if end < 0 else end
        value, self.i = self.text[self.i : end], end
        return value

    def label(self) -> str:
        self.skip_space()
        start = self.i
        while self.peek() and self.peek() not in ";\n}":
            self.i += 1
        return self.text[start : self.i].strip()


def _bracket_end(text: str, i: int) -> int:
    """The index after a bracket expression opening at text[i]."""
    j = i + 1
    if text[j : j + 1] == "^":
        j += 1
    if text[j : j + 1] == "]":
        j += 1
    while j < len(text) and text[j] != "]":
        if text.startswith(("[:", "[=", "[."), j):
            close = text.find(text[j + 1] + "]", j + 2)
            j = close + 2 if close >= 0 else j + 1
        else:
            j += 1
    return min(j + 1, len(text))


def _address(reader: _Reader) -> Address | None:
    c = reader.peek()
    if c.isdigit():
        number = reader.number()
        return Address("zero") if number == 0 else Address("line", number)
    if c == "$":
        reader.i += 1
        return Address("last")
    if c in ("/", "\\"):
        reader.i += 1
        delimiter = "/" if c == "/" else reader.text[reader.i : reader.i + 1]
        if c == "\\":
            reader.i += 1
        pattern_start = reader.i
        reader.delimited(delimiter, "regex")
        flags = ""
        while reader.peek() in ("I", "M"):
            flags += reader.peek()
            reader.i += 1
        end = reader.i
        reader.i = pattern_start
        regex = reader.regex(delimiter, flags)
        reader.i = end
        return Address("regex", regex=regex)
    return None


def _replacement(text: str) -> list[str | int]:
    """s's replacement: `&` and `\\1`..`\\9` become group numbers, `\\n` a newline, `\\x` x."""
    pieces: list[str | int] = []
    literal: list[str] = []
    k = 0
    while k < len(text):
        c = text[k]
        if c == "\\" and k + 1 < len(text):
            nxt = text[k + 1]
            k += 2
            if nxt.isdigit():
                pieces += ["".join(literal), int(nxt)]
                literal = []
            else:
                literal.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            continue
        if c == "&":
            pieces += ["".join(literal), 0]
            literal = []
        else:
            literal.append(c)
        k += 1
    pieces.append("".join(literal))
    return [p for p in pieces if p != ""]


def _substitute(reader: _Reader, command: Command) -> None:
    delimiter = reader.peek()
    if not delimiter or delimiter in "\n\\":
        raise SedError("bad s delimiter")
    reader.i += 1
    pattern_start = reader.i
    reader.delimited(delimiter, "regex")
    replacement = reader.delimited(delimiter, "replacement")
    flags = ""
    while reader.peek() and reader.peek() in "gpiImM0123456789":
        flags += reader.peek()
        reader.i += 1
    if reader.peek() == "w":
        reader.i += 1
        reader.skip_space()
        command.write = reader.rest_of_line()
    after = reader.i
    reader.i = pattern_start
    command.regex = reader.regex(delimiter, flags)
    command.empty_regex = command.regex is None
    reader.i = after
    command.replacement = _replacement(replacement)
    command.every, command.print_ = "g" in flags, "p" in flags
    digits = "".join(c for c in flags if c.isdigit())
    command.occurrence = int(digits) if digits else 1


def _text_argument(reader: _Reader) -> str:
    """a/i/c text: `a text` to the end of the line, or `a\\` then lines, each but the last ending in `\\`."""
    reader.skip_space()
    if reader.text.startswith("\\\n", reader.i):
        reader.i += 2
    elif reader.peek() == "\\":
        reader.i += 1
    lines = []
    while True:
        line = reader.rest_of_line()
        if line.endswith("\\") and reader.i < len(reader.text):
            lines.append(line[:-1])
            reader.i += 1
            continue
        lines.append(line)
        return "\n".join(lines).replace("\\t", "\t")


def parse_script(text: str, extended: bool) -> list[Command]:
    """The commands of a script; `{` and `}` are commands too, `{` knowing where its block ends."""
    reader = _Reader(text, extended)
    commands: list[Command] = []
    open_blocks: list[int] = []
    while True:
        reader.skip_space(newlines=True)
        if not reader.peek():
            break
        first = _address(reader)
        second = None
        if first is not None and reader.peek() == ",":
            reader.i += 1
            if reader.peek() == "+":
                reader.i += 1
                second = Address("plus", reader.number())
            else:
                second = _address(reader)
                if second is None:
                    raise SedError("unexpected ','")
        reader.skip_space()
        negate = reader.peek() == "!"
        if negate:
            reader.i += 1
            reader.skip_space()
        name = reader.peek()
        reader.i += 1
        command = Command(name, first, second, negate)
        _arguments(reader, command)
        if name == "{":
            open_blocks.append(len(commands))
        elif name == "}":
            if not open_blocks or first is not None:
                raise SedError("unexpected '}'")
            commands[open_blocks.pop()].block_end = len(commands)
        commands.append(command)
        reader.skip_space()
        if name != "{" and reader.peek() and reader.peek() not in ";\n}":
            raise SedError(f"extra characters after command: '{reader.rest_of_line()}'")
    if open_blocks:
        raise SedError("unmatched '{'")
    return commands


def _arguments(reader: _Reader, command: Command) -> None:
    name = command.name
    if name == "s":
        _substitute(reader, command)
    elif name == "y":
        delimiter = reader.peek()
        reader.i += 1
        source = reader.delimited(delimiter, "y").replace("\\n", "\n").replace("\\\\", "\\")
        target = reader.delimited(delimiter, "y").replace("\\n", "\n").replace("\\\\", "\\")
        if len(source) != len(target):
            raise SedError("y: strings differ in length")
        command.mapping = str.maketrans(source, target)
    elif name in "aic":
        command.text = _text_argument(reader)
    elif name in "btT:":
        command.text = reader.label()
        if name == ":" and not command.text:
            raise SedError("':' needs a label")
    elif name in "rw":
        reader.skip_space()
        command.text = reader.rest_of_line()
    elif name in "qQ":
        reader.skip_space()
        command.text = str(reader.number()) if reader.peek().isdigit() else ""
    elif name not in "{}pPdDnNgGhHxl=z":
        raise SedError(f"unknown command '{name}'")
