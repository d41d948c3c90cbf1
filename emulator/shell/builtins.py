"""What every command gets (Invocation) and the commands that work on the shell itself (cd, set,
export, exit, eval, ., sh, read, trap, ...).

Other commands live in the package's text, utils, files, fileops and procs modules; the table in
emulator.shell.table names them all. Every command is one function taking an Invocation and
returning its exit status; messages follow toybox's `name: what: why` wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from emulator.sandbox import DeviceOSError, Sandbox
from emulator.shell.expand import ifs_split
from emulator.shell.parse import ParseError, parse

if TYPE_CHECKING:
    from emulator.shell.interp import Interp


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

    def each(self, operands: Iterable[str], action: Callable[[str], object]) -> int:
        """Apply `action` to every operand; one that fails (DeviceOSError) is reported and the status is 1,
        the others still run, as toybox's file commands do."""
        status = 0
        for operand in operands:
            try:
                action(operand)
            except DeviceOSError as exc:
                status = self.fail(operand, exc)
        return status


@dataclass(frozen=True)
class Command:
    """One entry of the command table (emulator.shell.table)."""

    fn: Callable[[Invocation], int]
    special: bool = False  # a POSIX special builtin: `VAR=value cmd` keeps VAR set afterwards
    applet: bool = True  # also an executable /system/bin/<name> (False for what only the shell itself has)


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


@dataclass
class Options:
    """A command line read as toybox reads it: `flags`, the values of valued options in order, operands."""

    flags: set[str]
    values: dict[str, list[str]]
    operands: list[str]

    def last(self, letter: str, default: str | None = None) -> str | None:
        return self.values[letter][-1] if self.values.get(letter) else default

    def number(self, letter: str, default: int) -> int:
        value = self.last(letter)
        if value is None:
            return default
        if not re.fullmatch(r"\d+", value):
            raise UsageError(f"-{letter} needs a number, not '{value}'")
        return int(value)


def getopt(args: list[str], flags: str, valued: str = "", *, permute: bool = True) -> Options:
    """Letters of `flags` combine (`-in`); one of `valued` takes the rest of its word or the next
    (`-A1`, `-A 1`); `--` ends the options. With `permute`, options may follow operands, as toybox allows."""
    found: set[str] = set()
    values: dict[str, list[str]] = {}
    operands: list[str] = []
    k = 0
    while k < len(args):
        arg = args[k]
        k += 1
        if arg == "--":
            operands += args[k:]
            break
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            if not permute:
                operands += args[k:]
                break
            continue
        for pos, letter in enumerate(arg[1:], start=1):
            if letter in valued:
                value = arg[pos + 1 :]
                if not value:
                    if k >= len(args):
                        raise UsageError(f"option requires an argument -- {letter}")
                    value, k = args[k], k + 1
                values.setdefault(letter, []).append(value)
                break
            if letter not in flags:
                raise UsageError(f"Unknown option '{letter}'")
            found.add(letter)
    return Options(found, values, operands)


def take_option(args: list[str], letter: str) -> str | None:
    """Remove `-X VALUE` or `-XVALUE` from `args` (before `--`) and return VALUE (the last one wins)."""
    value = None
    k = 0
    while k < len(args) and args[k] != "--":
        if args[k] == f"-{letter}":
            if k + 1 >= len(args):
                raise UsageError(f"option requires an argument -- {letter}")
            value = args[k + 1]
            del args[k : k + 2]
        elif args[k].startswith(f"-{letter}"):
            value = args[k][2:]
            del args[k]
        else:
            k += 1
    return value


def read_line(stream: BinaryIO) -> bytes | None:
    """One line without its newline, None at the end. Every command of a shell reads the same stream
    object, so what readline buffers past the line is still there for the next reader."""
    line = stream.readline()
    return line.removesuffix(b"\n") if line else None


def read_chunk(stream: BinaryIO, size: int = 1 << 16) -> bytes:
    """What is available now (up to `size`), so stdin from a live client streams through `cat` and `tee`."""
    read1 = getattr(stream, "read1", None)
    return read1(size) if read1 is not None else stream.read(size)


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


def cmd_true(inv: Invocation) -> int:
    return 0


def cmd_false(inv: Invocation) -> int:
    return 1


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


def cmd_export(inv: Invocation) -> int:
    if not [a for a in inv.args if not a.startswith("-")]:
        for name in sorted(inv.interp.state.exported & inv.interp.state.vars.keys()):
            inv.out(f"export {name}={_quote(inv.interp.state.vars[name])}\n")
        return 0
    return _assign_words(inv, inv.interp.state.exported.add)


