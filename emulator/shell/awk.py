"""awk as Android ships it (one-true-awk's POSIX language): records read one at a time (so a
pipeline's awk that exits early ends its producer), fields, -F -v -f, arrays, user functions,
printf, and the builtins scripts use (length substr index split sub gsub match sprintf int ...).
Files go through the Sandbox; system() and `cmd | getline` run in the device's own shell."""

from __future__ import annotations

import contextlib
import io
import math
import random
import re
from typing import Any, BinaryIO

from emulator.sandbox import DeviceOSError
from emulator.shell.awk_parse import AwkSyntaxError, Node, parse, unescape
from emulator.shell.builtins import Invocation, getopt
from emulator.shell.regex import RegexError, compile_posix

_NUMERIC = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_SPEC = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d*))?([diouxXeEfgGcs%])")
_PREFIX = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class StrNum(str):
    """Input text (fields, getline, -v, ARGV): compared as a number when it looks like one."""


UNSET = StrNum("")


class _Next(Exception):
    pass


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


class _Loop(Exception):
    def __init__(self, brk: bool) -> None:
        super().__init__()
        self.brk = brk


class AwkError(Exception):
    """A run-time error: awk prints it and exits 2."""


def number(value: Any) -> float:
    if isinstance(value, float):
        return value
    m = _PREFIX.match(value)
    return float(m.group()) if m else 0.0


def is_numeric(value: Any) -> bool:
    return isinstance(value, float) or (isinstance(value, StrNum) and (value is UNSET or bool(_NUMERIC.match(value))))


def num_text(value: float, fmt: str) -> str:
    if value == int(value) and abs(value) < 1e30:
        return str(int(value))
    return fmt % value


