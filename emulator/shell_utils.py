"""The device shell's text, system-information and process commands (echo, printf, grep, getprop,
uname, sleep, test, ps, kill, ...)."""

from __future__ import annotations

import io
import re
import time

from emulator.shell_builtins import (
    Invocation,
    UsageError,
    builtin,
    read_operands,
    split_flags,
    system_image,
    take_option,
)
from emulator.shell_cond import ConditionError, evaluate
from emulator.shell_elf import uname_machine
from emulator.shell_procs import CANCELLED, table_for

# ---- text and system information ----------------------------------------------------------

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


@builtin("echo")
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


@builtin("printf")
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


def _to_int(text: str) -> tuple[int, bool]:
    if not text:
        return 0, True
    if text[0] in "'\"":
        return (ord(text[1]) if len(text) > 1 else 0), True
    try:
        return int(text, 0), True
    except ValueError:
        return 0, False


@builtin("env")
def cmd_env(inv: Invocation) -> int:
    args, env = list(inv.args), dict(inv.env)
    while args:
        if args[0] == "-i":
            env = {}
        elif args[0] == "-u" and len(args) > 1:
            env.pop(args[1], None)
            args = args[1:]
        elif "=" in args[0] and not args[0].startswith("="):
            name, _, value = args[0].partition("=")
            env[name] = value
        else:
            break
        args = args[1:]
    if args:
        return inv.interp.dispatch(args, env, inv.fds)
    inv.out("".join(f"{k}={v}\n" for k, v in env.items()))
    return 0


@builtin("getprop")
def cmd_getprop(inv: Invocation) -> int:
    props: dict[str, str] = inv.interp.device.props
    if not inv.args:
        inv.out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())))
        return 0
    default = inv.args[1] if len(inv.args) > 1 else ""
    inv.out(props.get(inv.args[0], default) + "\n")
    return 0


@builtin("id")
def cmd_id(inv: Invocation) -> int:
    flags, _ = split_flags(inv.args, "ugnr")
    if "u" in flags or "g" in flags:
        inv.out("shell\n" if "n" in flags else "2000\n")
        return 0
    inv.out("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
            "1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats),"
            "3009(readproc),3011(uhid) context=u:r:shell:s0\n")
    return 0


@builtin("uname")
def cmd_uname(inv: Invocation) -> int:
    flags, _ = split_flags(inv.args, "asnrvmpio")
    props = inv.interp.device.props
    fields = {
        "s": "Linux",
        "n": "localhost",
        "r": props.get("ro.kernel.version", "5.10.0-android13-edgeloop"),
        "v": "#1 SMP PREEMPT",
        "m": uname_machine(props),
    }
    chosen = "snrvm" if "a" in flags else "".join(f for f in "snrvm" if f in flags) or "s"
    inv.out(" ".join(fields[f] for f in chosen) + "\n")
    return 0


@builtin("sleep")
def cmd_sleep(inv: Invocation) -> int:
    """Sleeps on the cancel event, so a client hanging up ends it at once."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    for arg in inv.args or ["?"]:
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if not m:
            inv.err(f"bad time '{arg}'" if inv.args else "needs 1 argument")
            return 1
        total += float(m.group(1)) * units[m.group(2) or "s"]
    return CANCELLED if inv.interp.cancel.wait(total) else 0


@builtin("basename")
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


@builtin("dirname")
def cmd_dirname(inv: Invocation) -> int:
    if not inv.args:
        inv.err("needs 1 argument")
        return 1
    path = inv.args[0].rstrip("/")
    head = path.rpartition("/")[0].rstrip("/") if "/" in path else "."
    inv.out((head or "/") + "\n")
    return 0


@builtin("seq")
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
    inv.out("".join(f"{n}\n" for n in range(first, last + (1 if step > 0 else -1), step)) if step else "")
    return 0


@builtin("grep")
def cmd_grep(inv: Invocation) -> int:
    args, patterns = list(inv.args), []
    while "-e" in args:
        k = args.index("-e")
        if k + 1 >= len(args):
            raise UsageError("option requires an argument -- e")
        patterns.append(args.pop(k + 1))
        args.pop(k)
    flags, operands = split_flags(args, "qvcinlEFwshx")
    if not patterns:
        if not operands:
            raise UsageError("no pattern")
        patterns.append(operands.pop(0))
    sources = [re.escape(p) if "F" in flags else p for p in patterns]
    if "w" in flags:
        sources = [rf"\b(?:{s})\b" for s in sources]
    if "x" in flags:
        sources = [rf"^(?:{s})$" for s in sources]
    regex = re.compile("|".join(f"(?:{s})" for s in sources), re.IGNORECASE if "i" in flags else 0)
    found = False
    results = read_operands(inv, operands)
    for name, content in results:
        if content is None:
            continue
        lines = content.decode("utf-8", "replace").splitlines()
        hits = [(n, line) for n, line in enumerate(lines, 1) if bool(regex.search(line)) != ("v" in flags)]
        found = found or bool(hits)
        if "q" in flags:
            continue
        prefix = f"{name}:" if len(results) > 1 and "h" not in flags else ""
        if "l" in flags:
            inv.out(f"{name}\n" if hits else "")
        elif "c" in flags:
            inv.out(f"{prefix}{len(hits)}\n")
        else:
            inv.out("".join(f"{prefix}{f'{n}:' if 'n' in flags else ''}{line}\n" for n, line in hits))
    if any(content is None for _, content in results):
        return 2
    return 0 if found else 1


@builtin("test", "[")
def cmd_test(inv: Invocation) -> int:
    args = list(inv.args)
    if inv.name == "[":
        if not args or args[-1] != "]":
            inv.err("missing ]")
            return 2
        args = args[:-1]
    try:
        return 0 if evaluate(args, inv.fs, inv.cwd, system_image()) else 1
    except ConditionError as exc:
        inv.err(str(exc))
        return 2



# ---- processes -----------------------------------------------------------------------------


@builtin("ps")
def cmd_ps(inv: Invocation) -> int:
    """Sessions and system programs; -f (or -o args) shows whole command lines."""
    flags, _ = split_flags([a for a in inv.args if a not in ("-o", "args", "ARGS")], "Aefw")
    full = "f" in flags or bool({"args", "ARGS"} & set(inv.args))
    inv.out(f"{'USER':<10} {'PID':>5} {'PPID':>5} {'CMD' if full else 'NAME'}\n")
    for process in table_for(inv.interp.device).processes():
        name = process.cmdline if full else process.cmdline.split(" ", 1)[0].rpartition("/")[2]
        inv.out(f"{'shell':<10} {process.pid:>5} {process.ppid:>5} {name}\n")
    return 0


def _signal_args(args: list[str]) -> list[str]:
    """Drop `-9`, `-TERM`, `-s SIG`: every signal stops the session (there is one way to stop)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-s":
            skip = True
        elif not re.fullmatch(r"-(\d+|[A-Z]+)", arg):
            kept.append(arg)
    return kept