def cmd_local(inv: Invocation) -> int:
    """local/typeset/readonly: inside a function the names get their old values back when it returns."""
    frames, variables = inv.interp.local_frames, inv.interp.state.vars
    if inv.name == "readonly" or not frames:
        return _assign_words(inv, lambda name: None)
    for word in inv.args:
        name = word.partition("=")[0]
        if not word.startswith("-") and name not in frames[-1]:
            frames[-1][name] = variables.get(name)
    return _assign_words(inv, lambda name: None)


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[\w@%+=:,./-]+", value) else "'" + value.replace("'", "'\\''") + "'"


def cmd_unset(inv: Invocation) -> int:
    state = inv.interp.state
    for name in inv.args:
        if name in ("-v", "-f"):
            continue
        state.vars.pop(name, None)
        state.exported.discard(name)
        state.functions.pop(name, None)
    return 0


OPTION_LETTERS = {"e": "errexit", "u": "nounset", "x": "xtrace", "f": "noglob", "v": "verbose"}
OPTION_NAMES = frozenset([*OPTION_LETTERS.values(), "pipefail"])


def apply_options(args: list[str], options: set[str], stop_at: tuple[str, ...] = ()) -> list[str]:
    """Take leading `-eux`, `+e`, `-o pipefail`, `+o name` off `args` into `options`; return the rest."""
    k = 0
    while k < len(args) and args[k][:1] in ("-", "+") and len(args[k]) > 1 and args[k] not in ("--", *stop_at):
        arg, switch = args[k], options.add if args[k][0] == "-" else options.discard
        if arg[1:] == "o":
            if k + 1 >= len(args) or args[k + 1] not in OPTION_NAMES:
                raise UsageError(f"{arg}: {'unknown option ' + args[k + 1] if k + 1 < len(args) else 'needs a name'}")
            switch(args[k + 1])
            k += 2
            continue
        for letter in arg[1:]:
            if letter not in OPTION_LETTERS:
                raise UsageError(f"{arg[0]}{letter}: unknown option")
            switch(OPTION_LETTERS[letter])
        k += 1
    return args[k:]


def cmd_set(inv: Invocation) -> int:
    """set [-eufvx] [-o name] [--] [args]: shell options and positional parameters."""
    state = inv.interp.state
    if not inv.args:
        for name, value in sorted(state.vars.items()):
            inv.out(f"{name}={_quote(value)}\n")
        return 0
    if inv.args in (["-o"], ["+o"]):
        inv.out("".join(f"{name:<10} {'on' if name in state.options else 'off'}\n" for name in sorted(OPTION_NAMES)))
        return 0
    try:
        args = apply_options(list(inv.args), state.options)
    except UsageError as exc:
        inv.interp.error(inv.fds, f"set: {exc}")
        return 2
    if args[:1] in (["-"], ["--"]):
        state.args = args[1:]
    elif args:
        state.args = list(args)
    return 0


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


def cmd_exit(inv: Invocation) -> int:
    raise ShellExit(_status_arg(inv, inv.interp.state.status))


def cmd_return(inv: Invocation) -> int:
    raise ReturnFrom(_status_arg(inv, inv.interp.state.status))


def cmd_break(inv: Invocation) -> int:
    levels = int(inv.args[0]) if inv.args and inv.args[0].isdigit() else 1
    raise LoopControl(inv.name == "break", max(levels, 1))


def cmd_eval(inv: Invocation) -> int:
    try:
        tree = parse(" ".join(inv.args))
    except ParseError as exc:
        inv.interp.error(inv.fds, str(exc))
        return 2
    return inv.interp.run_sequence(tree, inv.fds)


def cmd_source(inv: Invocation) -> int:
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


def cmd_exec(inv: Invocation) -> int:
    """`exec cmd args`: the command replaces this shell, so the shell ends with its status."""
    raise ShellExit(inv.interp.dispatch(inv.args, inv.env, inv.fds) if inv.args else 0)


def cmd_command(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "vVp")
    if not flags & {"v", "V"}:
        return inv.interp.dispatch(operands, inv.env, inv.fds) if operands else 0
    return _which(inv, operands, show_builtins=True)


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


def cmd_read(inv: Invocation) -> int:
    _flags, names = split_flags(inv.args, "rs")
    line = read_line(inv.stdin)
    if line is None:
        return 1
    text = line.decode("utf-8", "replace")
    names = names or ["REPLY"]
    ifs = inv.env.get("IFS", inv.interp.expander.ifs)  # `IFS=, read a b` applies to this read only
    if len(names) == 1:
        values = [text.strip("".join(c for c in ifs if c in " \t\n"))]
    else:
        values = ifs_split(text, ifs, maxsplit=len(names) - 1)
    for k, name in enumerate(names):
        inv.interp.assign(name, values[k] if k < len(values) else "")
    return 0


def cmd_accept(inv: Invocation) -> int:
    """Builtins with nothing to do here: no umask or limits to change."""
    return 0