class Awk:
    def __init__(self, inv: Invocation, program: dict[str, Any], variables: dict[str, Any]) -> None:
        self.inv, self.program = inv, program
        self.vars: dict[str, Any] = {"FS": " ", "OFS": " ", "ORS": "\n", "RS": "\n", "NR": 0.0, "NF": 0.0,
                                     "FNR": 0.0, "SUBSEP": "\x1c", "CONVFMT": "%.6g", "OFMT": "%.6g",
                                     "RSTART": 0.0, "RLENGTH": -1.0, "FILENAME": ""}
        self.vars.update(variables)
        self.arrays: dict[str, dict[str, Any]] = {"ENVIRON": {k: StrNum(v) for k, v in inv.env.items()}}
        self.fields: list[Any] = [UNSET]
        self.outputs: dict[str, Any] = {}
        self.readers: dict[str, Any] = {}
        self.regexes: dict[str, re.Pattern[str]] = {}
        self.ranges: dict[int, bool] = {}
        self.locals: list[dict[str, Any]] = []
        self.input: Any = None
        self.queued: dict[int, list[str]] = {}  # records of streams read whole (RS not a newline)

    # ---- values -------------------------------------------------------------------------

    def text(self, value: Any, fmt: str | None = None) -> str:
        if isinstance(value, float):
            return num_text(value, fmt or self.vars["CONVFMT"])
        return value

    def regex(self, source: str) -> re.Pattern[str]:
        if source not in self.regexes:
            try:
                self.regexes[source] = compile_posix(source, extended=True)
            except RegexError as exc:
                raise AwkError(f"bad regex '{source}': {exc}") from None
        return self.regexes[source]

    def pattern(self, node: Node) -> re.Pattern[str]:
        return self.regex(node[1] if node[0] == "regex" else self.text(self.eval(node)))

    # ---- records and fields -------------------------------------------------------------

    def set_record(self, text: str) -> None:
        self.fields = [StrNum(text), *map(StrNum, self.split(text, self.text(self.vars["FS"])))]
        self.vars["NF"] = float(len(self.fields) - 1)

    def split(self, text: str, fs: str) -> list[str]:
        if fs == " ":
            return text.split()
        if text == "":
            return []
        if len(fs) == 1 and fs != "\\":
            return text.split(fs)
        return self.regex(fs).split(text)

    def get_field(self, k: int) -> Any:
        if k < 0:
            raise AwkError(f"trying to access out of range field {k}")
        return self.fields[k] if k < len(self.fields) else UNSET

    def set_field(self, k: int, value: Any) -> None:
        if k == 0:
            self.set_record(self.text(value))
            return
        while len(self.fields) <= k:
            self.fields.append(UNSET)
        self.fields[k] = value
        self.vars["NF"] = float(len(self.fields) - 1)
        self.rebuild()

    def rebuild(self) -> None:
        ofs = self.text(self.vars["OFS"])
        self.fields[0] = StrNum(ofs.join(self.text(f, self.vars["OFMT"]) for f in self.fields[1:]))

    def read_record(self, stream: BinaryIO) -> str | None:
        """The next record: a line (RS is a newline), a paragraph (RS empty), else text up to RS's
        character (such a stream is read whole first)."""
        rs = self.text(self.vars["RS"])
        if rs == "\n":
            line = stream.readline()
            return line.decode("utf-8", "surrogateescape").removesuffix("\n") if line else None
        if rs == "":
            lines: list[str] = []
            while line := stream.readline():
                text = line.decode("utf-8", "surrogateescape").removesuffix("\n")
                if text.strip() == "" and lines:
                    break
                if text.strip():
                    lines.append(text)
            return "\n".join(lines) if lines else None
        if id(stream) not in self.queued:
            text = stream.read().decode("utf-8", "surrogateescape")
            self.queued[id(stream)] = text.removesuffix("\n").split(rs[0]) if text else []
        queue = self.queued[id(stream)]
        return queue.pop(0) if queue else None

    # ---- variables ----------------------------------------------------------------------

    def scope(self, name: str) -> dict[str, Any] | None:
        return self.locals[-1] if self.locals and name in self.locals[-1] else None

    def array(self, name: str) -> dict[str, Any]:
        local = self.scope(name)
        if local is not None:
            if not isinstance(local[name], dict):
                local[name] = {}
            return local[name]
        return self.arrays.setdefault(name, {})

    def load(self, node: Node) -> Any:
        kind = node[0]
        if kind == "var":
            local = self.scope(node[1])
            if local is not None:
                return local[node[1]]
            if node[1] == "NF":
                return self.vars["NF"]
            return self.vars.get(node[1], UNSET)
        if kind == "field":
            return self.get_field(int(number(self.eval(node[1]))))
        return self.array(node[1]).setdefault(self.subscript(node[2]), UNSET)

    def store(self, node: Node, value: Any) -> Any:
        kind = node[0]
        if kind == "var":
            local = self.scope(node[1])
            if local is not None:
                local[node[1]] = value
            else:
                self.vars[node[1]] = value
                if node[1] == "NF":
                    count = int(number(value))
                    self.fields = (self.fields + [UNSET] * count)[: count + 1]
                    self.rebuild()
        elif kind == "field":
            self.set_field(int(number(self.eval(node[1]))), value)
        else:
            self.array(node[1])[self.subscript(node[2])] = value
        return value

    def subscript(self, items: list[Node]) -> str:
        return self.text(self.vars["SUBSEP"]).join(self.text(self.eval(i)) for i in items)

    # ---- expressions --------------------------------------------------------------------

    def eval(self, node: Node) -> Any:
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "str":
            return node[1]
        if kind in ("var", "field", "index"):
            return self.load(node)
        if kind == "regex":
            return float(bool(self.regex(node[1]).search(self.text(self.fields[0]))))
        if kind == "assign":
            _, op, target, value_node = node
            value = self.eval(value_node)
            if op != "=":
                value = self.arith(op[0], number(self.load(target)), number(value))
            elif isinstance(value, StrNum) and value is not UNSET:
                value = StrNum(value)
            return self.store(target, value)
        if kind == "cond":
            return self.eval(node[2]) if self.truth(self.eval(node[1])) else self.eval(node[3])
        if kind == "or":
            return float(self.truth(self.eval(node[1])) or self.truth(self.eval(node[2])))
        if kind == "and":
            return float(self.truth(self.eval(node[1])) and self.truth(self.eval(node[2])))
        if kind == "in":
            return float(self.subscript(node[1]) in self.array(node[2]))
        if kind == "match":
            found = bool(self.pattern(node[3]).search(self.text(self.eval(node[2]))))
            return float(found != node[1])
        if kind == "compare":
            return float(self.compare(node[1], self.eval(node[2]), self.eval(node[3])))
        if kind == "concat":
            return self.text(self.eval(node[1])) + self.text(self.eval(node[2]))
        if kind == "binary":
            return self.arith(node[1], number(self.eval(node[2])), number(self.eval(node[3])))
        if kind == "not":
            return float(not self.truth(self.eval(node[1])))
        if kind == "negate":
            return -number(self.eval(node[1]))
        if kind == "plus":
            return number(self.eval(node[1]))
        if kind == "incr":
            _, op, prefix, target = node
            before = number(self.load(target))
            after = before + (1 if op == "++" else -1)
            self.store(target, after)
            return after if prefix else before
        if kind == "group":
            return self.eval(node[1][-1])
        if kind == "getline":
            return self.getline(node[1], node[2])
        if kind == "builtin":
            return self.builtin(node[1], node[2])
        if kind == "call":
            return self.call(node[1], node[2])
        raise AwkError(f"cannot evaluate {kind}")

    def truth(self, value: Any) -> bool:
        if isinstance(value, float):
            return value != 0
        if isinstance(value, StrNum) and is_numeric(value):
            return number(value) != 0
        return value != ""

    def compare(self, op: str, left: Any, right: Any) -> bool:
        if is_numeric(left) and is_numeric(right):
            a, b = number(left), number(right)
        else:
            a, b = self.text(left), self.text(right)  # type: ignore[assignment]
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]

    def arith(self, op: str, a: float, b: float) -> float:
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a / b
            if op == "%":
                return math.fmod(a, b)
            return float(a**b)
        except ZeroDivisionError:
            raise AwkError("division by zero") from None

    def call(self, name: str, args: list[Node]) -> Any:
        if name not in self.program["functions"]:
            raise AwkError(f"calling undefined function {name}")
        params, body = self.program["functions"][name]
        frame: dict[str, Any] = {}
        for k, param in enumerate(params):
            if k < len(args):
                arg = args[k]
                if arg[0] == "var" and (arg[1] in self.arrays or isinstance(self.load(arg), dict)):
                    frame[param] = self.array(arg[1])
                else:
                    frame[param] = self.eval(arg)
            else:
                frame[param] = UNSET
        self.locals.append(frame)
        try:
            self.execute(body)
        except _Return as ret:
            return ret.value
        finally:
            self.locals.pop()
        return UNSET

    def builtin(self, name: str, args: list[Node]) -> Any:
        values = lambda: [self.eval(a) for a in args]  # noqa: E731
        if name == "length":
            if args and args[0][0] == "var" and isinstance(self.arrays.get(args[0][1]), dict):
                return float(len(self.arrays[args[0][1]]))
            return float(len(self.text(self.eval(args[0]) if args else self.fields[0])))
        if name == "substr":
            v = values()
            text, start = self.text(v[0]), round(number(v[1]))
            end = len(text) + 1 if len(v) < 3 else start + round(number(v[2]))
            return text[max(start, 1) - 1 : max(end - 1, 0)]
        if name == "index":
            v = values()
            return float(self.text(v[0]).find(self.text(v[1])) + 1)
        if name == "split":
            text = self.text(self.eval(args[0]))
            target = self.array(args[1][1])
            target.clear()
            if len(args) > 2:
                fs = args[2][1] if args[2][0] == "regex" else self.text(self.eval(args[2]))
                parts = self.regex(fs).split(text) if args[2][0] == "regex" and text else self.split(text, fs)
            else:
                parts = self.split(text, self.text(self.vars["FS"]))
            target.update({str(k): StrNum(p) for k, p in enumerate(parts, 1)})
            return float(len(parts))
        if name in ("sub", "gsub"):
            return self.substitute(args, every=name == "gsub")
        if name == "match":
            m = self.pattern(args[1]).search(self.text(self.eval(args[0])))
            start, length = (float(m.start() + 1), float(len(m.group()))) if m else (0.0, -1.0)
            self.vars["RSTART"], self.vars["RLENGTH"] = start, length
            return start
        if name == "sprintf":
            v = values()
            return self.sprintf(self.text(v[0]), v[1:])
        if name in ("tolower", "toupper"):
            text = self.text(self.eval(args[0]))
            return text.lower() if name == "tolower" else text.upper()
        if name == "int":
            return float(int(number(self.eval(args[0]))))
        if name in ("sin", "cos", "exp", "log", "sqrt"):
            return float(getattr(math, name)(number(self.eval(args[0]))))
        if name == "atan2":
            v = values()
            return math.atan2(number(v[0]), number(v[1]))
        if name == "rand":
            return random.random()
        if name == "srand":
            random.seed(number(self.eval(args[0])) if args else None)
            return 0.0
        if name == "system":
            self.flush()
            return float(self.inv.interp.subshell().run_source(self.text(self.eval(args[0])), dict(self.inv.fds)))
        if name == "close":
            key = self.text(self.eval(args[0]))
            for table in (self.outputs, self.readers):
                if key in table:
                    table.pop(key).close()
            return 0.0
        self.flush()  # fflush
        return 0.0

    def sprintf(self, fmt: str, values: list[Any]) -> str:
        """printf's conversions on awk values (a missing one is empty, or 0)."""
        values = list(values)

        def convert(m: re.Match[str]) -> str:
            flags, width, precision, conv = m.groups()
            if conv == "%":
                return "%"
            if width == "*":
                width = str(int(number(values.pop(0)))) if values else ""
            if precision == "*":
                precision = str(int(number(values.pop(0)))) if values else ""
            value = values.pop(0) if values else UNSET
            spec = f"%{flags}{width or ''}{'.' + precision if precision is not None else ''}"
            if conv in "dioxXu":
                return (spec + {"i": "d", "u": "d"}.get(conv, conv)) % int(number(value))
            if conv in "eEfgG":
                return (spec + conv) % number(value)
            if conv == "c":
                char = chr(int(value)) if isinstance(value, float) else self.text(value)[:1]
                return (spec + "s") % char
            return (spec + "s") % self.text(value)

        return _SPEC.sub(convert, fmt)

    def substitute(self, args: list[Node], every: bool) -> float:
        regex = self.pattern(args[0])
        replacement = self.text(self.eval(args[1]))
        target = args[2] if len(args) > 2 else ("field", ("num", 0.0))
        text = self.text(self.load(target))
        count = 0

        def repl(m: re.Match[str]) -> str:
            nonlocal count
            count += 1
            return re.sub(r"\\(\\)|\\&|&", lambda r: "\\" if r.group(1) else "&" if r.group() == "\\&" else m.group(),
                          replacement)

        result = regex.sub(repl, text, count=0 if every else 1)
        if count:
            self.store(target, result)
        return float(count)

    def getline(self, target: Node | None, source: Node | None) -> float:
        if source is None:
            record = self.next_record()
            if record is None:
                return 0.0
            if target is None:
                self.set_record(record)
            self.vars["NR"] = number(self.vars["NR"]) + 1
            self.vars["FNR"] = number(self.vars["FNR"]) + 1
        else:
            key = self.text(self.eval(source[1]))
            if key not in self.readers:
                if source[0] == "cmd":
                    out = io.BytesIO()
                    self.inv.interp.subshell().run_source(key, {**self.inv.fds, 1: out})
                    out.seek(0)
                    self.readers[key] = out
                else:
                    try:
                        self.readers[key] = self.inv.stdin if key == "-" else self.inv.fs.open_read(key, self.inv.cwd)
                    except DeviceOSError:
                        return -1.0
            record = self.read_record(self.readers[key])
            if record is None:
                return 0.0
            if target is None:
                self.set_record(record)
                self.vars["NR"] = number(self.vars["NR"]) + 1
        if target is not None:
            self.store(target, StrNum(record))
        return 1.0

    # ---- statements ---------------------------------------------------------------------

    def execute(self, node: Node) -> None:
        kind = node[0]
        if kind == "block":
            for statement in node[1]:
                self.execute(statement)
        elif kind == "expr":
            self.eval(node[1])
        elif kind in ("print", "printf"):
            self.print(node)
        elif kind == "if":
            if self.truth(self.eval(node[1])):
                self.execute(node[2])
            elif node[3] is not None:
                self.execute(node[3])
        elif kind == "while":
            while self.truth(self.eval(node[1])) and self.loop_body(node[2]):
                pass
        elif kind == "do":
            while self.loop_body(node[1]) and self.truth(self.eval(node[2])):
                pass
        elif kind == "for":
            _, init, condition, step, body = node
            if init:
                self.execute(init)
            while (condition is None or self.truth(self.eval(condition))) and self.loop_body(body):
                if step:
                    self.execute(step)
        elif kind == "forin":
            for key in list(self.array(node[2])):
                self.store(("var", node[1]), StrNum(key))
                if not self.loop_body(node[3]):
                    break
        elif kind in ("break", "continue"):
            raise _Loop(kind == "break")
        elif kind in ("next", "nextfile"):
            raise _Next
        elif kind == "exit":
            raise _Exit(int(number(self.eval(node[1]))) if node[1] else 0)
        elif kind == "return":
            raise _Return(self.eval(node[1]) if node[1] else UNSET)
        elif kind == "delete":
            array = self.array(node[1])
            if node[2] is None:
                array.clear()
            else:
                array.pop(self.subscript(node[2]), None)

    def loop_body(self, body: Node) -> bool:
        """Run a loop's body once: False when `break` ends the loop."""
        try:
            self.execute(body)
        except _Loop as ctl:
            return not ctl.brk
        return True

    def print(self, node: Node) -> None:
        _, args, redirect = node
        if node[0] == "print":
            items = [self.eval(a) for a in args] or [self.fields[0]]
            ofmt = self.vars["OFMT"]
            text = self.text(self.vars["OFS"]).join(self.text(v, ofmt) for v in items) + self.text(self.vars["ORS"])
        else:
            if not args:
                raise AwkError("printf: no format")
            values = [self.eval(a) for a in args]
            text = self.sprintf(self.text(values[0]), values[1:])
        data = text.encode("utf-8", "surrogateescape")
        if redirect is None:
            self.inv.out(data)
            return
        op, target_node = redirect
        target = self.text(self.eval(target_node))
        if target not in self.outputs:
            if op == "|":
                self.outputs[target] = _PipeTo(self.inv, target)
            elif target in ("/dev/stdout", "-"):
                self.outputs[target] = _Stdout(self.inv)
            elif target == "/dev/stderr":
                self.outputs[target] = _Stdout(self.inv, 2)
            else:
                self.outputs[target] = self.inv.fs.open_write(target, self.inv.cwd, append=op == ">>")
        self.outputs[target].write(data)

    def flush(self) -> None:
        for name in [k for k, v in self.outputs.items() if isinstance(v, _PipeTo)]:
            self.outputs.pop(name).close()

    # ---- the program --------------------------------------------------------------------

    def next_record(self) -> str | None:
        while True:
            if self.input is None:
                if not self.operands:
                    return None
                name = self.operands.pop(0)
                if re.fullmatch(r"[A-Za-z_]\w*=.*", name, re.S):
                    var, _, value = name.partition("=")
                    self.vars[var] = StrNum(unescape(value))
                    continue
                self.vars["FILENAME"], self.vars["FNR"] = name, 0.0
                try:
                    self.input = self.inv.stdin if name == "-" else self.inv.fs.open_read(name, self.inv.cwd)
                except DeviceOSError as exc:
                    raise AwkError(f"can't open file {name}: {exc.message}") from None
            record = self.read_record(self.input)
            if record is not None:
                return record
            if self.input is not self.inv.stdin:
                self.input.close()
            self.input = None

    def run(self, operands: list[str]) -> int:
        has_main = bool(self.program["rules"] or self.program["end"])
        self.operands = operands if any(not re.fullmatch(r"[A-Za-z_]\w*=.*", o, re.S) for o in operands) \
            else [*operands, "-"]
        status = 0
        try:
            try:
                for block in self.program["begin"]:
                    self.execute(block)
                while has_main and (record := self.next_record()) is not None:
                    self.vars["NR"] = number(self.vars["NR"]) + 1
                    self.vars["FNR"] = number(self.vars["FNR"]) + 1
                    self.set_record(record)
                    with contextlib.suppress(_Next):
                        self.rules()
            except _Exit as stop:
                status = stop.status
            try:
                for block in self.program["end"]:
                    self.execute(block)
            except _Exit as stop:
                status = stop.status
        finally:
            for out in self.outputs.values():
                out.close()
        return status

    def rules(self) -> None:
        for k, (pattern, second, action) in enumerate(self.program["rules"]):
            if second is not None:
                active = self.ranges.get(k, False)
                if not active and not self.truth(self.eval(pattern)):
                    continue
                self.ranges[k] = not self.truth(self.eval(second))
            elif pattern is not None and not self.truth(self.eval(pattern)):
                continue
            if action is None:
                record = self.text(self.fields[0]) + self.text(self.vars["ORS"])
                self.inv.out(record.encode("utf-8", "surrogateescape"))
            else:
                self.execute(action)


