"""Tokenizer for the device shell: text in, tokens whose words keep their quoting out.

Words are kept as parts (literal text, parameters, command and arithmetic substitutions) with
their quoting, because quoting decides field splitting and pattern matching later, in
emulator.shell.expand. Pure functions, no device access.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- words ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """Literal text; quoted text is never split into fields or matched as a pattern."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Param:
    """`$name`, `${name}` or `${name<op><arg>}`; `length` is `${#name}`. `second` is the replacement
    of `${name/pattern/replacement}` (ops / // /# /%) or the length of `${name:offset:length}` (op :)."""

    name: str
    quoted: bool
    op: str = ""
    arg: Word | None = None
    length: bool = False
    second: Word | None = None


@dataclass(frozen=True)
class CommandSub:
    """`$(...)` or a backquoted command, parsed when it is expanded."""

    source: str
    quoted: bool


@dataclass(frozen=True)
class Arith:
    """`$((...))`: integer arithmetic on the text after parameter expansion."""

    expr: Word
    quoted: bool


Part = Lit | Param | CommandSub | Arith


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]

    @property
    def plain(self) -> str | None:
        """The text when the word is one unquoted literal (how reserved words and names are recognised)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lit) and not self.parts[0].quoted:
            return self.parts[0].text
        return None


class ParseError(Exception):
    """A syntax error; the message reads like mksh's (`syntax error: 'fi' unexpected`)."""

    def __init__(self, message: str, line: int, incomplete: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.incomplete = incomplete  # the text ended early: more lines may complete it


# ---- tokens --------------------------------------------------------------------------------

OPERATORS = ("<<<", "<<-", "<<", "&&", "||", ";;", ">>", ">&", "<&", "<>", ">|", ";", "|", "&", "(", ")", "<", ">")
REDIRECT_OPS = frozenset({"<", ">", ">>", ">|", "<>", ">&", "<&", "<<", "<<-", "<<<"})
_META = " \t\n;&|()<>"
_SPECIAL_PARAMS = "?#@*$!-0123456789"
_PARAM_OPS = (":-", ":=", ":+", ":?", ":", "-", "=", "+", "?", "##", "#", "%%", "%", "//", "/#", "/%", "/")


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "op", "io" (a redirection's fd number), "arith" (`(( ... ))`) or "eof"
    value: str
    line: int
    word: Word | None = None


def is_name(text: str) -> bool:
    return bool(text) and (text[0].isalpha() or text[0] == "_") and all(c.isalnum() or c == "_" for c in text)


def find_close(src: str, start: int, opener: str, closer: str) -> int:
    """Index of the `closer` matching an `opener` already consumed before `start`, skipping quotes."""
    depth, i = 1, start
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = src.find("'", i + 1)
            i = len(src) if end < 0 else end + 1
            continue
        if c == '"':
            i = _skip_double_quotes(src, i + 1)
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def top_level_index(src: str, char: str) -> int:
    """Index of the first `char` not escaped, quoted or inside a `${...}`/`$(...)`, else -1."""
    i = 0
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == char:
            return i
        if c == "'":
            end = src.find("'", i + 1)
            i = len(src) if end < 0 else end + 1
        elif c == '"':
            i = _skip_double_quotes(src, i + 1)
        elif c == "$" and src[i + 1 : i + 2] in ("{", "("):
            opener = src[i + 1]
            end = find_close(src, i + 2, opener, "}" if opener == "{" else ")")
            i = len(src) if end < 0 else end + 1
        else:
            i += 1
    return -1


def _skip_double_quotes(src: str, i: int) -> int:
    while i < len(src) and src[i] != '"':
        i += 2 if src[i] == "\\" else 1
    return i + 1


class _WordReader:
    """Reads the parts of one word from `src` starting at `pos`."""

    def __init__(self, src: str, pos: int, line: int) -> None:
        self.src, self.pos, self.line = src, pos, line
        self.parts: list[Part] = []

    def error(self, message: str) -> ParseError:
        """Unterminated quotes and substitutions: the text ended before the word did."""
        return ParseError(message, self.line, incomplete=True)

    def add(self, text: str, quoted: bool, keep_empty: bool = False) -> None:
        """Append text, merging with a neighbour of the same quoting; `keep_empty` makes '' a field."""
        if not text:
            if keep_empty:
                self.parts.append(Lit("", True))
            return
        last = self.parts[-1] if self.parts else None
        if isinstance(last, Lit) and last.quoted == quoted:
            self.parts[-1] = Lit(last.text + text, quoted)
        else:
            self.parts.append(Lit(text, quoted))

    def read(self, stop: str) -> Word:
        """Read until an unquoted character of `stop` (or the end of the text)."""
        src = self.src
        while self.pos < len(src) and src[self.pos] not in stop:
            c = src[self.pos]
            if c == "\\":
                if self.pos + 1 < len(src) and src[self.pos + 1] == "\n":
                    self.pos += 2
                    self.line += 1
                    continue
                self.add(src[self.pos + 1 : self.pos + 2], True)
                self.pos += 2
            elif c == "'":
                end = src.find("'", self.pos + 1)
                if end < 0:
                    raise self.error("no closing quote")
                text = src[self.pos + 1 : end]
                self.line += text.count("\n")
                self.add(text, True, keep_empty=True)
                self.pos = end + 1
            elif c == '"':
                self.pos += 1
                start_parts = len(self.parts)
                self.read_double_quoted()
                if len(self.parts) == start_parts:
                    self.add("", True, keep_empty=True)
            elif c == "$":
                self.read_dollar(quoted=False)
            elif c == "`":
                self.read_backquote(quoted=False)
            else:
                self.line += c == "\n"
                self.add(c, False)
                self.pos += 1
        return Word(tuple(self.parts))

    def read_double_quoted(self, to_end: bool = False, heredoc: bool = False) -> None:
        """Read up to the closing quote, or with `to_end` the rest of the text as if quoted; a here-document
        body is read the same way except that `"` is an ordinary character there."""
        src = self.src
        escapable = "$`\\\n" if heredoc else '$`"\\\n'
        while True:
            if self.pos >= len(src):
                if to_end:
                    return
                raise self.error("no closing quote")
            c = src[self.pos]
            if c == '"' and not heredoc:
                self.pos += 1
                if to_end:  # `"${u:-"a"  b}"`: quotes nested in a quoted word quote on
                    continue
                return
            if c == "\\" and self.pos + 1 < len(src) and src[self.pos + 1] in escapable:
                if src[self.pos + 1] != "\n":
                    self.add(src[self.pos + 1], True)
                self.pos += 2
            elif c == "$":
                self.read_dollar(quoted=True)
            elif c == "`":
                self.read_backquote(quoted=True)
            else:
                self.line += c == "\n"
                self.add(c, True)
                self.pos += 1

    def read_dollar(self, quoted: bool) -> None:
        src, i = self.src, self.pos + 1
        nxt = src[i : i + 1]
        if src.startswith("((", i):
            end = src.find("))", i + 2)
            if end < 0:
                raise self.error("missing ))")
            expr = _WordReader(src[i + 2 : end], 0, self.line).read(stop="")
            self.parts.append(Arith(expr, quoted))
            self.pos = end + 2
        elif nxt == "(":
            end = find_close(src, i + 1, "(", ")")
            if end < 0:
                raise self.error("missing )")
            self.parts.append(CommandSub(src[i + 1 : end], quoted))
            self.pos = end + 1
        elif nxt == "{":
            end = find_close(src, i + 1, "{", "}")
            if end < 0:
                raise self.error("missing }")
            self.parts.append(self.braced(src[i + 1 : end], quoted))
            self.pos = end + 1
        elif nxt and nxt in _SPECIAL_PARAMS:
            self.parts.append(Param(nxt, quoted))
            self.pos = i + 1
        elif nxt and (nxt.isalpha() or nxt == "_"):
            end = i
            while end < len(src) and (src[end].isalnum() or src[end] == "_"):
                end += 1
            self.parts.append(Param(src[i:end], quoted))
            self.pos = end
        else:
            self.add("$", quoted)
            self.pos = i

    def braced(self, inner: str, quoted: bool) -> Param:
        length = inner.startswith("#") and len(inner) > 1
        body = inner[1:] if length else inner
        if body[:1].isdigit():
            name_end = len(body) - len(body.lstrip("0123456789"))
        elif body[:1] and body[0] in _SPECIAL_PARAMS:
            name_end = 1
        else:
            name_end = next((k for k, ch in enumerate(body) if not (ch.isalnum() or ch == "_")), len(body))
        name, rest = body[:name_end], body[name_end:]
        if not name or (length and rest):
            raise self.error(f"${{{inner}}}: bad substitution")
        if not rest:
            return Param(name, quoted, length=length)
        op = next((o for o in _PARAM_OPS if rest.startswith(o)), None)
        if op is None:
            raise self.error(f"${{{inner}}}: bad substitution")
        text, second = rest[len(op) :], None
        if op[0] in "/:":  # two words: pattern/replacement, offset:length
            cut = top_level_index(text, "/" if op[0] == "/" else ":")
            if cut >= 0:
                text, second = text[:cut], self.param_word(text[cut + 1 :], quoted and op != ":")
        # a pattern (and `${x:N}`'s offset) is read as is, quoted or not; a default word as the whole is
        as_text = quoted and op in (":-", ":=", ":+", ":?", "-", "=", "+", "?")
        return Param(name, quoted, op, self.param_word(text, as_text), second=second)

    def param_word(self, text: str, quoted: bool) -> Word:
        """The word inside `${x...}`: read as double-quoted text when the whole is (`"${x:-a b}"`)."""
        reader = _WordReader(text, 0, self.line)
        if quoted:
            reader.read_double_quoted(to_end=True)
            return Word(tuple(reader.parts))
        return reader.read(stop="")

    def read_backquote(self, quoted: bool) -> None:
        end = self.src.find("`", self.pos + 1)
        if end < 0:
            raise self.error("no closing quote")
        self.parts.append(CommandSub(self.src[self.pos + 1 : end].replace("\\`", "`"), quoted))
        self.pos = end + 1


def _heredoc(src: str, i: int, delimiter: Token, strip_tabs: bool) -> tuple[Token, int]:
    """Read a here-document body starting at `i`; returns the delimiter token with the body as its word."""
    assert delimiter.word is not None
    end_text = "".join(p.text for p in delimiter.word.parts if isinstance(p, Lit))
    quoted = any(not isinstance(p, Lit) or p.quoted for p in delimiter.word.parts)
    lines: list[str] = []
    while i < len(src):
        end = src.find("\n", i)
        end = len(src) if end < 0 else end
        text = src[i:end].lstrip("\t") if strip_tabs else src[i:end]
        i = end + 1
        if text == end_text:
            break
        lines.append(text + "\n")
    else:
        raise ParseError(f"here document '{end_text}' unclosed", delimiter.line, incomplete=True)
    body = "".join(lines)
    if quoted:
        word = Word((Lit(body, True),))
    else:
        reader = _WordReader(body, 0, delimiter.line)
        reader.read_double_quoted(to_end=True, heredoc=True)
        word = Word(tuple(reader.parts) or (Lit("", True),))
    return Token("word", delimiter.value, delimiter.line, word), i


_STARTERS = frozenset({"do", "then", "else", "elif", "if", "while", "until", "{", "!"})


def _command_start(tokens: list[Token]) -> bool:
    """Whether a command may begin here: `((` there is arithmetic, elsewhere two subshell parentheses."""
    if not tokens:
        return True
    last = tokens[-1]
    if last.kind == "op":
        return last.value in (";", "\n", "&", "|", "&&", "||", "(", ";;")
    return last.kind == "word" and last.word is not None and last.word.plain in _STARTERS


def _arith_end(src: str, start: int) -> int:
    """Index of the `))` closing an arithmetic command whose text begins at `start`, else -1."""
    depth = 0
    for i in range(start, len(src) - 1):
        if src[i] == "(":
            depth += 1
        elif src[i] == ")":
            if depth == 0:
                return i if src[i + 1] == ")" else -1
            depth -= 1
    return -1


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    i, line = 0, 1
    heredocs: list[tuple[int, bool]] = []  # (index of the delimiter token, strip tabs) awaiting a newline
    while i < len(src):
        c = src[i]
        if c in " \t\r":
            i += 1
        elif c == "\\" and src.startswith("\\\n", i):
            i += 2
            line += 1
        elif c == "#":
            while i < len(src) and src[i] != "\n":
                i += 1
        elif c == "\n":
            tokens.append(Token("op", "\n", line))
            line += 1
            i += 1
            for index, strip_tabs in heredocs:
                if index < 0:  # `<<` with no delimiter word before the newline
                    raise ParseError("syntax error: newline unexpected", line - 1)
                start = i
                tokens[index], i = _heredoc(src, i, tokens[index], strip_tabs)
                line += src[start:i].count("\n")
            heredocs.clear()
        elif src.startswith("((", i) and _command_start(tokens) and (end := _arith_end(src, i + 2)) > 0:
            expr = _WordReader(src[i + 2 : end], 0, line).read(stop="")
            tokens.append(Token("arith", src[i + 2 : end], line, expr))  # `(( expr ))`, mksh's arithmetic command
            line += src[i:end].count("\n")
            i = end + 2
        elif c in _META:
            op = next(o for o in OPERATORS if src.startswith(o, i))
            tokens.append(Token("op", op, line))
            i += len(op)
            if op in ("<<", "<<-"):
                heredocs.append((-1, op == "<<-"))
        else:
            reader = _WordReader(src, i, line)
            word = reader.read(stop=_META)
            text = src[i : reader.pos]
            if text.isdigit() and src[reader.pos : reader.pos + 1] in ("<", ">"):
                tokens.append(Token("io", text, line))
            else:
                if heredocs and heredocs[-1][0] == -1:
                    heredocs[-1] = (len(tokens), heredocs[-1][1])
                tokens.append(Token("word", text, line, word))
            i, line = reader.pos, reader.line
    if heredocs:
        raise ParseError("here document unclosed", line, incomplete=True)
    tokens.append(Token("eof", "", line))
    return tokens
