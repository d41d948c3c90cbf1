"""awk programs parsed into a tree of tuples: `(kind, ...)` nodes that emulator.shell.awk walks.

POSIX awk's grammar: patterns and ranges, BEGIN/END, functions, the statements (if while do for
for-in break continue next exit return delete print printf getline), and expressions with their
precedence (assignment, ?:, || && in ~ !~, comparison, concatenation, + - * / % ^, unary, ++ --, $).
"""

from __future__ import annotations

import re
from typing import Any

Node = tuple[Any, ...]
KEYWORDS = frozenset({"BEGIN", "END", "function", "func", "if", "else", "while", "for", "do", "break",
                      "continue", "next", "nextfile", "exit", "return", "delete", "in", "getline", "print",
                      "printf"})
BUILTINS = frozenset({"length", "substr", "index", "split", "sub", "gsub", "match", "sprintf", "sin", "cos",
                      "atan2", "exp", "log", "sqrt", "int", "rand", "srand", "tolower", "toupper", "system",
                      "close", "fflush"})
_TOKEN = re.compile(r"""
    (?P<space>[ \t]+|\\\n|\#[^\n]*)
  | (?P<newline>\n)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>\+\+|--|\+=|-=|\*=|/=|%=|\^=|\*\*=|\*\*|==|<=|>=|!=|!~|&&|\|\||>>|[-+*/%^!<>=~?:,;(){}\[\]$|])
""", re.X)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "/": "/", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


class AwkSyntaxError(Exception):
    """A program awk refuses, with the line it was found on."""


def unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{1,3}|.)", lambda m: chr(int(m.group(1), 8)) if m.group(1)[0] in "01234567"
                  else _ESCAPES.get(m.group(1), "\\" + m.group(1)), text)


def tokenize(src: str) -> list[tuple[str, Any, int]]:
    """(kind, value, line); a `/` where an operand may start opens a regular expression literal."""
    tokens: list[tuple[str, Any, int]] = []
    i, line = 0, 1
    while i < len(src):
        last = tokens[-1] if tokens else ("newline", "\n", line)
        if src[i] == "/" and not (last[0] in ("number", "string", "name", "func", "builtin", "regex")
                                  or last[1] in (")", "]", "$", "++", "--")):
            j = i + 1
            while j < len(src) and src[j] != "/":
                if src[j] == "\n":
                    raise AwkSyntaxError(f"line {line}: unterminated regular expression")
                j += 2 if src[j] == "\\" else 1
            body = src[i + 1 : j].replace("\\/", "/")
            tokens.append(("regex", body, line))
            i = j + 1
            continue
        m = _TOKEN.match(src, i)
        if not m:
            raise AwkSyntaxError(f"line {line}: syntax error at '{src[i]}'")
        kind, text = m.lastgroup or "", m.group()
        i = m.end()
        if kind == "space":
            line += text.count("\n")
            continue
        if kind == "newline":
            tokens.append(("newline", "\n", line))
            line += 1
        elif kind == "number":
            tokens.append(("number", float(text), line))
        elif kind == "string":
            tokens.append(("string", unescape(text[1:-1]), line))
        elif kind == "name":
            if text in KEYWORDS:
                tokens.append(("keyword", text, line))
            elif text in BUILTINS:
                tokens.append(("builtin", text, line))
            elif src[i : i + 1] == "(":
                tokens.append(("func", text, line))
            else:
                tokens.append(("name", text, line))
        else:
            tokens.append(("op", text, line))
    tokens.append(("eof", "", line))
    return tokens


_CONCAT_START = frozenset({"number", "string", "regex", "name", "func", "builtin"})