class _Stdout:
    def __init__(self, inv: Invocation, fd: int = 1) -> None:
        self.inv, self.fd = inv, fd

    def write(self, data: bytes) -> None:
        self.inv.fds[self.fd].write(data)

    def close(self) -> None:
        pass


class _PipeTo:
    """`print | "cmd"`: what is printed becomes the command's stdin when it is closed."""

    def __init__(self, inv: Invocation, command: str) -> None:
        self.inv, self.command, self.chunks = inv, command, []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.inv.interp.subshell().run_source(self.command, {**self.inv.fds, 0: io.BytesIO(b"".join(self.chunks))})


def cmd_awk(inv: Invocation) -> int:
    opts = getopt(inv.args, "", "Ffv", permute=False)
    variables: dict[str, Any] = {}
    if "F" in opts.values:
        fs = opts.last("F") or " "
        variables["FS"] = "\t" if fs == "t" else unescape(fs)
    for assignment in opts.values.get("v", []):
        name, _, value = assignment.partition("=")
        variables[name] = StrNum(unescape(value))
    operands = list(opts.operands)
    if "f" in opts.values:
        try:
            source = "\n".join(inv.fs.open_read(p, inv.cwd).read().decode() for p in opts.values["f"])
        except DeviceOSError as exc:
            return inv.fail(exc.path, exc) + 1
    elif operands:
        source = operands.pop(0)
    else:
        inv.err("no program")
        return 2
    try:
        program = parse(source)
    except AwkSyntaxError as exc:
        inv.err(str(exc))
        return 2
    try:
        return Awk(inv, program, variables).run(operands)
    except AwkError as exc:
        inv.err(str(exc))
        return 2
