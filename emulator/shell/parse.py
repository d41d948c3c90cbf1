"""Parser for the device shell: tokens in, a tree of lists, and-or lists, pipelines, simple and
compound commands out. Pure functions with no file system or device access, so the grammar is
testable on its own and the interpreter (emulator/shell/interp.py) only ever walks a finished tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.shell.lex import REDIRECT_OPS, Lit, ParseError, Token, Word, is_name, tokenize

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
    background: bool = False  # ended by `&`


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
class Conditional:
    """`[[ ... ]]`: operands stay words (expanded without splitting or globbing), operators are strings."""

    items: list[Word | str]
    line: int


@dataclass
class ArithCommand:
    """`(( expression ))`: status 0 when the value is not zero."""

    expr: Word
    line: int


@dataclass
class Redirected:
    """A compound command with redirections applied around it."""

    node: Node
    redirects: list[Redirect]


Node = (Simple | Pipeline | AndOr | Sequence | If | For | Loop | Group | Case | FunctionDef | Conditional
        | ArithCommand | Redirected)


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
                items[-1].background = self.next().value == "&"
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
                    "case": self.case_clause, "{": self.brace_group, "[[": self.conditional}
        word = self.tok.word.plain if self.tok.kind == "word" and self.tok.word else None
        if word in compound:
            node = compound[word]()
        elif self.tok.kind == "arith" and self.tok.word is not None:
            node = ArithCommand(self.tok.word, self.next().line)
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

    def conditional(self) -> Conditional:
        line = self.next().line
        items: list[Word | str] = []
        while not (self.tok.kind == "word" and self.tok.word is not None and self.tok.word.plain == "]]"):
            tok = self.next()
            if tok.kind == "eof":
                self.i -= 1
                raise self.unexpected()
            if tok.kind == "word" and tok.word is not None:
                items.append(tok.word if tok.word.plain not in ("!", "(", ")") else tok.value)
            elif tok.value != "\n":
                items.append(tok.value)  # && || ( ) < > and friends are the expression's operators
        self.i += 1
        return Conditional(items, line)

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
