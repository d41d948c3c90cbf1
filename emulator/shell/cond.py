"""`test` / `[`: POSIX expressions (! -a -o and parentheses) over strings, integers and sandbox files
(the Sandbox also answers for the system image's executables, so `test -x /system/bin/ls` holds)."""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable

from emulator.sandbox import DeviceOSError, Sandbox

_INTEGER_OPS: dict[str, Callable[[int, int], bool]] = {
    "-eq": operator.eq, "-ne": operator.ne, "-lt": operator.lt,
    "-le": operator.le, "-gt": operator.gt, "-ge": operator.ge,
}
_STRING_OPS: dict[str, Callable[[str, str], bool]] = {"=": operator.eq, "==": operator.eq, "!=": operator.ne}
_COND_OPS = frozenset({"==", "=", "!=", "=~", "<", ">"})
_UNARY = frozenset(["-e", "-f", "-d", "-r", "-w", "-x", "-s", "-L", "-h", "-z", "-n", "-b", "-c", "-p", "-S", "-t"])


class ConditionError(Exception):
    """Malformed expression: `test` exits 2."""


class _Files:
    def __init__(self, fs: Sandbox, cwd: str) -> None:
        self.fs, self.cwd = fs, cwd

    def check(self, op: str, path: str) -> bool:
        fs, cwd = self.fs, self.cwd
        if op in ("-e", "-r"):
            return fs.exists(path, cwd)
        if op == "-f":
            return fs.is_file(path, cwd)
        if op == "-d":
            return fs.is_dir(path, cwd)
        if op == "-x":
            return fs.is_dir(path, cwd) or (fs.is_file(path, cwd) and bool(self.mode(path) & 0o111))
        if op == "-s":
            return fs.is_file(path, cwd) and fs.stat(path, cwd).st_size > 0
        if op == "-w":
            return fs.exists(path, cwd) and self.writable(path)
        if op in ("-L", "-h"):
            return fs.is_link(path, cwd)
        return False  # devices, pipes, sockets, terminals

    def mode(self, path: str) -> int:
        return self.fs.stat(path, self.cwd).st_mode

    def writable(self, path: str) -> bool:
        try:
            self.fs.host(path, self.cwd, write=True)
        except DeviceOSError:
            return False
        return True


class _Parser:
    """`test` expressions; with `patterns` (one per argument) the `[[ ]]` dialect: && || for -a -o,
    == and != match the right side as a pattern, =~ as a regular expression, < > compare strings."""

    def __init__(self, args: list[str], files: _Files, patterns: list[str] | None = None) -> None:
        self.args, self.i, self.files, self.patterns = args, 0, files, patterns
        self.or_op, self.and_op = ("||", "&&") if patterns is not None else ("-o", "-a")

    def peek(self, offset: int = 0) -> str | None:
        k = self.i + offset
        return self.args[k] if k < len(self.args) else None

    def take(self) -> str:
        if self.i >= len(self.args):
            raise ConditionError("missing argument")
        self.i += 1
        return self.args[self.i - 1]

    def expr(self) -> bool:
        value = self.conjunction()
        while self.peek() == self.or_op:
            self.i += 1
            value = self.conjunction() or value
        return value

    def conjunction(self) -> bool:
        value = self.negation()
        while self.peek() == self.and_op:
            self.i += 1
            value = self.negation() and value
        return value

    def negation(self) -> bool:
        if self.peek() == "!" and self.peek(1) is not None:
            self.i += 1
            return not self.negation()
        return self.primary()

    def primary(self) -> bool:
        token = self.take()
        following = self.peek()
        if self.patterns is not None and following in _COND_OPS:
            self.i += 2
            return self.compare(token, following, self.i - 1)
        if following in _STRING_OPS or following in _INTEGER_OPS:
            self.i += 1
            return self.binary(token, following, self.take())
        if token == "(" and following is not None:
            value = self.expr()
            if self.take() != ")":
                raise ConditionError("missing )")
            return value
        if token in _UNARY and following is not None:
            operand = self.take()
            if token == "-z":
                return operand == ""
            if token == "-n":
                return operand != ""
            return self.files.check(token, operand)
        return token != ""

    def compare(self, left: str, op: str, right_index: int) -> bool:
        if right_index >= len(self.args):
            raise ConditionError("missing argument")
        assert self.patterns is not None
        right = self.args[right_index]
        if op == "=~":
            try:
                return re.search(right, left) is not None
            except re.error:
                raise ConditionError(f"{right}: bad regular expression") from None
        if op in ("<", ">"):
            return left < right if op == "<" else left > right
        matched = fnmatch.fnmatchcase(left, self.patterns[right_index])
        return matched if op in ("==", "=") else not matched

    def binary(self, left: str, op: str, right: str) -> bool:
        if op in _STRING_OPS:
            return _STRING_OPS[op](left, right)
        numbers = []
        for text in (left, right):
            if not re.fullmatch(r"\s*-?\d+\s*", text):
                raise ConditionError(f"{text}: bad number")
            numbers.append(int(text))
        return _INTEGER_OPS[op](numbers[0], numbers[1])


def evaluate(args: list[str], fs: Sandbox, cwd: str, patterns: list[str] | None = None) -> bool:
    """`test` semantics, or `[[ ]]` semantics when each argument comes with its pattern form."""
    if not args:
        return False
    parser = _Parser(args, _Files(fs, cwd), patterns)
    value = parser.expr()
    if parser.i != len(args):
        raise ConditionError(f"{args[parser.i]}: unexpected operator")
    return value
