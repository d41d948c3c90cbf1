"""Word expansion for the device shell: parameters, command substitution, arithmetic, field
splitting and pathname patterns, in POSIX order. Patterns match against the sandbox only.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Protocol

from emulator.sandbox import DeviceOSError, Sandbox
from emulator.shell import arith
from emulator.shell.lex import Arith, CommandSub, Lit, Param, Word

IFS_WHITESPACE = " \t\n"
_GLOB_CHARS = re.compile(r"[*?\[]")


class ExpansionError(Exception):
    """`${x:?message}`, bad arithmetic and the like: the command is not run (status 1, or 2 for syntax)."""


class Variables(Protocol):
    """What expansion needs from the interpreter."""

    cwd: str
    fs: Sandbox
    options: set[str]  # nounset and noglob matter here

    def lookup(self, name: str) -> str | None: ...
    def positional_args(self) -> list[str]: ...
    def assign(self, name: str, value: str) -> None: ...
    def command_output(self, source: str) -> str: ...


Chunk = tuple[str, bool]  # (text, quoted)


class _Fields:
    """Collects fields as lists of chunks; unquoted expansion results split on IFS whitespace."""

    def __init__(self) -> None:
        self.fields: list[list[Chunk]] = []
        self.current: list[Chunk] | None = None

    def add(self, text: str, quoted: bool) -> None:
        if self.current is None:
            self.current = []
            self.fields.append(self.current)
        self.current.append((text, quoted))

    def split_add(self, text: str, ifs: str) -> None:
        """Add an unquoted expansion result: IFS characters end fields, as after `$x` or `$(cmd)`."""
        if not text:
            return
        if text[0] in ifs:
            self.current = None
        for k, piece in enumerate(ifs_split(text, ifs)):
            if k:
                self.current = None
            self.add(piece, False)
        if text[-1] in ifs:
            self.current = None


def ifs_split(text: str, ifs: str, maxsplit: int = 0) -> list[str]:
    """Split as POSIX field splitting does: runs of IFS white space separate fields and are trimmed at
    the ends; every other IFS character ends one field (so `a,,b` with IFS=, has an empty field)."""
    if not ifs:
        return [text] if text else []
    white = "".join(c for c in ifs if c in IFS_WHITESPACE)
    other = "".join(c for c in ifs if c not in IFS_WHITESPACE)
    text = text.strip(white)
    if not text:
        return []
    spaces = f"[{re.escape(white)}]*" if white else ""
    separators = [f"{spaces}[{re.escape(other)}]{spaces}"] if other else []
    separators += [f"[{re.escape(white)}]+"] if white else []
    return re.split("|".join(separators), text, maxsplit=maxsplit)


class Expander:
    def __init__(self, vars: Variables) -> None:
        self.vars = vars

    @property
    def ifs(self) -> str:
        value = self.vars.lookup("IFS")
        return IFS_WHITESPACE if value is None else value

    # ---- public -------------------------------------------------------------------------

    def fields(self, words: list[Word], *, glob: bool = True) -> list[str]:
        """Expand command words into argument strings (splitting and pathname expansion applied)."""
        out: list[str] = []
        for word in words:
            collected = _Fields()
            self._expand_into(word, collected, split=True)
            for field in collected.fields:
                globbing = glob and "noglob" not in self.vars.options
                out.extend(self._glob(field) if globbing else ["".join(t for t, _ in field)])
        return out

    def string(self, word: Word) -> str:
        """Expand without splitting or pathname expansion (assignments, redirection targets, case)."""
        collected = _Fields()
        self._expand_into(word, collected, split=False)
        return " ".join("".join(t for t, _ in field) for field in collected.fields)

    def pattern(self, word: Word) -> str:
        """Expand to an fnmatch pattern in which quoted characters match only themselves."""
        collected = _Fields()
        self._expand_into(word, collected, split=False)
        return "".join(_as_pattern(field) for field in collected.fields)

    # ---- parts --------------------------------------------------------------------------

    def _expand_into(self, word: Word, out: _Fields, *, split: bool) -> None:
        for k, part in enumerate(word.parts):
            if isinstance(part, Lit):
                tilde = k == 0 and not part.quoted and (part.text == "~" or part.text.startswith("~/"))
                out.add((self.vars.lookup("HOME") or "/") + part.text[1:] if tilde else part.text, part.quoted)
            elif isinstance(part, Param) and part.name == "@" and not part.op and not part.length:
                self._at(part.quoted, out, split)
            else:
                value = self._value(part)
                if part.quoted or not split:  # an unquoted $pat stays a pattern in [[ ]], case and ${x%$pat}
                    out.add(value, part.quoted)
                else:
                    out.split_add(value, self.ifs)

    def _at(self, quoted: bool, out: _Fields, split: bool) -> None:
        """"$@" gives one field per argument; unquoted $@ splits like $*."""
        args = self.vars.positional_args()
        if not quoted or not split:
            joined = " ".join(args)
            if split:
                out.split_add(joined, self.ifs)
            else:
                out.add(joined, True)
            return
        for k, arg in enumerate(args):
            if k:
                out.current = None
            out.add(arg, True)

    def _value(self, part: Param | CommandSub | Arith) -> str:
        if isinstance(part, CommandSub):
            return self.vars.command_output(part.source).rstrip("\n")
        if isinstance(part, Arith):
            return str(arithmetic(self.string(part.expr), self.vars))
        return self._param(part)

    def _param(self, part: Param) -> str:
        value = self.vars.lookup(part.name)
        if part.length:
            return str(len(value or ""))
        op = part.op
        if value is None and not op and "nounset" in self.vars.options and part.name not in "@*":
            raise ExpansionError(f"{part.name}: parameter not set")
        if not op:
            return value or ""
        unset = value is None or (op.startswith(":") and value == "")
        arg = (lambda: self.string(part.arg)) if part.arg else (lambda: "")
        if op in (":-", "-"):
            return arg() if unset else value or ""
        if op in (":=", "="):
            if unset:
                value = arg()
                self.vars.assign(part.name, value)
            return value or ""
        if op in (":+", "+"):
            return "" if unset else arg()
        if op in (":?", "?"):
            if unset:
                raise ExpansionError(f"{part.name}: {arg() or 'parameter null or not set'}")
            return value or ""
        if op == ":":
            return self._substring(value or "", part)
        pattern = self.pattern(part.arg) if part.arg else ""
        if op.startswith("/"):
            replacement = self.string(part.second) if part.second else ""
            return _replace(value or "", pattern, replacement, op)
        return _remove_affix(value or "", pattern, op)

    def _substring(self, value: str, part: Param) -> str:
        """`${x:offset}`, `${x:offset:length}`: arithmetic operands; a negative offset counts from the end."""
        offset = arithmetic(self.string(part.arg), self.vars) if part.arg else 0
        start = max(len(value) + offset, 0) if offset < 0 else offset
        if part.second is None:
            return value[start:]
        length = arithmetic(self.string(part.second), self.vars)
        return value[start:] if length < 0 else value[start : start + length]

    # ---- pathname expansion ----------------------------------------------------------------

    def _glob(self, field: list[Chunk]) -> list[str]:
        text = "".join(t for t, _ in field)
        if not any(not quoted and _GLOB_CHARS.search(t) for t, quoted in field):
            return [text]
        matches = glob_paths(self.vars.fs, _as_pattern(field), self.vars.cwd)
        return matches or [text]


def _as_pattern(field: list[Chunk]) -> str:
    return "".join(_escape(t) if quoted else t for t, quoted in field)


def _escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _remove_affix(value: str, pattern: str, op: str) -> str:
    """`${x#p}`, `${x##p}` (prefix) and `${x%p}`, `${x%%p}` (suffix), shortest or longest match."""
    cuts = range(len(value) + 1)
    if op in ("#", "##"):
        order = reversed(cuts) if op == "##" else cuts
        for k in order:
            if fnmatch.fnmatchcase(value[:k], pattern):
                return value[k:]
    else:
        order = cuts if op == "%%" else reversed(cuts)
        for k in order:
            if fnmatch.fnmatchcase(value[k:], pattern):
                return value[:k]
    return value


def _replace(value: str, pattern: str, replacement: str, op: str) -> str:
    """`${x/p/r}` (first match), `${x//p/r}` (every match), `${x/#p/r}` (at the start), `${x/%p/r}` (at
    the end); each match is the longest at its place, as in mksh."""
    if not pattern:
        return value
    regex = fnmatch.translate(pattern).removesuffix(r"\Z")
    if op == "/#":
        regex = "^" + regex
    elif op == "/%":
        regex += r"\Z"
    try:
        compiled = re.compile(regex)
    except re.error:
        return value
    return compiled.sub(lambda _m: replacement, value, count=0 if op == "//" else 1)


def glob_paths(fs: Sandbox, pattern: str, cwd: str) -> list[str]:
    """Sandbox paths matching `pattern`, spelled as the pattern was (relative stays relative)."""
    absolute = pattern.startswith("/")
    candidates = ["/" if absolute else ""]
    for component in [c for c in pattern.split("/") if c]:
        found: list[str] = []
        for base in candidates:
            if not _GLOB_CHARS.search(component):
                found.append(base + component if base.endswith("/") or not base else f"{base}/{component}")
                continue
            try:
                names = fs.listdir(base or ".", cwd)
            except DeviceOSError:
                continue
            hidden_ok = component.startswith(".")
            for name in names:
                if (hidden_ok or not name.startswith(".")) and fnmatch.fnmatchcase(name, component):
                    found.append(base + name if base.endswith("/") or not base else f"{base}/{name}")
        candidates = found
    return sorted(path for path in candidates if fs.exists(path, cwd))


def arithmetic(text: str, vars: Variables) -> int:
    """`$((...))` with mksh's rules (emulator.shell.arith); errors read `EXPR: why`."""
    try:
        return arith.evaluate(text, vars)
    except arith.ArithError as exc:
        raise ExpansionError(f"{text.strip()}: {exc}") from None
