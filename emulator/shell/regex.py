"""POSIX regular expressions (basic and extended, as grep, sed, awk and expr take them) translated to
Python's `re`, so that a basic expression is never read as a Python one: in a BRE `+ ? | { } ( )`
are ordinary characters and `\\( \\) \\{m,n\\}` the operators; `*` first is literal; `^`/`$` anchor
only at the ends; inside brackets a backslash is literal and `[:alpha:]` names a class. Like Android's
regcomp, `\\+ \\? \\|` in a BRE are the plain characters; `\\< \\> \\b \\w \\s` are accepted.
Python matches the leftmost alternative rather than POSIX's leftmost longest (`ab|abcd` finds ab).
"""

from __future__ import annotations

import re

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "print": "\\x20-\\x7e", "graph": "\\x21-\\x7e", "cntrl": "\\x00-\\x1f\\x7f", "xdigit": "0-9A-Fa-f",
    "word": "a-zA-Z0-9_",
}
_GNU_ESCAPES = {"<": r"\b(?=\w)", ">": r"\b(?<=\w)", "b": r"\b", "B": r"\B", "w": r"\w", "W": r"\W",
                "s": r"\s", "S": r"\S", "`": r"\A", "'": r"\Z", "n": "\n", "t": "\t"}


class RegexError(Exception):
    """A malformed expression, with regcomp's kind of words (`Unmatched [`)."""


def _bracket(pattern: str, i: int) -> tuple[str, int]:
    """The Python class for the bracket expression opening at pattern[i] ('['), and the index after it."""
    j = i + 1
    negate = pattern[j : j + 1] == "^"
    j += negate
    items: list[str] = []
    first = True
    while True:
        if j >= len(pattern):
            raise RegexError("Unmatched [ or [^")
        c = pattern[j]
        if c == "]" and not first:
            break
        first = False
        if pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            name = pattern[j + 2 : end] if end > 0 else ""
            if name not in _CLASSES:
                raise RegexError("Invalid character class name")
            items.append(_CLASSES[name])
            j = end + 2
            continue
        if pattern.startswith(("[=", "[."), j):
            close = pattern[j + 1] + "]"
            end = pattern.find(close, j + 2)
            if end < 0:
                raise RegexError("Unmatched [ or [^")
            items.append(re.escape(pattern[j + 2 : end]))
            j = end + 2
            continue
        if j + 2 < len(pattern) and pattern[j + 1] == "-" and pattern[j + 2] != "]":
            items.append(f"{re.escape(c)}-{re.escape(pattern[j + 2])}")
            j += 3
            continue
        items.append(re.escape(c))
        j += 1
    return "[" + ("^" if negate else "") + "".join(items) + "]", j + 1


def translate(pattern: str, extended: bool, multiline: bool = False) -> str:
    """The Python regular expression that matches what the POSIX one does. `$` is the very end (Python's
    `$` also matches before a final newline, which a sed pattern space can have), or with `multiline`
    the end of each line."""
    out: list[str] = []
    i, depth = 0, 0
    at_start = True  # where `*` is literal and, in a BRE, `^` an anchor
    while i < len(pattern):
        c = pattern[i]
        starting = False
        if c == "[":
            text, i = _bracket(pattern, i)
            out.append(text)
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise RegexError("Trailing backslash")
            nxt = pattern[i + 1]
            i += 2
            if not extended and nxt in "(){}":
                if nxt == "(":
                    depth += 1
                    starting = True
                elif nxt == ")":
                    depth -= 1
                    if depth < 0:
                        raise RegexError("Unmatched ) or \\)")
                elif nxt == "{":
                    end = pattern.find("\\}", i)
                    if end < 0:
                        raise RegexError("Unmatched \\{")
                    out.append(_interval(pattern[i:end]))
                    i = end + 2
                    continue
                out.append(nxt)
            elif nxt.isdigit() and nxt != "0":
                out.append("\\" + nxt)
            elif nxt in _GNU_ESCAPES:
                out.append(_GNU_ESCAPES[nxt])
            else:
                out.append(re.escape(nxt))
        elif c == "*" and at_start:
            out.append(r"\*")
            i += 1
        elif c == "^" and (extended or at_start):
            out.append("^")
            i += 1
            starting = True
        elif c == "$" and (extended or _bre_end(pattern, i + 1)):
            out.append("$" if multiline else r"\Z")
            i += 1
        elif extended and c in "()|+?{":
            i += 1
            if c == "(":
                depth += 1
                starting = True
                out.append("(")
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise RegexError("Unmatched ) or \\)")
                out.append(")")
            elif c == "|":
                starting = True
                out.append("|")
            elif c == "{":
                end = pattern.find("}", i)
                if end < 0 or not re.fullmatch(r"\d*(,\d*)?", pattern[i:end]):
                    raise RegexError("Invalid preceding regular expression" if end >= 0 else "Unmatched {")
                out.append(_interval(pattern[i:end]))
                i = end + 1
            else:
                out.append(c)
        elif c in ".*":
            out.append(c)
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
        at_start = starting
    if depth:
        raise RegexError("Unmatched ( or \\(")
    return "".join(out)


def _bre_end(pattern: str, i: int) -> bool:
    """In a BRE, `$` anchors only at the end of the expression or of a group."""
    return i == len(pattern) or pattern.startswith("\\)", i)


def _interval(body: str) -> str:
    if not re.fullmatch(r"\d+(,\d*)?|,\d+", body):
        raise RegexError("Invalid content of \\{\\}")
    return "{" + body + "}"


def compile_posix(pattern: str, *, extended: bool, ignore_case: bool = False,
                  multiline: bool = False) -> re.Pattern[str]:
    """Compile a POSIX BRE or ERE; RegexError for one regcomp would refuse."""
    flags = (re.IGNORECASE if ignore_case else 0) | (re.MULTILINE if multiline else 0) | re.DOTALL
    try:
        return re.compile(translate(pattern, extended, multiline), flags)
    except re.error as exc:
        raise RegexError(str(exc)) from None
