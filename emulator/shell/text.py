"""The device shell's text commands: echo, printf, grep, sort, uniq, tr, cut, xargs, seq, basename,
dirname. Bytes in, bytes out; files are read through the Sandbox."""

from __future__ import annotations

import io
import re

from emulator.shell.builtins import Invocation, UsageError, getopt, read_operands, split_flags, take_option

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}


def unescape(text: str) -> tuple[str, bool]:
    r"""Backslash escapes of echo and printf; True as second value when `\c` stops output."""
    out: list[str] = []
    k = 0
    while k < len(text):
        c = text[k]
        if c != "\\" or k + 1 == len(text):
            out.append(c)
            k += 1
            continue
        nxt = text[k + 1]
        if nxt == "c":
            return "".join(out), True
        if nxt == "0" or nxt in "1234567":
            digits = re.match(r"0?[0-7]{0,3}", text[k + 1 :]).group(0)  # type: ignore[union-attr]
            out.append(chr(int(digits.lstrip("0") or "0", 8) & 0xFF))
            k += 1 + len(digits)
            continue
        out.append(_ESCAPES.get(nxt, "\\" + nxt))
        k += 2
    return "".join(out), False


def cmd_echo(inv: Invocation) -> int:
    """mksh's echo: -n, -e, -E; backslash escapes are interpreted by default."""
    args, newline, escapes = inv.args, True, True
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for flag in args[0][1:]:
            if flag == "n":
                newline = False
            else:
                escapes = flag == "e"
        args = args[1:]
    text = " ".join(args)
    stopped = False
    if escapes:
        text, stopped = unescape(text)
    inv.out(text + ("\n" if newline and not stopped else ""))
    return 0


_SPEC = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?([diouxXeEfgGcsb%])")


def cmd_printf(inv: Invocation) -> int:
    if not inv.args:
        inv.err("needs 1 argument")
        return 1
    fmt, args = inv.args[0], list(inv.args[1:])
    invalid: list[str] = []
    while True:
        consumed_before = len(args)
        text, stop = _format_once(fmt, args, invalid)
        inv.out(text)
        if stop or not args or len(args) == consumed_before:
            break
    for arg in invalid:
        inv.err(f"invalid number '{arg}'")
    return 1 if invalid else 0


def _format_once(fmt: str, args: list[str], invalid: list[str]) -> tuple[str, bool]:
    """One pass of the format, consuming from `args` and noting non-numbers in `invalid`.
    (text, True when \\c stopped all output)."""
    out: list[str] = []
    pos = 0
    for m in _SPEC.finditer(fmt):
        literal, stop = unescape(fmt[pos : m.start()])
        out.append(literal)
        if stop:
            return "".join(out), True
        pos = m.end()
        flags, width, precision, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        width = args.pop(0) if width == "*" and args else width
        precision = args.pop(0) if precision == "*" and args else precision
        arg = args.pop(0) if args else ""
        width, precision = _capped(width), _capped(precision)  # a client cannot make us allocate gigabytes
        spec = f"%{flags}{width or ''}{'.' + precision if precision is not None else ''}"
        if conv in "diouxX":
            number, ok = _to_int(arg)
            invalid.extend([] if ok else [arg])
            out.append((spec + {"i": "d", "u": "d"}.get(conv, conv)) % number)
        elif conv in "eEfgG":
            try:
                value = float(arg or 0)
            except ValueError:
                invalid.append(arg)
                value = 0.0
            out.append((spec + conv) % value)
        elif conv == "c":
            out.append((spec + "s") % arg[:1])
        else:
            out.append((spec + "s") % (unescape(arg)[0] if conv == "b" else arg))
    tail, stop = unescape(fmt[pos:])
    out.append(tail)
    return "".join(out), stop


def _capped(number: str | None) -> str | None:
    """printf widths and precisions, limited to 1 MiB (and '' for a non-number from `*`)."""
    if number is None:
        return None
    return str(min(int(number), 1 << 20)) if number.isdigit() else ""


def _to_int(text: str) -> tuple[int, bool]:
    if not text:
        return 0, True
    if text[0] in "'\"":
        return (ord(text[1]) if len(text) > 1 else 0), True
    try:
        return int(text, 0), True
    except ValueError:
        return 0, False


