"""expr: integer arithmetic, comparisons and string operations on its arguments, with POSIX
precedence (| & comparisons + - * / % :) and GNU's `length`, `substr`, `index`, `match`. Exit 0 when
the result is neither empty nor 0, 1 when it is, 2 for a bad expression."""

from __future__ import annotations

import re

from emulator.shell.builtins import Invocation
from emulator.shell.regex import RegexError, compile_posix

_LEVELS = [("|",), ("&",), ("<", "<=", "=", "==", "!=", ">=", ">"), ("+", "-"), ("*", "/", "%")]


class ExprError(Exception):
    pass


def _int(value: str) -> int | None:
    return int(value) if re.fullmatch(r"-?\d+", value) else None


class _Expr:
    def __init__(self, args: list[str]) -> None:
        self.args, self.i = args, 0

    def take(self) -> str:
        if self.i >= len(self.args):
            raise ExprError("syntax error")
        self.i += 1
        return self.args[self.i - 1]

    def peek(self) -> str | None:
        return self.args[self.i] if self.i < len(self.args) else None

    def level(self, k: int) -> str:
        if k == len(_LEVELS):
            return self.match()
        left = self.level(k + 1)
        while self.peek() in _LEVELS[k]:
            op = self.take()
            right = self.level(k + 1)
            left = self.binary(op, left, right)
        return left

    def binary(self, op: str, left: str, right: str) -> str:
        if op == "|":
            return left if left not in ("", "0") else (right if right not in ("", "0") else "0")
        if op == "&":
            return left if left not in ("", "0") and right not in ("", "0") else "0"
        a, b = _int(left), _int(right)
        if op in ("+", "-", "*", "/", "%"):
            if a is None or b is None:
                raise ExprError("non-integer argument")
            if op in "/%" and b == 0:
                raise ExprError("division by zero")
            quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1) if op in "/%" else 0
            return str({"+": a + b, "-": a - b, "*": a * b, "/": quotient, "%": a - b * quotient}[op])
        pair: tuple[int, int] | tuple[str, str] = (a, b) if a is not None and b is not None else (left, right)
        x, y = pair
        result = {"<": x < y, "<=": x <= y, "=": x == y, "==": x == y, "!=": x != y, ">=": x >= y, ">": x > y}[op]
        return "1" if result else "0"

    def match(self) -> str:
        left = self.primary()
        while self.peek() == ":":
            self.take()
            left = self.regex(left, self.primary())
        return left

    def regex(self, text: str, pattern: str) -> str:
        try:
            m = compile_posix(pattern, extended=False).match(text)
        except RegexError as exc:
            raise ExprError(str(exc)) from None
        if m is None:
            return "" if compile_posix(pattern, extended=False).groups else "0"
        return m.group(1) if m.re.groups else str(m.end())

    def primary(self) -> str:
        token = self.take()
        if token == "(":
            value = self.level(0)
            if self.take() != ")":
                raise ExprError("syntax error")
            return value
        if token == "length":
            return str(len(self.primary()))
        if token == "substr":
            text, start, length = self.primary(), _int(self.primary()), _int(self.primary())
            if start is None or length is None or start < 1 or length < 0:
                return ""
            return text[start - 1 : start - 1 + length]
        if token == "index":
            text, chars = self.primary(), self.primary()
            return str(next((k + 1 for k, c in enumerate(text) if c in chars), 0))
        if token == "match":
            text = self.primary()
            return self.regex(text, self.primary())
        return token


def cmd_expr(inv: Invocation) -> int:
    parser = _Expr(inv.args)
    try:
        result = parser.level(0)
        if parser.peek() is not None:
            raise ExprError(f"syntax error: unexpected argument '{parser.peek()}'")
    except ExprError as exc:
        inv.err(str(exc))
        return 2
    inv.out(result + "\n")
    return 1 if result in ("", "0") else 0
