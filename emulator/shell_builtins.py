"""The device shell's command table and the commands that work on the shell itself or on text.

File commands live in emulator.shell_files. Every command is one function taking an Invocation and
returning its exit status; messages follow toybox's `name: what: why` wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from emulator.programs import SYSTEM_PROGRAMS
from emulator.sandbox import DeviceOSError, Sandbox
from emulator.shell_elf import uname_machine
from emulator.shell_procs import table_for

if TYPE_CHECKING:
    from emulator.shell import Interp


class ShellExit(Exception):
    """`exit N`, `set -e` failures and cancellation: unwinds to the enclosing shell process."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ReturnFrom(ShellExit):
    """`return N` from a function or a sourced file."""


class LoopControl(Exception):
    """`break N` / `continue N`."""

    status = 0

    def __init__(self, brk: bool, levels: int) -> None:
        super().__init__(levels)
        self.brk, self.levels = brk, levels


class UsageError(Exception):
    """Bad options: printed as `name: message`, status 1."""


@dataclass
class Invocation:
    argv: list[str]
    env: dict[str, str]
    fds: dict[int, BinaryIO]
    interp: Interp

    @property
    def name(self) -> str:
        return self.argv[0].rpartition("/")[2]

    @property
    def args(self) -> list[str]:
        return self.argv[1:]

    @property
    def fs(self) -> Sandbox:
        return self.interp.fs

    @property
    def cwd(self) -> str:
        return self.interp.state.cwd

    @property
    def stdin(self) -> BinaryIO:
        return self.fds[0]

    def out(self, data: str | bytes) -> None:
        self.fds[1].write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)

    def err(self, message: str) -> None:
        self.fds[2].write(f"{self.name}: {message}\n".encode("utf-8", "surrogateescape"))

    def fail(self, operand: str, exc: DeviceOSError) -> int:
        self.err(f"{operand}: {exc.message}")
        return 1


@dataclass(frozen=True)
class Command:
    fn: Callable[[Invocation], int]
    special: bool  # changes the shell itself: prefix assignments persist, no /system/bin file


BUILTINS: dict[str, Command] = {}
APPLETS: set[str] = set()  # commands that also exist as /system/bin/<name> (toybox applets and sh)


def builtin(*names: str, special: bool = False) -> Callable[[Callable[[Invocation], int]], Callable[[Invocation], int]]:
    def register(fn: Callable[[Invocation], int]) -> Callable[[Invocation], int]:
        for name in names:
            BUILTINS[name] = Command(fn, special)
            if not special:
                APPLETS.add(name)
        return fn

    return register


def split_flags(args: list[str], known: str) -> tuple[set[str], list[str]]:
    """Single-letter flags (combinable, `--` ends them) and the operands after them."""
    flags: set[str] = set()
    k = 0
    while k < len(args) and args[k].startswith("-") and len(args[k]) > 1:
        if args[k] == "--":
            k += 1
            break
        for c in args[k][1:]:
            if c not in known:
                raise UsageError(f"Unknown option '{c}'")
            flags.add(c)
        k += 1
    return flags, args[k:]


def read_line(stream: BinaryIO) -> bytes | None:
    """One line from a stream, byte by byte so nothing after it is consumed (stdin may be a socket)."""
    line = bytearray()
    while (c := stream.read(1)) and c != b"\n":
        line += c
    return bytes(line) if line or c else None


def read_operands(inv: Invocation, operands: list[str]) -> list[tuple[str, bytes | None]]:
    """(name, content or None after printing an error) for each operand; no operand or '-' is stdin."""
    results: list[tuple[str, bytes | None]] = []
    for operand in operands or ["-"]:
        if operand == "-":
            results.append((operand, inv.stdin.read()))
            continue
        try:
            with inv.fs.open_read(operand, inv.cwd) as f:
                results.append((operand, f.read()))
        except DeviceOSError as exc:
            inv.fail(operand, exc)
            results.append((operand, None))
    return results


# ---- the shell itself ----------------------------------------------------------------------


@builtin(":", "true")
def cmd_true(inv: Invocation) -> int:
    return 0


@builtin("false")
def cmd_false(inv: Invocation) -> int:
    return 1


@builtin("cd", special=True)
def cmd_cd(inv: Invocation) -> int:
    target = inv.args[-1] if inv.args and inv.args[-1] != "-P" else inv.env.get("HOME", "/")
    if target == "-":
        target = inv.interp.state.vars.get("OLDPWD", inv.cwd)
    path = inv.fs.norm(target, inv.cwd)
    if not inv.fs.is_dir(path):
        why = "Not a directory" if inv.fs.exists(path) else "No such file or directory"
        inv.interp.error(inv.fds, f"cd: {target}: {why}")
        return 1
    state = inv.interp.state
    state.vars["OLDPWD"], state.vars["PWD"] = state.cwd, path
    state.cwd = path
    return 0


@builtin("pwd")
def cmd_pwd(inv: Invocation) -> int:
    inv.out(inv.cwd + "\n")
    return 0


