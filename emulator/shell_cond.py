"""`test` / `[`: POSIX expressions (! -a -o and parentheses) over strings, integers and sandbox files.

System programs and applets have no file in the sandbox but are executables of the device image,
so the caller passes their paths as `image` and they count as existing executable files.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection

from emulator.sandbox import DeviceOSError, Sandbox

_INTEGER_OPS: dict[str, Callable[[int, int], bool]] = {
    "-eq": operator.eq, "-ne": operator.ne, "-lt": operator.lt,
    "-le": operator.le, "-gt": operator.gt, "-ge": operator.ge,
}
_STRING_OPS: dict[str, Callable[[str, str], bool]] = {"=": operator.eq, "==": operator.eq, "!=": operator.ne}
_UNARY = frozenset(["-e", "-f", "-d", "-r", "-w", "-x", "-s", "-L", "-h", "-z", "-n", "-b", "-c", "-p", "-S", "-t"])


class ConditionError(Exception):
    """Malformed expression: `test` exits 2."""


class _Files:
    def __init__(self, fs: Sandbox, cwd: str, image: Collection[str]) -> None:
        self.fs, self.cwd, self.image = fs, cwd, image

    def check(self, op: str, path: str) -> bool:
        in_image = self.fs.norm(path, self.cwd) in self.image
        fs, cwd = self.fs, self.cwd
        if op == "-e":
            return in_image or fs.exists(path, cwd)
        if op == "-f":
            return in_image or fs.is_file(path, cwd)
        if op == "-d":
            return fs.is_dir(path, cwd)
        if op == "-r":
            return in_image or fs.exists(path, cwd)
        if op == "-x":
            return in_image or fs.is_dir(path, cwd) or (fs.is_file(path, cwd) and bool(self.mode(path) & 0o111))
        if op == "-s":
            return fs.is_file(path, cwd) and fs.stat(path, cwd).st_size > 0
        if op == "-w":
            return fs.exists(path, cwd) and self.writable(path)
        return False  # -L -h (no symlinks), devices, pipes, sockets, terminals

    def mode(self, path: str) -> int:
        return self.fs.stat(path, self.cwd).st_mode

    def writable(self, path: str) -> bool:
        try:
            self.fs.host(path, self.cwd, write=True)
        except DeviceOSError:
            return False
        return True


class _Parser:
    def __init__(self, args: list[str], files: _Files) -> None:
        self.args, self.i, self.files = args, 0, files

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
        while self.peek() == "-o":
            self.i += 1
            value = self.conjunction() or value
        return value

    def conjunction(self) -> bool:
        value = self.negation()
        while self.peek() == "-a":
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

    def binary(self, left: str, op: str, right: str) -> bool:
        if op in _STRING_OPS:
            return _STRING_OPS[op](left, right)
        numbers = []
        for text in (left, right):
            if not re.fullmatch(r"\s*-?\d+\s*", text):
                raise ConditionError(f"{text}: bad number")
            numbers.append(int(text))
        return _INTEGER_OPS[op](numbers[0], numbers[1])


def evaluate(args: list[str], fs: Sandbox, cwd: str, image: Collection[str]) -> bool:
    if not args:
        return False
    parser = _Parser(args, _Files(fs, cwd, image))
    value = parser.expr()
    if parser.i != len(args):
        raise ConditionError(f"{args[parser.i]}: unexpected operator")
    return value