def cmd_basename(inv: Invocation) -> int:
    if not inv.args:
        inv.err("needs 1 argument")
        return 1
    path = inv.args[0].rstrip("/") or "/"
    base = path.rpartition("/")[2] or "/"
    if len(inv.args) > 1 and base != inv.args[1] and base.endswith(inv.args[1]):
        base = base[: -len(inv.args[1])]
    inv.out(base + "\n")
    return 0


def cmd_dirname(inv: Invocation) -> int:
    if not inv.args:
        inv.err("needs 1 argument")
        return 1
    path = inv.args[0].rstrip("/")
    head = path.rpartition("/")[0].rstrip("/") if "/" in path else "."
    inv.out((head or "/") + "\n")
    return 0


def cmd_seq(inv: Invocation) -> int:
    try:
        numbers = [int(a) for a in inv.args]
    except ValueError:
        inv.err("not integer")
        return 1
    if not 1 <= len(numbers) <= 3:
        inv.err("needs 1 to 3 arguments")
        return 1
    first, step, last = (1, 1, numbers[0]) if len(numbers) == 1 else (
        (numbers[0], 1, numbers[1]) if len(numbers) == 2 else tuple(numbers))
    if not step:
        return 0
    values = range(first, last + (1 if step > 0 else -1), step)
    for start in range(0, len(values), 10_000):  # in slices: a long sequence streams and can be cancelled
        if inv.interp.cancel.is_set():
            return inv.interp.cancel.status()
        inv.out("".join(f"{n}\n" for n in values[start : start + 10_000]))
    return 0


