"""toybox's grep: POSIX basic (default), extended (-E) or fixed (-F) patterns, read line by line so a
pipeline's `grep -m1` or `grep -q` ends as soon as it has its answer. Output as toybox prints it:
`name:line:text` for a match, `name-line-text` for context, `--` between separate context groups."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from emulator.sandbox import DeviceOSError
from emulator.shell.builtins import Invocation, Options, getopt
from emulator.shell.files import walk_kinds
from emulator.shell.regex import RegexError, translate

FLAGS = "EFGHILRbchilnoqrsvwxz"
VALUED = "ABCefm"


class _Quit(Exception):
    """-q found a match: nothing more to read."""


@dataclass
class _Grep:
    inv: Invocation
    opts: Options
    regexes: list[re.Pattern[str]]
    show_names: bool
    found: bool = False
    max_count: int | None = None
    before: int = 0
    after: int = 0

    def has(self, flag: str) -> bool:
        return flag in self.opts.flags

    def spans(self, line: str) -> list[tuple[int, int]]:
        """The non-empty matches of a line, leftmost first, as -o prints them."""
        spans, pos = [], 0
        while pos <= len(line):
            hits = [m for m in (r.search(line, pos) for r in self.regexes) if m]
            if not hits:
                break
            best = min(hits, key=lambda m: (m.start(), -m.end()))
            if best.end() > best.start():
                spans.append(best.span())
                pos = best.end()
            else:
                pos = best.start() + 1
        return spans

    def selected(self, line: str) -> bool:
        hit = bool(self.spans(line)) if self.has("o") else any(r.search(line) for r in self.regexes)
        return hit != self.has("v")

    def scan(self, name: str, source: BinaryIO) -> None:
        prefix = f"{name}" if self.show_names else ""
        count, last_printed, after_left = 0, 0, 0
        recent: deque[tuple[int, str]] = deque(maxlen=self.before or None)
        for number, raw in enumerate(iter(source.readline, b""), start=1):
            line = raw.decode("utf-8", "surrogateescape").removesuffix("\n")
            if not self.selected(line):
                if after_left:
                    self.emit(prefix, number, line, "-")
                    last_printed, after_left = number, after_left - 1
                elif self.before:
                    recent.append((number, line))
                continue
            count += 1
            self.found = True
            if self.has("q"):
                raise _Quit
            if not self.opts.flags & set("clL"):
                context = [(n, text) for n, text in recent if n > last_printed]
                first = context[0][0] if context else number
                if (self.before or self.after) and last_printed and first > last_printed + 1:
                    self.inv.out("--\n")
                for n, text in context:
                    self.emit(prefix, n, text, "-")
                self.emit(prefix, number, line, ":", match=True)
                last_printed, after_left = number, self.after
            recent.clear()
            if self.max_count is not None and count >= self.max_count:
                break
        if self.has("c"):
            self.inv.out(f"{prefix}:{count}\n" if prefix else f"{count}\n")
        elif (self.has("l") and count) or (self.has("L") and not count):
            self.inv.out(f"{name}\n")

    def emit(self, prefix: str, number: int, line: str, sep: str, match: bool = False) -> None:
        head = (prefix + sep if prefix else "") + (f"{number}{sep}" if self.has("n") else "")
        if match and self.has("o"):
            self.inv.out("".join(f"{head}{line[a:b]}\n" for a, b in self.spans(line)))
        else:
            self.inv.out(f"{head}{line}\n")


def _patterns(inv: Invocation, opts: Options) -> list[str]:
    patterns = list(opts.values.get("e", []))
    for path in opts.values.get("f", []):
        with inv.fs.open_read(path, inv.cwd) as f:
            patterns += f.read().decode("utf-8", "surrogateescape").splitlines()
    if not patterns and "e" not in opts.values and "f" not in opts.values:
        if not opts.operands:
            raise RegexError("no pattern")
        patterns.append(opts.operands.pop(0))
    return [line for p in patterns for line in p.split("\n")]


def _compile(opts: Options, patterns: list[str]) -> list[re.Pattern[str]]:
    """One regex per pattern (kept apart so each one's back-references stay its own)."""
    regexes = []
    for pattern in patterns:
        source = re.escape(pattern) if "F" in opts.flags else translate(pattern, extended="E" in opts.flags)
        if "w" in opts.flags:
            source = rf"(?<!\w)(?:{source})(?!\w)"
        if "x" in opts.flags:
            source = rf"^(?:{source})$"
        try:
            regexes.append(re.compile(source, (re.IGNORECASE if "i" in opts.flags else 0) | re.DOTALL))
        except re.error as exc:
            raise RegexError(str(exc)) from None
    return regexes


def _sources(inv: Invocation, opts: Options) -> Iterator[str]:
    """The files to read, in order: operands, with -r the files below each folder."""
    recursive = bool(opts.flags & {"r", "R"})
    for operand in opts.operands or (["."] if recursive else ["-"]):
        if operand != "-" and recursive and inv.fs.is_dir(operand, inv.cwd):
            yield from (path for path, folder in walk_kinds(inv, operand) if not folder)
        else:
            yield operand


def cmd_grep(inv: Invocation) -> int:
    opts = getopt(inv.args, FLAGS, VALUED)
    try:
        regexes = _compile(opts, _patterns(inv, opts))
    except RegexError as exc:
        inv.err(f"bad regex: {exc}")
        return 2
    except DeviceOSError as exc:
        return inv.fail(exc.path, exc) + 1
    recursive = bool(opts.flags & {"r", "R"})
    context = opts.number("C", 0)
    grep = _Grep(inv, opts, regexes, show_names=("H" in opts.flags or len(opts.operands) > 1 or recursive)
                 and "h" not in opts.flags, max_count=opts.number("m", 0) if "m" in opts.values else None,
                 before=opts.number("B", context), after=opts.number("A", context))
    failed = False
    try:
        for name in _sources(inv, opts):
            failed = _scan_one(inv, grep, name) or failed
    except _Quit:
        return 0
    if failed and not (grep.found and "q" in opts.flags):
        return 2
    return 0 if grep.found else 1


def _scan_one(inv: Invocation, grep: _Grep, name: str) -> bool:
    """Scan one file (or stdin for '-'); True when it could not be read."""
    if name == "-":
        grep.scan("(standard input)", inv.stdin)
        return False
    try:
        if inv.fs.is_dir(name, inv.cwd):
            raise DeviceOSError(name, "Is a directory")
        with inv.fs.open_read(name, inv.cwd) as f:
            grep.scan(name, f)
    except DeviceOSError as exc:
        if "s" not in grep.opts.flags:
            inv.err(f"{name}: {exc.message}")
        return True
    return False
