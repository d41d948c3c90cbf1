"""Tokenizer and parser for the emulated device's shell: a POSIX sh subset, text in, AST out.

Pure functions with no file system or device access, so the grammar is testable on its own
and the interpreter (emulator/shell.py) only ever walks a finished tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---- words ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """Literal text; quoted text is never split into fields or matched as a pattern."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Param:
    """`$name`, `${name}` or `${name<op><arg>}`; `length` is `${#name}`."""

    name: str
    quoted: bool
    op: str = ""
    arg: Word | None = None
    length: bool = False


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


# ---- tree ----------------------------------------------------------------------------------


@dataclass
class Redirect:
    fd: int
    op: str  # < > >> >| <> >& <&
    target: Word


@dataclass
class Simple:
    assigns: list[tuple[str, Word]]
    words: list[Word]
    redirects: list[Redirect]
    line: int


@dataclass
class Pipeline:
    commands: list[Node]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]] = field(default_factory=list)  # ("&&" | "||", pipeline)


@dataclass
class Sequence:
    items: list[AndOr]


@dataclass
class If:
    branches: list[tuple[Sequence, Sequence]]  # (condition, body) for if and each elif
    orelse: Sequence | None


@dataclass
class For:
    var: str
    items: list[Word] | None  # None: "$@"
    body: Sequence


@dataclass
class Loop:
    condition: Sequence
    body: Sequence
    until: bool


@dataclass
class Group:
    body: Sequence
    subshell: bool  # ( ... ) keeps cwd and variable changes to itself


@dataclass
class Case:
    subject: Word
    arms: list[tuple[list[Word], Sequence]]


@dataclass
class FunctionDef:
    name: str
    body: Node


@dataclass
class Redirected:
    """A compound command with redirections applied around it."""

    node: Node
    redirects: list[Redirect]


Node = Simple | Pipeline | AndOr | Sequence | If | For | Loop | Group | Case | FunctionDef | Redirected


