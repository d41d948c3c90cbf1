"""Shell arithmetic as mksh does it (`$((...))`, `((...))`, `let`): signed 32-bit integers that wrap,
C's operators and precedence with `?:`, `,` and the assignments, decimal (a leading 0 stays decimal),
0x hex and BASE#digits numbers, and variables whose text is itself evaluated (x='1+2'; $((x*2)) is 6).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

_TOKEN = re.compile(r"\s*(?:(\d+#[0-9A-Za-z_@]+|0[xX][0-9A-Fa-f]+|\d+)|([A-Za-z_]\w*)|"
                    r"(<<=|>>=|&&|\|\||==|!=|<=|>=|<<|>>|\+\+|--|[-+*/%&^|]=|[-+*/%<>=!~&^|?:,()]))")
_ASSIGN_OPS = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|="})
_MAX_DEPTH = 32  # variables referring to variables: x=x must end in an error, not a crash


class ArithError(Exception):
    """The message after `expression: ` (`zero divisor`, `unexpected 'x'`)."""


class Variables(Protocol):
    options: set[str]

    def lookup(self, name: str) -> str | None: ...
    def assign(self, name: str, value: str) -> None: ...


def wrap(value: int) -> int:
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def _divide(a: int, b: int) -> int:
    if b == 0:
        raise ArithError("zero divisor")
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _modulo(a: int, b: int) -> int:
    return a - b * _divide(a, b)


_BINARY: dict[str, Callable[[int, int], int]] = {
    "*": lambda a, b: a * b, "/": _divide, "%": _modulo, "+": lambda a, b: a + b, "-": lambda a, b: a - b,
    "<<": lambda a, b: a << (b & 31), ">>": lambda a, b: a >> (b & 31),
    "<": lambda a, b: int(a < b), "<=": lambda a, b: int(a <= b), ">": lambda a, b: int(a > b),
    ">=": lambda a, b: int(a >= b), "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
    "&": lambda a, b: a & b, "^": lambda a, b: a ^ b, "|": lambda a, b: a | b,
}
# binary operators from the loosest to the tightest binding (&& and || short-circuit apart)
_LEVELS = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"),
           ("+", "-"), ("*", "/", "%")]


def number(text: str) -> int:
    """A literal: decimal, 0x hex or BASE#digits."""
    if "#" in text:
        base_text, digits = text.split("#", 1)
        base = int(base_text)
        if not 2 <= base <= 36:
            raise ArithError(f"{text}: bad number")
        try:
            return int(digits, base)
        except ValueError:
            raise ArithError(f"{text}: bad number") from None
    return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)


class _Evaluator:
    """Recursive descent over the tokens, evaluating as it goes; `live` is False in the branch a
    short-circuit skips, which is parsed but neither evaluated nor allowed to assign."""

    def __init__(self, text: str, vars: Variables, depth: int) -> None:
        self.text, self.vars, self.depth = text, vars, depth
        self.tokens = self._tokenize(text)
        self.i = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                if not text[pos:].strip():
                    break
                raise ArithError(f"unexpected '{text[pos:].strip()[0]}'")
            kind = "num" if m.group(1) else "name" if m.group(2) else "op"
            tokens.append((kind, m.group(m.lastindex or 0)))
            pos = m.end()
        return tokens

    def peek(self, offset: int = 0) -> tuple[str, str]:
        k = self.i + offset
        return self.tokens[k] if k < len(self.tokens) else ("end", "")

    def at(self, *ops: str) -> bool:
        kind, value = self.peek()
        return kind == "op" and value in ops

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise ArithError("unexpected 'end of expression'")
        self.i += 1
        return token

    def expect(self, op: str) -> None:
        kind, value = self.take()
        if (kind, value) != ("op", op):
            raise ArithError(f"unexpected '{value}'")

    def run(self) -> int:
        if not self.tokens:
            return 0
        value = self.comma(True)
        if self.peek()[0] != "end":
            raise ArithError(f"unexpected '{self.peek()[1]}'")
        return value

    # ---- grammar ------------------------------------------------------------------------

    def comma(self, live: bool) -> int:
        value = self.assignment(live)
        while self.at(","):
            self.i += 1
            value = self.assignment(live)
        return value

    def assignment(self, live: bool) -> int:
        (kind, name), (op_kind, op) = self.peek(), self.peek(1)
        if kind == "name" and op_kind == "op" and op in _ASSIGN_OPS:
            self.i += 2
            value = self.assignment(live)
            if live:
                if op != "=":
                    value = wrap(_BINARY[op[:-1]](self.variable(name), value))
                self.vars.assign(name, str(value))
            return value
        return self.conditional(live)

    def conditional(self, live: bool) -> int:
        value = self.binary(0, live)
        if not self.at("?"):
            return value
        self.i += 1
        first = self.assignment(live and bool(value))
        self.expect(":")
        second = self.conditional(live and not value)
        return first if value else second

    def binary(self, level: int, live: bool) -> int:
        if level == len(_LEVELS):
            return self.unary(live)
        left = self.binary(level + 1, live)
        while self.at(*_LEVELS[level]):
            op = self.take()[1]
            if op in ("&&", "||"):
                right = self.binary(level + 1, live and (bool(left) == (op == "&&")))
                left = int(bool(left) and bool(right)) if op == "&&" else int(bool(left) or bool(right))
            else:
                right = self.binary(level + 1, live)
                left = wrap(_BINARY[op](left, right)) if live else 0
        return left

    def unary(self, live: bool) -> int:
        if self.at("++", "--"):
            op = self.take()[1]
            kind, name = self.take()
            if kind != "name":
                raise ArithError(f"unexpected '{name}'")
            return self.step(name, op, live, prefix=True)
        if self.at("+", "-", "!", "~"):
            op = self.take()[1]
            value = self.unary(live)
            return wrap({"+": value, "-": -value, "!": int(not value), "~": ~value}[op])
        return self.primary(live)

    def primary(self, live: bool) -> int:
        kind, value = self.take()
        if kind == "num":
            return wrap(number(value))
        if kind == "name":
            if self.at("++", "--"):
                return self.step(value, self.take()[1], live, prefix=False)
            return self.variable(value) if live else 0
        if value == "(":
            result = self.comma(live)
            self.expect(")")
            return result
        raise ArithError(f"unexpected '{value}'")

    def step(self, name: str, op: str, live: bool, *, prefix: bool) -> int:
        if not live:
            return 0
        before = self.variable(name)
        after = wrap(before + (1 if op == "++" else -1))
        self.vars.assign(name, str(after))
        return after if prefix else before

    def variable(self, name: str) -> int:
        text = self.vars.lookup(name)
        if text is None and "nounset" in self.vars.options:
            raise ArithError(f"{name}: parameter not set")
        if not text or not text.strip():
            return 0
        if re.fullmatch(r"\s*-?\d+\s*", text):
            return wrap(int(text))
        if self.depth >= _MAX_DEPTH:
            raise ArithError(f"expression recurses on parameter '{name}'")
        return _Evaluator(text, self.vars, self.depth + 1).run()


def evaluate(text: str, vars: Variables) -> int:
    """The value of an arithmetic expression; ArithError carries mksh's message after `text: `."""
    return _Evaluator(text, vars, 0).run()