class Parser:
    def __init__(self, src: str) -> None:
        self.tokens = tokenize(src)
        self.i = 0
        self.no_in = self.no_gt = False

    # ---- tokens -------------------------------------------------------------------------

    @property
    def tok(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def at(self, *values: str) -> bool:
        kind, value, _ = self.tok
        return kind in ("op", "keyword") and value in values

    def take(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        if not self.at(value):
            raise self.error()
        self.i += 1

    def error(self) -> AwkSyntaxError:
        kind, value, line = self.tok
        near = "end of program" if kind == "eof" else "newline" if kind == "newline" else str(value)
        return AwkSyntaxError(f"syntax error at source line {line}: near '{near}'")

    def newlines(self) -> None:
        while self.tok[0] == "newline":
            self.i += 1

    def terminators(self) -> None:
        while self.tok[0] == "newline" or self.at(";"):
            self.i += 1

    # ---- program ------------------------------------------------------------------------

    def program(self) -> dict[str, Any]:
        begin, end, rules, functions = [], [], [], {}
        self.terminators()
        while self.tok[0] != "eof":
            if self.at("BEGIN"):
                self.i += 1
                begin.append(self.block())
            elif self.at("END"):
                self.i += 1
                end.append(self.block())
            elif self.at("function", "func"):
                self.i += 1
                name = self.take()[1]
                self.expect("(")
                params = []
                while not self.at(")"):
                    params.append(self.take()[1])
                    if self.at(","):
                        self.i += 1
                        self.newlines()
                self.expect(")")
                self.newlines()
                functions[name] = (params, self.block())
            else:
                pattern = None if self.at("{") else self.expression()
                second = None
                if self.at(","):
                    self.i += 1
                    self.newlines()
                    second = self.expression()
                action = self.block() if self.at("{") else None
                rules.append((pattern, second, action))
            self.terminators()
        return {"begin": begin, "end": end, "rules": rules, "functions": functions}

    def block(self) -> Node:
        self.expect("{")
        body = []
        self.terminators()
        while not self.at("}"):
            body.append(self.statement())
            self.terminators()
        self.expect("}")
        return ("block", body)

    def simple_end(self) -> None:
        """A simple statement ends with ; or a newline, or just before } or the end."""
        if self.at(";") or self.tok[0] == "newline":
            self.i += 1
        elif not (self.at("}") or self.tok[0] == "eof"):
            raise self.error()

    def body(self) -> Node:
        self.newlines()
        if self.at(";"):
            self.i += 1
            return ("block", [])
        return self.statement()

    def statement(self) -> Node:
        if self.at("{"):
            return self.block()
        if self.at("if"):
            self.i += 1
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            then = self.body()
            save = self.i
            self.terminators()
            if self.at("else"):
                self.i += 1
                return ("if", condition, then, self.body())
            self.i = save
            return ("if", condition, then, None)
        if self.at("while"):
            self.i += 1
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            if self.at(";"):
                self.i += 1
                return ("while", condition, ("block", []))
            return ("while", condition, self.body())
        if self.at("do"):
            self.i += 1
            loop_body = self.body()
            self.terminators()
            self.expect("while")
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            self.simple_end()
            return ("do", loop_body, condition)
        if self.at("for"):
            return self.for_statement()
        if self.at(";"):
            self.i += 1
            return ("block", [])
        node = self.simple_statement()
        self.simple_end()
        return node

    def for_statement(self) -> Node:
        self.i += 1
        self.expect("(")
        if self.tok[0] == "name" and self.tokens[self.i + 1][1] == "in" and self.tokens[self.i + 3][1] == ")":
            var = self.take()[1]
            self.i += 1
            array = self.take()[1]
            self.expect(")")
            return ("forin", var, array, self.body())
        init = None if self.at(";") else self.simple_statement()
        self.expect(";")
        self.newlines()
        condition = None if self.at(";") else self.expression()
        self.expect(";")
        self.newlines()
        step = None if self.at(")") else self.simple_statement()
        self.expect(")")
        return ("for", init, condition, step, self.body())

    def simple_statement(self) -> Node:
        kind, value, _ = self.tok
        if kind == "keyword":
            if value in ("print", "printf"):
                return self.print_statement()
            if value in ("next", "nextfile", "break", "continue"):
                self.i += 1
                return (value,)
            if value in ("exit", "return"):
                self.i += 1
                ends = self.at(";", "}") or self.tok[0] in ("newline", "eof")
                return (value, None if ends else self.expression())
            if value == "delete":
                self.i += 1
                name = self.take()[1]
                if self.at("["):
                    self.i += 1
                    subscript = self.expression_list()
                    self.expect("]")
                    return ("delete", name, subscript)
                return ("delete", name, None)
        return ("expr", self.expression())

    def print_statement(self) -> Node:
        kind = self.take()[1]
        self.no_gt = True
        args: list[Node] = []
        if not (self.at(";", "}", ">", ">>", "|") or self.tok[0] in ("newline", "eof")):
            args = self.expression_list()
        self.no_gt = False
        if len(args) == 1 and args[0][0] == "group":
            args = list(args[0][1])
        redirect = None
        if self.at(">", ">>", "|"):
            op = self.take()[1]
            redirect = (op, self.concatenation())
        return (kind, args, redirect)

    # ---- expressions --------------------------------------------------------------------

    def expression_list(self) -> list[Node]:
        items = [self.expression()]
        while self.at(","):
            self.i += 1
            self.newlines()
            items.append(self.expression())
        return items

    def expression(self) -> Node:
        left = self.ternary()
        if self.at("=", "+=", "-=", "*=", "/=", "%=", "^=", "**=") and left[0] in ("var", "field", "index"):
            op = self.take()[1].replace("**", "^")
            self.newlines()
            return ("assign", op, left, self.expression())
        return left

    def ternary(self) -> Node:
        condition = self.binary_or()
        if not self.at("?"):
            return condition
        self.i += 1
        self.newlines()
        first = self.expression()
        self.newlines()
        self.expect(":")
        self.newlines()
        return ("cond", condition, first, self.expression())

    def binary_or(self) -> Node:
        left = self.binary_and()
        while self.at("||"):
            self.i += 1
            self.newlines()
            left = ("or", left, self.binary_and())
        return left

    def binary_and(self) -> Node:
        left = self.membership()
        while self.at("&&"):
            self.i += 1
            self.newlines()
            left = ("and", left, self.membership())
        return left

    def membership(self) -> Node:
        left = self.matching()
        while self.at("in") and not self.no_in:
            self.i += 1
            subscript = list(left[1]) if left[0] == "group" else [left]
            left = ("in", subscript, self.take()[1])
        return left

    def matching(self) -> Node:
        left = self.comparison()
        while self.at("~", "!~"):
            negate = self.take()[1] == "!~"
            left = ("match", negate, left, self.comparison())
        return left

    def comparison(self) -> Node:
        left = self.concatenation()
        if self.at("<", "<=", "!=", "==", ">=") or (self.at(">") and not self.no_gt):
            op = self.take()[1]
            return ("compare", op, left, self.concatenation())
        return left

    def concatenation(self) -> Node:
        left = self.additive()
        while True:
            kind, value, _ = self.tok
            if self.at("|") and self.tokens[self.i + 1][1] == "getline":
                self.i += 2
                left = ("getline", self.optional_lvalue(), ("cmd", left))
            elif kind in _CONCAT_START or (kind == "op" and value in ("$", "(", "++", "--")):
                left = ("concat", left, self.additive())
            else:
                break
        return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.at("+", "-"):
            op = self.take()[1]
            left = ("binary", op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Node:
        left = self.unary()
        while self.at("*", "/", "%"):
            op = self.take()[1]
            left = ("binary", op, left, self.unary())
        return left

    def unary(self) -> Node:
        if self.at("!"):
            self.i += 1
            return ("not", self.unary())
        if self.at("-", "+"):
            op = self.take()[1]
            return ("negate" if op == "-" else "plus", self.unary())
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.at("^", "**"):
            self.i += 1
            return ("binary", "^", base, self.unary_power())
        return base

    def unary_power(self) -> Node:
        if self.at("-", "+", "!"):
            op = self.take()[1]
            return ({"-": "negate", "+": "plus", "!": "not"}[op], self.unary_power())
        return self.power()

    def postfix(self) -> Node:
        if self.at("++", "--"):
            op = self.take()[1]
            return ("incr", op, True, self.postfix())
        node = self.primary()
        if self.at("++", "--") and node[0] in ("var", "field", "index"):
            return ("incr", self.take()[1], False, node)
        return node

    def optional_lvalue(self) -> Node | None:
        if self.tok[0] == "name" or self.at("$"):
            return self.primary()
        return None

    def primary(self) -> Node:
        kind, value, _ = self.take()
        if kind == "number":
            return ("num", value)
        if kind == "string":
            return ("str", value)
        if kind == "regex":
            return ("regex", value)
        if kind == "op" and value == "$":
            return ("field", self.postfix())
        if kind == "op" and value == "(":
            saved, self.no_in, self.no_gt = (self.no_in, self.no_gt), False, False
            items = self.expression_list()
            self.no_in, self.no_gt = saved
            self.expect(")")
            return items[0] if len(items) == 1 else ("group", items)
        if kind == "keyword" and value == "getline":
            target = self.optional_lvalue()
            if self.at("<"):
                self.i += 1
                return ("getline", target, ("file", self.postfix()))
            return ("getline", target, None)
        if kind == "builtin":
            args: list[Node] = []
            if self.at("("):
                self.i += 1
                if not self.at(")"):
                    args = self.expression_list()
                self.expect(")")
            return ("builtin", value, args)
        if kind == "func":
            self.expect("(")
            args = [] if self.at(")") else self.expression_list()
            self.expect(")")
            return ("call", value, args)
        if kind == "name":
            if self.at("["):
                self.i += 1
                subscript = self.expression_list()
                self.expect("]")
                return ("index", value, subscript)
            return ("var", value)
        self.i -= 1
        raise self.error()


def parse(src: str) -> dict[str, Any]:
    return Parser(src).program()