def cmd_trap(inv: Invocation) -> int:
    """trap [ACTION CONDITION...]: EXIT (or 0) runs when the shell ends; signal conditions are kept but
    never fire (a client hanging up cancels the whole session)."""
    traps = inv.interp.state.traps
    if not inv.args:
        inv.out("".join(f"trap -- {_quote(action)} {name}\n" for name, action in sorted(traps.items())))
        return 0
    action, *conditions = inv.args
    for condition in conditions:
        name = "EXIT" if condition == "0" else condition.upper().removeprefix("SIG")
        if action == "-":
            traps.pop(name, None)
        else:
            traps[name] = action
    return 0


def cmd_type(inv: Invocation) -> int:
    status = 0
    for name in inv.args:
        found = inv.interp.resolve(name)
        if found is None:
            inv.err(f"{name}: not found")
            status = 1
        elif found[0] == "function":
            inv.out(f"{name} is a function\n")
        elif found[0] == "builtin" and "/" not in found[1]:
            inv.out(f"{name} is a shell builtin\n")
        else:
            inv.out(f"{name} is {found[1]}\n")
    return status


def cmd_let(inv: Invocation) -> int:
    """let EXPR...: arithmetic for its effects; 0 when the last value is not zero."""
    if not inv.args:
        inv.interp.error(inv.fds, "let: missing argument")
        return 1
    return inv.interp.arithmetic_status(inv.args, inv.fds)


def cmd_getopts(inv: Invocation) -> int:
    """getopts SPEC NAME [ARGS]: the next option of ARGS (else "$@") into NAME, its value into OPTARG;
    1 after the last. A leading `:` in SPEC reports problems through NAME (`?`, `:`) instead of stderr."""
    if len(inv.args) < 2:
        inv.interp.error(inv.fds, "getopts: missing arguments")
        return 2
    spec, name, *args = inv.args
    state = inv.interp.state
    args = args or state.args
    optind_text = state.vars.get("OPTIND", "1")
    optind = int(optind_text) if optind_text.isdigit() and int(optind_text) > 0 else 1
    k, pos = optind - 1, state.getopts_at[1] if state.getopts_at[0] == optind else 1
    state.vars.pop("OPTARG", None)
    done = k >= len(args) or (pos == 1 and (not args[k].startswith("-") or args[k] in ("-", "--")))
    if done:
        k += k < len(args) and args[k] == "--"
        found, optarg, problem, pos = "?", None, None, 1
    else:
        found, optarg, problem, k, pos = _next_option(spec, args, k, pos)
    inv.interp.assign(name, found)
    if optarg is not None:
        state.vars["OPTARG"] = optarg
    if problem:
        inv.interp.error(inv.fds, problem)
    state.vars["OPTIND"], state.getopts_at = str(k + 1), (k + 1, pos)
    return 1 if done else 0


def _next_option(spec: str, args: list[str], k: int, pos: int) -> tuple[str, str | None, str | None, int, int]:
    """The option at args[k][pos]: (NAME's value, OPTARG, error message, index of the argument to look
    at next, letter index in it)."""
    silent = spec.startswith(":")
    arg, letter = args[k], args[k][pos]
    pos += 1
    following = (k + 1, 1) if pos >= len(arg) else (k, pos)
    if letter == ":" or letter not in spec:
        return "?", letter if silent else None, None if silent else f"-{letter}: unknown option", *following
    if spec[spec.index(letter) + 1 :][:1] != ":":
        return letter, None, None, *following
    if pos < len(arg):
        return letter, arg[pos:], None, k + 1, 1
    if k + 1 < len(args):
        return letter, args[k + 1], None, k + 2, 1
    return (":" if silent else "?"), letter if silent else None, None if silent else (
        f"-{letter}: requires an argument"), k + 1, 1


def cmd_sh(inv: Invocation) -> int:
    """sh [-eux] [-o name] (-c COMMAND [NAME [ARGS]] | SCRIPT [ARGS] | reading stdin)."""
    args = list(inv.args)
    if args and re.fullmatch(r"-[a-z]*c[a-z]*", args[0]) and args[0] != "-c":  # sh -ec '...'
        args = ["-" + args[0][1:].replace("c", ""), "-c", *args[1:]]
    options: set[str] = set()
    try:
        args = apply_options(args, options, stop_at=("-c",))
    except UsageError as exc:
        inv.interp.error(inv.fds, str(exc))
        return 2
    if args and args[0] == "-c":
        if len(args) < 2:
            inv.interp.error(inv.fds, "-c: option requires an argument")
            return 2
        name = args[2] if len(args) > 2 else inv.argv[0]
        return inv.interp.spawn(args[1], name, args[3:], inv.env, inv.fds, script=None, options=options)
    if not args or args[0] in ("-", "--"):  # commands from stdin, each run as soon as it is complete
        return inv.interp.spawn(inv.stdin, inv.argv[0], args[1:], inv.env, inv.fds, script=None, options=options)
    return inv.interp.run_script(inv.fs.norm(args[0], inv.cwd), args, inv.env, inv.fds, options=options)