def _assign_words(inv: Invocation, mark: Callable[[str], None]) -> int:
    """export/readonly/local: NAME or NAME=value operands."""
    state = inv.interp.state
    for word in inv.args:
        if word.startswith("-"):
            continue
        name, eq, value = word.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            inv.interp.error(inv.fds, f"{inv.name}: {name}: is not an identifier")
            return 1
        if eq:
            state.vars[name] = value
        mark(name)
    return 0


@builtin("export", special=True)
def cmd_export(inv: Invocation) -> int:
    if not [a for a in inv.args if not a.startswith("-")]:
        for name in sorted(inv.interp.state.exported & inv.interp.state.vars.keys()):
            inv.out(f"export {name}={_quote(inv.interp.state.vars[name])}\n")
        return 0
    return _assign_words(inv, inv.interp.state.exported.add)


@builtin("readonly", "local", "typeset", special=True)
def cmd_local(inv: Invocation) -> int:
    return _assign_words(inv, lambda name: None)


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[\w@%+=:,./-]+", value) else "'" + value.replace("'", "'\\''") + "'"


@builtin("unset", special=True)
def cmd_unset(inv: Invocation) -> int:
    state = inv.interp.state
    for name in inv.args:
        if name in ("-v", "-f"):
            continue
        state.vars.pop(name, None)
        state.exported.discard(name)
        state.functions.pop(name, None)
    return 0


@builtin("set", special=True)
def cmd_set(inv: Invocation) -> int:
    state = inv.interp.state
    args = inv.args
    if not args:
        for name, value in sorted(state.vars.items()):
            inv.out(f"{name}={_quote(value)}\n")
        return 0
    while args and args[0][:1] in "-+" and args[0] not in ("-", "--"):
        for flag in args[0][1:]:
            if flag == "e":
                state.errexit = args[0][0] == "-"
            elif flag not in "uxvfo":
                inv.interp.error(inv.fds, f"set: -{flag}: unknown option")
                return 2
        args = args[1:]
    if args and args[0] in ("-", "--"):
        state.args = args[1:]
    elif args:
        state.args = list(args)
    return 0


@builtin("shift", special=True)
def cmd_shift(inv: Invocation) -> int:
    count = int(inv.args[0]) if inv.args and inv.args[0].isdigit() else 1
    state = inv.interp.state
    if count > len(state.args):
        inv.interp.error(inv.fds, f"shift: {count}: bad number")
        return 1
    state.args = state.args[count:]
    return 0


def _status_arg(inv: Invocation, default: int) -> int:
    if not inv.args:
        return default
    if not re.fullmatch(r"-?\d+", inv.args[0]):
        inv.interp.error(inv.fds, f"{inv.name}: {inv.args[0]}: bad number")
        return 2
    return int(inv.args[0]) & 0xFF


@builtin("exit", special=True)
def cmd_exit(inv: Invocation) -> int:
    raise ShellExit(_status_arg(inv, inv.interp.state.status))


@builtin("return", special=True)
def cmd_return(inv: Invocation) -> int:
    raise ReturnFrom(_status_arg(inv, inv.interp.state.status))


@builtin("break", "continue", special=True)
def cmd_break(inv: Invocation) -> int:
    levels = int(inv.args[0]) if inv.args and inv.args[0].isdigit() else 1
    raise LoopControl(inv.name == "break", max(levels, 1))


@builtin("eval", special=True)
def cmd_eval(inv: Invocation) -> int:
    from emulator.shell_parse import ParseError, parse

    try:
        tree = parse(" ".join(inv.args))
    except ParseError as exc:
        inv.interp.error(inv.fds, str(exc))
        return 2
    return inv.interp.run_sequence(tree, inv.fds)


@builtin(".", "source", special=True)
def cmd_source(inv: Invocation) -> int:
    from emulator.shell_parse import ParseError, parse

    if not inv.args:
        inv.interp.error(inv.fds, f"{inv.name}: missing argument")
        return 2
    try:
        with inv.fs.open_read(inv.args[0], inv.cwd) as f:
            tree = parse(f.read().decode("utf-8", "replace"))
    except DeviceOSError as exc:
        inv.interp.error(inv.fds, f"{inv.args[0]}: {exc.message}")
        return 1
    except ParseError as exc:
        inv.interp.error(inv.fds, f"{inv.args[0]}[{exc.line}]: {exc}")
        return 2
    state = inv.interp.state
    saved = state.args
    if len(inv.args) > 1:
        state.args = inv.args[1:]
    try:
        return inv.interp.run_sequence(tree, inv.fds)
    except ReturnFrom as ret:
        return ret.status
    finally:
        state.args = saved


@builtin("exec", special=True)
def cmd_exec(inv: Invocation) -> int:
    """`exec cmd args`: the command replaces this shell, so the shell ends with its status."""
    raise ShellExit(inv.interp.dispatch(inv.args, inv.env, inv.fds) if inv.args else 0)