def cmd_yes(inv: Invocation) -> int:
    """Repeats its line until its reader goes (a pipe's SIGPIPE) or it is killed."""
    block = ((" ".join(inv.args) if inv.args else "y") + "\n").encode("utf-8", "surrogateescape")
    block *= max(1, 4096 // len(block))
    while not inv.interp.cancel.is_set():
        inv.out(block)
    return inv.interp.cancel.status()


def _text_lines(inv: Invocation, operands: list[str]) -> tuple[list[str], int]:
    """All lines of the operands (or stdin), and 1 if some operand could not be read."""
    lines, status = [], 0
    for _name, content in read_operands(inv, operands):
        if content is None:
            status = 1
            continue
        lines += content.decode("utf-8", "surrogateescape").splitlines()
    return lines, status


def cmd_sort(inv: Invocation) -> int:
    """sort [-n] [-r] [-u] [-t SEP] [-k FIELD]: whole lines, or from field FIELD on."""
    args = list(inv.args)
    separator, field = take_option(args, "t"), take_option(args, "k")
    flags, operands = split_flags(args, "nru")
    lines, status = _text_lines(inv, operands)
    start = int(field.split(",")[0].split(".")[0]) - 1 if field and field[0].isdigit() else 0

    def key(line: str) -> tuple[float, str]:
        text = " ".join(line.split(separator)[start:]) if separator else " ".join(line.split()[start:])
        match = re.match(r"\s*(-?\d+(?:\.\d*)?)", text)
        return (float(match.group(1)) if match else 0.0, text) if "n" in flags else (0.0, text)

    ordered = sorted(lines, key=key, reverse="r" in flags)
    if "u" in flags:
        ordered = list(dict.fromkeys(ordered))
    inv.out("".join(f"{line}\n" for line in ordered))
    return status


def cmd_uniq(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "cdu")
    lines, status = _text_lines(inv, operands[:1])
    runs: list[list[str | int]] = []
    for line in lines:
        if runs and runs[-1][0] == line:
            runs[-1][1] = int(runs[-1][1]) + 1
        else:
            runs.append([line, 1])
    for line, count in runs:
        if ("d" in flags and count == 1) or ("u" in flags and count != 1):
            continue
        inv.out(f"{count:>7} {line}\n" if "c" in flags else f"{line}\n")
    return status


def _tr_set(spec: str) -> str:
    """tr's SET syntax: ranges a-z, escapes, and the [:alpha:] style classes."""
    classes = {"[:upper:]": "A-Z", "[:lower:]": "a-z", "[:digit:]": "0-9", "[:alpha:]": "a-zA-Z",
               "[:alnum:]": "a-zA-Z0-9", "[:space:]": " \\t\\n\\r\\f\\v"}
    for name, value in classes.items():
        spec = spec.replace(name, value)
    spec = unescape(spec)[0]
    out, k = [], 0
    while k < len(spec):
        if k + 2 < len(spec) and spec[k + 1] == "-":
            out += [chr(c) for c in range(ord(spec[k]), ord(spec[k + 2]) + 1)]
            k += 3
        else:
            out.append(spec[k])
            k += 1
    return "".join(out)


def cmd_tr(inv: Invocation) -> int:
    """tr [-d] [-s] SET1 [SET2]: translate, delete (-d) or squeeze runs (-s) of characters."""
    flags, operands = split_flags(inv.args, "dsc")
    if not operands or len(operands) > 2 or ("d" in flags and "s" not in flags and len(operands) != 1):
        raise UsageError("needs 1 or 2 arguments")
    text = inv.stdin.read().decode("utf-8", "surrogateescape")
    source = _tr_set(operands[0])
    target = _tr_set(operands[1]) if len(operands) > 1 else ""
    if "d" in flags:
        text = text.translate({ord(c): None for c in source})
    elif target:
        target = (target + target[-1:] * len(source))[: len(source)]
        text = text.translate(str.maketrans(source, target))
    if "s" in flags:
        squeeze = set(target if target else source)
        text = re.sub("|".join(f"{re.escape(c)}{re.escape(c)}+" for c in squeeze) or "(?!)",
                      lambda m: m.group()[0], text)
    inv.out(text)
    return 0


def _ranges(spec: str) -> list[tuple[int, int]]:
    """cut's LIST: 1,3-4,7- as 0-based [start, end) ranges."""
    ranges = []
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        if not (first or last) or not (first or "1").isdigit() or not (last or "1").isdigit():
            raise UsageError(f"bad list '{spec}'")
        start = int(first or 1) - 1
        ranges.append((start, int(last) if last else (1 << 30) if dash else start + 1))
    return ranges


def cmd_cut(inv: Invocation) -> int:
    args = list(inv.args)
    delimiter, fields, chars = take_option(args, "d") or "\t", take_option(args, "f"), take_option(args, "c")
    if (fields is None) == (chars is None):
        raise UsageError("needs -f or -c")
    lines, status = _text_lines(inv, args)
    for line in lines:
        if chars is not None:
            inv.out("".join(line[a:b] for a, b in _ranges(chars)) + "\n")
            continue
        parts = line.split(delimiter)
        chosen = [f for a, b in _ranges(fields or "") for f in parts[a:b]]
        inv.out((delimiter.join(chosen) if len(parts) > 1 else line) + "\n")
    return status


def cmd_xargs(inv: Invocation) -> int:
    """xargs [-0] [-n N] [-I STR] [command...]: runs the command (echo by default) with the words read
    from stdin (NUL-separated with -0); -I runs it once per line with STR replaced by it."""
    opts = getopt(inv.args, "0rt", "nIsLd", permute=False)
    data = inv.stdin.read().decode("utf-8", "surrogateescape")
    command = opts.operands or ["echo"]
    replace = opts.last("I")
    if replace is not None:
        items = [line for line in data.split("\n") if line.strip()]
        batches = [[a.replace(replace, item) for a in command] for item in items]
    else:
        words = [w for w in data.split("\0") if w] if "0" in opts.flags else data.split()
        per_call = opts.number("n", 0) or len(words) or 1
        groups = [words[k : k + per_call] for k in range(0, len(words), per_call)]
        if not groups and "r" not in opts.flags:
            groups = [[]]
        batches = [[*command, *group] for group in groups]
    status = 0
    for argv in batches:
        code = inv.interp.dispatch(argv, inv.env, {**inv.fds, 0: io.BytesIO()})
        if code == 255:
            return 124
        status = status or (123 if 0 < code < 126 else code)
    return status