@builtin("kill")
def cmd_kill(inv: Invocation) -> int:
    status = 0
    for arg in _signal_args(inv.args):
        if not arg.isdigit() or not table_for(inv.interp.device).kill(int(arg)):
            inv.err(f"{arg}: No such process")
            status = 1
    return status


@builtin("pkill")
def cmd_pkill(inv: Invocation) -> int:
    """pkill [-f] PATTERN: -f matches whole command lines; never the session running pkill itself."""
    flags, operands = split_flags(_signal_args(inv.args), "fx")
    if len(operands) != 1:
        inv.err("needs 1 argument")
        return 2
    pattern = re.compile(operands[0])
    table = table_for(inv.interp.device)
    hits = [p for p in table.processes() if p.session is not inv.interp.process.session and (
        pattern.search(p.cmdline if "f" in flags else p.cmdline.split(" ", 1)[0].rpartition("/")[2]))]
    for process in hits:
        table.kill(process.pid)
    return 0 if hits else 1


# ---- more text tools -----------------------------------------------------------------------


def _text_lines(inv: Invocation, operands: list[str]) -> tuple[list[str], int]:
    """All lines of the operands (or stdin), and 1 if some operand could not be read."""
    lines, status = [], 0
    for _name, content in read_operands(inv, operands):
        if content is None:
            status = 1
            continue
        lines += content.decode("utf-8", "surrogateescape").splitlines()
    return lines, status


@builtin("sort")
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


@builtin("uniq")
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


@builtin("tr")
def cmd_tr(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "ds")
    if len(operands) != (1 if "d" in flags else 2):
        raise UsageError("needs 1 argument with -d, else 2")
    text = inv.stdin.read().decode("utf-8", "surrogateescape")
    source = _tr_set(operands[0])
    if "d" in flags:
        inv.out(text.translate({ord(c): None for c in source}))
        return 0
    target = _tr_set(operands[1])
    target = (target + target[-1:] * len(source))[: len(source)]
    inv.out(text.translate(str.maketrans(source, target)))
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


@builtin("cut")
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


@builtin("xargs")
def cmd_xargs(inv: Invocation) -> int:
    """xargs [-n N] [command...]: runs the command (echo by default) with words read from stdin."""
    args = list(inv.args)
    per_call = None
    if args[:1] == ["-n"] and len(args) > 1 and args[1].isdigit():
        per_call, args = int(args[1]), args[2:]
    words = inv.stdin.read().decode("utf-8", "surrogateescape").split()
    command = args or ["echo"]
    batches = [words[k : k + per_call] for k in range(0, len(words), per_call)] if per_call else [words]
    status = 0
    for batch in batches or [[]]:
        code = inv.interp.dispatch([*command, *batch], inv.env, {**inv.fds, 0: io.BytesIO()})
        status = status or (123 if 0 < code < 126 else code)
    return status


@builtin("date")
def cmd_date(inv: Invocation) -> int:
    """date [-u] [+FORMAT]: strftime formats plus %s (epoch seconds) and %N (nanoseconds)."""
    now = time.time_ns()
    utc = "-u" in inv.args
    formats = [a[1:] for a in inv.args if a.startswith("+")]
    fmt = formats[0] if formats else "%a %b %e %H:%M:%S %Z %Y"
    fmt = fmt.replace("%s", str(now // 10**9)).replace("%N", f"{now % 10**9:09d}")
    moment = time.gmtime(now / 1e9) if utc else time.localtime(now / 1e9)
    inv.out(time.strftime(fmt, moment) + "\n")
    return 0