@builtin("command", special=True)
def cmd_command(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "vVp")
    if not flags & {"v", "V"}:
        return inv.interp.dispatch(operands, inv.env, inv.fds) if operands else 0
    return _which(inv, operands, show_builtins=True)


@builtin("which")
def cmd_which(inv: Invocation) -> int:
    _flags, operands = split_flags(inv.args, "a")
    return _which(inv, operands, show_builtins=False)


def _which(inv: Invocation, names: list[str], *, show_builtins: bool) -> int:
    status = 0
    for name in names:
        found = inv.interp.resolve(name)
        if found is None or (found[0] in ("function", "builtin") and "/" not in found[1] and not show_builtins):
            status = 1
            continue
        inv.out(found[1] + "\n")
    return status


@builtin("read", special=True)
def cmd_read(inv: Invocation) -> int:
    _flags, names = split_flags(inv.args, "rs")
    line = read_line(inv.stdin)
    if line is None:
        return 1
    text = line.decode("utf-8", "replace")
    names = names or ["REPLY"]
    values = text.split(None, len(names) - 1) if len(names) > 1 else [text.strip()]
    for k, name in enumerate(names):
        inv.interp.assign(name, values[k] if k < len(values) else "")
    return 0


@builtin("wait", "trap", "umask", "ulimit", special=True)
def cmd_accept(inv: Invocation) -> int:
    """Process-control builtins with nothing to do here: no background jobs, signals or limits."""
    return 0


@builtin("sh", "mksh")
def cmd_sh(inv: Invocation) -> int:
    args = list(inv.args)
    errexit = False
    while args and args[0].startswith("-") and args[0] not in ("-c", "-", "--"):
        errexit = errexit or "e" in args[0]
        args = args[1:]
    if args and args[0] == "-c":
        if len(args) < 2:
            inv.interp.error(inv.fds, "-c: option requires an argument")
            return 2
        name = args[2] if len(args) > 2 else inv.argv[0]
        return inv.interp.spawn(args[1], name, args[3:], inv.env, inv.fds, script=None, errexit=errexit)
    if not args or args[0] in ("-", "--"):  # commands from stdin, each run as soon as it is complete
        return inv.interp.spawn(inv.stdin, inv.argv[0], args[1:], inv.env, inv.fds, script=None, errexit=errexit)
    return inv.interp.run_script(inv.fs.norm(args[0], inv.cwd), args, inv.env, inv.fds, errexit=errexit)


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
        newline = newline and "n" not in args[0]
        escapes = "E" not in args[0] if "E" in args[0] or "e" in args[0] else escapes
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
    status = 0
    while True:
        consumed_before = len(args)
        text, stop, bad = _format_once(fmt, args)
        inv.out(text)
        status = status or bad
        if stop or not args or len(args) == consumed_before:
            return status


def _format_once(fmt: str, args: list[str]) -> tuple[str, bool, int]:
    """One pass of the format; consumes from `args`. (text, stopped by \\c, status)."""
    out: list[str] = []
    bad = 0
    pos = 0
    for m in _SPEC.finditer(fmt):
        literal, stop = unescape(fmt[pos : m.start()])
        out.append(literal)
        if stop:
            return "".join(out), True, bad
        pos = m.end()
        flags, width, precision, conv = m.groups()
        if conv == "%":
            out.append("%")
            continue
        width = args.pop(0) if width == "*" and args else width
        precision = args.pop(0) if precision == "*" and args else precision
        arg = args.pop(0) if args else ""
        spec = f"%{flags}{width or ''}{'.' + precision if precision is not None else ''}"
        if conv in "diouxXc" and conv != "c":
            number, ok = _to_int(arg)
            bad = bad or int(not ok)
            out.append((spec + {"i": "d", "u": "d"}.get(conv, conv)) % number)
        elif conv in "eEfgG":
            try:
                out.append((spec + conv) % float(arg or 0))
            except ValueError:
                bad = 1
                out.append((spec + conv) % 0.0)
        elif conv == "c":
            out.append((spec + "s") % arg[:1])
        else:
            out.append((spec + "s") % (unescape(arg)[0] if conv == "b" else arg))
    tail, stop = unescape(fmt[pos:])
    out.append(tail)
    return "".join(out), stop, bad


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
    from emulator.shell import CANCELLED

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
    flags, operands = split_flags(args, "qvcinlEFwsh")
    if not patterns:
        if not operands:
            raise UsageError("no pattern")
        patterns.append(operands.pop(0))
    sources = [re.escape(p) if "F" in flags else p for p in patterns]
    if "w" in flags:
        sources = [rf"\b(?:{s})\b" for s in sources]
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
    from emulator.shell_cond import ConditionError, evaluate

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


def system_image() -> set[str]:
    """Executables the device image provides without a sandbox file: system programs and applets."""
    return set(SYSTEM_PROGRAMS) | {f"/system/bin/{name}" for name in APPLETS}


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