class ParseError(Exception):
    """A syntax error; the message reads like mksh's (`syntax error: 'fi' unexpected`)."""

    def __init__(self, message: str, line: int, incomplete: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.incomplete = incomplete  # the text ended early: more lines may complete it


# ---- tokens --------------------------------------------------------------------------------

OPERATORS = ("<<-", "<<", "&&", "||", ";;", ">>", ">&", "<&", "<>", ">|", ";", "|", "&", "(", ")", "<", ">")
REDIRECT_OPS = frozenset({"<", ">", ">>", ">|", "<>", ">&", "<&", "<<", "<<-"})
_META = " \t\n;&|()<>"
_SPECIAL_PARAMS = "?#@*$!-0123456789"
_PARAM_OPS = (":-", ":=", ":+", ":?", "-", "=", "+", "?", "##", "#", "%%", "%")
RESERVED = frozenset({"if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until",
                      "case", "esac", "{", "}", "!"})


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "op", "io" (a redirection's fd number) or "eof"
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
        arg = _WordReader(rest[len(op) :], 0, self.line)
        if quoted:  # inside "${x:-...}" the word is read as double-quoted text
            arg.read_double_quoted(to_end=True)
            return Param(name, quoted, op, Word(tuple(arg.parts)))
        return Param(name, quoted, op, arg.read(stop=""))

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
                start = i
                tokens[index], i = _heredoc(src, i, tokens[index], strip_tabs)
                line += src[start:i].count("\n")
            heredocs.clear()
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


# ---- parser --------------------------------------------------------------------------------

_CLOSERS = frozenset({"then", "else", "elif", "fi", "do", "done", "esac", "}", ";;"})


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i = tokens, 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def unexpected(self) -> ParseError:
        tok = self.tok
        what = "end of file" if tok.kind == "eof" else "newline" if tok.value == "\n" else tok.value
        quoted = what if tok.kind == "eof" else f"'{what}'"
        return ParseError(f"syntax error: {quoted} unexpected", tok.line, incomplete=tok.kind == "eof")

    def at_reserved(self, *names: str) -> bool:
        return self.tok.kind == "word" and self.tok.word is not None and self.tok.word.plain in names

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def expect_reserved(self, name: str) -> None:
        if not self.at_reserved(name):
            raise self.unexpected()
        self.i += 1

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise self.unexpected()
        self.i += 1

    def linebreak(self) -> None:
        while self.at_op("\n"):
            self.i += 1

    def at_list_end(self) -> bool:
        return self.tok.kind == "eof" or self.at_op(")", ";;") or self.at_reserved(*_CLOSERS)

    def sequence(self) -> Sequence:
        items: list[AndOr] = []
        self.linebreak()
        while not self.at_list_end():
            items.append(self.and_or())
            if self.at_op(";", "&", "\n"):
                self.i += 1
                self.linebreak()
            elif not self.at_list_end():
                raise self.unexpected()
        return Sequence(items)

    def body(self) -> Sequence:
        """A compound command's list, which must hold at least one command."""
        seq = self.sequence()
        if not seq.items:
            raise self.unexpected()
        return seq

    def and_or(self) -> AndOr:
        node = AndOr(self.pipeline())
        while self.at_op("&&", "||"):
            op = self.next().value
            self.linebreak()
            node.rest.append((op, self.pipeline()))
        return node

    def pipeline(self) -> Pipeline:
        negate = False
        if self.at_reserved("!"):
            self.i += 1
            negate = True
        commands = [self.command()]
        while self.at_op("|"):
            self.i += 1
            self.linebreak()
            commands.append(self.command())
        return Pipeline(commands, negate)

    def command(self) -> Node:
        compound = {"if": self.if_clause, "for": self.for_clause, "while": self.loop, "until": self.loop,
                    "case": self.case_clause, "{": self.brace_group}
        word = self.tok.word.plain if self.tok.kind == "word" and self.tok.word else None
        if word in compound:
            node = compound[word]()
        elif self.at_op("("):
            self.i += 1
            node = Group(self.body(), subshell=True)
            self.expect_op(")")
        elif word and is_name(word) and self.tokens[self.i + 1].value == "(" and self.tokens[self.i + 2].value == ")":
            self.i += 3
            self.linebreak()
            return FunctionDef(word, self.command())
        else:
            return self.simple()
        redirects = self.redirects()
        return Redirected(node, redirects) if redirects else node

    def redirects(self) -> list[Redirect]:
        found = []
        while (redirect := self.redirect()) is not None:
            found.append(redirect)
        return found

    def redirect(self) -> Redirect | None:
        fd = None
        if self.tok.kind == "io":
            fd = int(self.next().value)
        if not (self.tok.kind == "op" and self.tok.value in REDIRECT_OPS):
            if fd is not None:
                raise self.unexpected()
            return None
        op = self.next().value
        if self.tok.kind != "word" or self.tok.word is None:
            raise self.unexpected()
        target = self.next().word
        assert target is not None
        return Redirect(fd if fd is not None else (0 if op.startswith("<") else 1), op, target)

    def simple(self) -> Simple:
        line = self.tok.line
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirects: list[Redirect] = []
        while True:
            redirect = self.redirect()
            if redirect is not None:
                redirects.append(redirect)
                continue
            if self.tok.kind != "word" or self.tok.word is None:
                break
            word = self.next().word
            assert word is not None
            assign = None if words else _assignment(word)
            if assign:
                assigns.append(assign)
            else:
                words.append(word)
        if not (assigns or words or redirects):
            raise self.unexpected()
        return Simple(assigns, words, redirects, line)

    def if_clause(self) -> If:
        self.expect_reserved("if")
        branches = [(self.body(), self.then())]
        orelse = None
        while self.at_reserved("elif"):
            self.i += 1
            branches.append((self.body(), self.then()))
        if self.at_reserved("else"):
            self.i += 1
            orelse = self.body()
        self.expect_reserved("fi")
        return If(branches, orelse)

    def then(self) -> Sequence:
        self.expect_reserved("then")
        return self.body()

    def do_group(self) -> Sequence:
        self.linebreak()
        self.expect_reserved("do")
        body = self.body()
        self.expect_reserved("done")
        return body

    def for_clause(self) -> For:
        self.expect_reserved("for")
        var = self.next()
        if var.kind != "word" or not var.word or not is_name(var.word.plain or ""):
            self.i -= 1
            raise self.unexpected()
        items = None
        self.linebreak()
        if self.at_reserved("in"):
            self.i += 1
            items = []
            while self.tok.kind == "word" and self.tok.word is not None:
                items.append(self.next().word)
        if self.at_op(";", "\n"):
            self.i += 1
        return For(var.value, items, self.do_group())

    def loop(self) -> Loop:
        until = self.next().value == "until"
        condition = self.body()
        return Loop(condition, self.do_group(), until)

    def brace_group(self) -> Group:
        self.expect_reserved("{")
        body = self.body()
        self.expect_reserved("}")
        return Group(body, subshell=False)

    def case_clause(self) -> Case:
        self.expect_reserved("case")
        subject = self.next().word
        if subject is None:
            self.i -= 1
            raise self.unexpected()
        self.linebreak()
        self.expect_reserved("in")
        self.linebreak()
        arms: list[tuple[list[Word], Sequence]] = []
        while not self.at_reserved("esac"):
            if self.at_op("("):
                self.i += 1
            patterns = [self.pattern()]
            while self.at_op("|"):
                self.i += 1
                patterns.append(self.pattern())
            self.expect_op(")")
            arms.append((patterns, self.sequence()))
            if self.at_op(";;"):
                self.i += 1
                self.linebreak()
            elif not self.at_reserved("esac"):
                raise self.unexpected()
        self.i += 1
        return Case(subject, arms)

    def pattern(self) -> Word:
        if self.tok.kind != "word" or self.tok.word is None:
            raise self.unexpected()
        word = self.next().word
        assert word is not None
        return word


def _assignment(word: Word) -> tuple[str, Word] | None:
    """`NAME=value` as (name, value word), or None when the word is not an assignment."""
    first = word.parts[0] if word.parts else None
    if not isinstance(first, Lit) or first.quoted or "=" not in first.text:
        return None
    name, _, rest = first.text.partition("=")
    if not is_name(name):
        return None
    value_parts = ((Lit(rest, False),) if rest else ()) + word.parts[1:]
    return name, Word(value_parts)


def parse(src: str) -> Sequence:
    """Parse a whole script or command line; raises ParseError with mksh-like wording."""
    parser = _Parser(tokenize(src))
    seq = parser.sequence()
    if parser.tok.kind != "eof":
        raise parser.unexpected()
    return seq
