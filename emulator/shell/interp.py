"""The device's /system/bin/sh: the interpreter that walks a parsed tree (redirections, command
lookup, pipelines, scripts, system programs, background jobs).

It runs the commands of the table it is handed (emulator.shell.table) and the device's own system
programs (Python callables registered in emulator.programs) and nothing else: no host program is
ever started, whatever the client types. Files are reached only through the Sandbox.
"""

from __future__ import annotations

import fnmatch
import io
import random
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from emulator import cmd_services  # noqa: F401  (it registers the system programs cmd and pm)
from emulator.image.procfs import reading_as
from emulator.programs import SYSTEM_PROGRAMS, ProgramContext
from emulator.pty import Pty, TerminalInput
from emulator.sandbox import DeviceOSError, Sandbox
from emulator.shell.builtins import (
    OPTION_LETTERS,
    Command,
    Invocation,
    LoopControl,
    ReturnFrom,
    ShellExit,
    UsageError,
    read_line,
)
from emulator.shell.cond import ConditionError, evaluate
from emulator.shell.edit import Interrupted, LineEditor
from emulator.shell.exec import SH, plan_exec
from emulator.shell.expand import Expander, ExpansionError, arithmetic
from emulator.shell.jobs import Jobs, run_pipeline, start_job
from emulator.shell.parse import (
    AndOr,
    ArithCommand,
    Case,
    Conditional,
    For,
    FunctionDef,
    Group,
    If,
    Loop,
    Node,
    ParseError,
    Pipeline,
    Redirect,
    Redirected,
    Sequence,
    Simple,
    parse,
)
from emulator.shell.pipes import NullFile
from emulator.shell.procs import Cancel, Process, Session, table_for

PS2 = "> "  # the prompt of a command's continuation lines
PROMPT_USER = "$"  # mkshrc's `#` is for root, and adbd here always runs the shell as uid 2000
VALUE_LIMIT = 8 << 20  # bytes a variable or a $(...) may hold (docs/emulator.md)
DEFAULT_PATH = (
    "/product/bin:/apex/com.android.runtime/bin:/apex/com.android.art/bin:/system_ext/bin:/system/bin:"
    "/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin"
)
DEFAULT_ENV = {
    "PATH": DEFAULT_PATH,
    "HOME": "/",
    "TMPDIR": "/data/local/tmp",
    "ANDROID_DATA": "/data",
    "ANDROID_ROOT": "/system",
    "USER": "shell",
    "SHELL": SH,
}
Fds = dict[int, BinaryIO]


@dataclass
class State:
    """What a subshell copies and a script starts afresh: variables, cwd, arguments, options."""

    vars: dict[str, str]
    exported: set[str]
    cwd: str
    args: list[str]
    name: str = SH  # $0
    functions: dict[str, Node] = field(default_factory=dict)
    options: set[str] = field(default_factory=set)  # errexit, nounset, xtrace, noglob, pipefail, ...
    status: int = 0
    last_job: int | None = None  # $!
    traps: dict[str, str] = field(default_factory=dict)  # condition -> command; subshells start without
    getopts_at: tuple[int, int] = (1, 1)  # getopts: (OPTIND, letter index in that argument)

    def copy(self) -> State:
        return State(dict(self.vars), set(self.exported), self.cwd, list(self.args), self.name,
                     dict(self.functions), set(self.options), self.status, self.last_job,
                     getopts_at=self.getopts_at)


class Interp:
    """Runs parsed trees for one shell process (the top level, a script or a subshell)."""

    def __init__(self, shell: Shell, state: State, process: Process, script: str | None = None) -> None:
        self.shell = shell
        self.fs: Sandbox = shell.fs
        self.device = shell.device
        self.state = state
        self.process = process  # the session's entry in the device's process list
        self.cancel = process.cancel  # set when this shell's process (or one it belongs to) is killed
        self.script = script  # set for scripts: errors then read `name[line]: ...` like mksh
        self.line = 0
        self.expander = Expander(self)
        self.held_open: list[Any] = []  # files opened by `exec >file`, closed when this shell ends
        self.stderr: BinaryIO = NullFile()  # the running command's stderr, for errors during expansion
        self.stdin: BinaryIO = NullFile()  # what $(...) reads while a simple command's words expand
        self.substitution_status = 0  # of the last $(...) expanded for the running command
        self.jobs = Jobs()  # background jobs started by this shell
        self.local_frames: list[dict[str, str | None]] = []  # per function call: `local` names' old values
        self.interactive = False  # reading commands line by line from a stream

    # ---- what expansion and builtins use ---------------------------------------------------

    @property
    def cwd(self) -> str:
        return self.state.cwd

    @property
    def options(self) -> set[str]:
        return self.state.options

    def lookup(self, name: str) -> str | None:
        special = {"?": lambda: str(self.state.status), "#": lambda: str(len(self.state.args)),
                   "$": lambda: str(self.process.pid), "!": lambda: str(self.state.last_job or ""),
                   "-": lambda: "".join(k for k, v in OPTION_LETTERS.items() if v in self.state.options),
                   "LINENO": lambda: str(self.line),
                   "PPID": lambda: str(self.process.ppid), "RANDOM": lambda: str(random.randrange(32768)),
                   "*": lambda: self.expander.ifs[:1].join(self.state.args), "@": lambda: " ".join(self.state.args),
                   "0": lambda: self.state.name}
        if name in special:
            return special[name]()
        if name.isdigit():
            index = int(name)
            return self.state.args[index - 1] if index <= len(self.state.args) else None
        return self.state.vars.get(name)

    def positional_args(self) -> list[str]:
        return self.state.args

    def assign(self, name: str, value: str) -> None:
        self.state.vars[name] = _held(name, value)

    def environ(self) -> dict[str, str]:
        return {k: v for k, v in self.state.vars.items() if k in self.state.exported}

    def command_output(self, source: str) -> str:
        """`$(...)`: run in a subshell, capture stdout; stderr still goes to the caller's."""
        buffer = _Capped(VALUE_LIMIT)
        child = self.subshell()
        self.substitution_status = child.run_source(source, {0: self.stdin, 1: buffer, 2: self.stderr})
        if buffer.overflowed:
            raise ExpansionError(f"command substitution: output too long (over {VALUE_LIMIT} bytes)")
        return buffer.getvalue().decode("utf-8", "replace")

    def subshell(self) -> Interp:
        child = Interp(self.shell, self.state.copy(), self.process, self.script)
        child.cancel = self.cancel  # the foreground line's token in a terminal session
        child.stderr = self.stderr
        return child

    def error(self, fds: Fds, message: str) -> None:
        prefix = f"{self.script}[{self.line}]" if self.script else SH
        write(fds[2], f"{prefix}: {message}\n")

    # ---- running ------------------------------------------------------------------------

    def run_source(self, source: str, fds: Fds) -> int:
        """Parse and run a whole script; `exit` ends it here. Never raises for command errors."""
        fds = dict(fds)
        try:
            tree = parse(source)
        except ParseError as exc:
            self.line = exc.line
            self.error(fds, str(exc))
            return 2
        return self.as_process(lambda: self.run_sequence(tree, fds), fds)

    def run_lines(self, stream: BinaryIO, fds: Fds) -> int:
        """Read commands from a stream and run each as soon as it is complete, as a shell reading
        stdin does (`adb shell` without a command and without a terminal); `exit` or the end of the
        stream ends it."""
        self.interactive = True

        def next_line(_continued: bool) -> str | None:
            line = read_line(stream)
            return None if line is None else line.decode("utf-8", "replace")

        fds = dict(fds)

        def run(tree: Sequence) -> int:
            return self.run_sequence(tree, fds)

        return self.as_process(lambda: self.command_loop(next_line, fds, run), fds)

    def run_terminal(self, pty: Pty) -> int:
        """`adb shell` in a terminal: a prompt, the line editor, each line run as the terminal's
        foreground job (^C ends it with 130 and returns to the prompt), ^D or `exit` to leave."""
        self.interactive = True
        fds: Fds = {0: pty.input, 1: pty.output, 2: pty.output}
        editor = LineEditor(pty)

        def next_line(continued: bool) -> str | None:
            return editor.read_line(PS2 if continued else self.prompt())

        def foreground(tree: Sequence) -> int:
            rows, columns = pty.size  # as mksh keeps them after each SIGWINCH
            self.state.vars.update(COLUMNS=str(columns), LINES=str(rows))
            line = self.cancel = Cancel(self.process.cancel)
            pty.set_foreground(line)
            try:
                status = self.run_sequence(tree, fds)
            except ShellExit:
                if line.killed_with is None:
                    raise
                status = 0
            finally:
                pty.set_foreground(None)
                self.cancel = self.process.cancel
            if line.killed_with is not None:  # as mksh after a job killed by ^C: a new line, then the prompt
                write(fds[1], "\n")
                status = self.state.status = line.killed_with
            return status

        def session() -> int:
            try:
                return self.command_loop(next_line, fds, foreground)
            finally:  # the terminal goes with its shell: SIGHUP for the jobs it leaves, so the session ends
                for pid in self.jobs.pids():
                    table_for(self.device).kill(pid, signal.SIGHUP)

        return self.as_process(session, fds)

    def prompt(self) -> str:
        """Android's PS1 (/system/etc/mkshrc): `$?|` when not 0, the device's name, the folder, `$`."""
        status = f"{self.state.status}|" if self.state.status else ""
        return f"{status}{self.state.vars.get('HOSTNAME', '')}:{self.cwd} {PROMPT_USER} "

    def command_loop(self, next_line: Callable[[bool], str | None], fds: Fds, run: Callable[[Sequence], int]) -> int:
        """Gather lines until they parse (`next_line(True)` asks for a continuation), run each
        complete command; ^C while editing (Interrupted) drops what was gathered."""
        pending, status = "", 0
        while True:
            try:
                line = next_line(bool(pending))
            except Interrupted:
                pending, status = "", 130
                self.state.status = status
                continue
            if line is None:
                break
            pending += line + "\n"
            try:
                tree = parse(pending)
            except ParseError as exc:
                if not exc.incomplete:
                    self.line, pending, status = exc.line, "", 2
                    self.state.status = status
                    self.error(fds, str(exc))
                continue
            pending = ""
            status = run(tree)
        if pending.strip():  # the stream ended inside a command
            self.error(fds, "syntax error: unexpected end of file")
            return 2
        return status

    def as_process(self, body: Callable[[], int], fds: Fds) -> int:
        """Run the body of this shell process: `exit` (or a stray return or break) ends it with a
        status, then its EXIT trap runs."""
        try:
            try:
                status = body()
            except (ShellExit, LoopControl) as exc:
                status = exc.status
            return self.run_exit_trap(status, fds)
        finally:
            self.jobs.wait_all()  # a session ends once its jobs have, as adb waits for all holders of the output
            close_all(self.held_open)

    def run_exit_trap(self, status: int, fds: Fds) -> int:
        """`trap 'cleanup' EXIT`: runs once with `$?` set; its own `exit N` changes the status."""
        action = self.state.traps.pop("EXIT", "")
        if not action:
            return status
        self.state.status = status
        try:
            self.run_sequence(parse(action), fds)
        except ParseError as exc:
            self.error(fds, str(exc))
        except (ShellExit, LoopControl) as exc:
            return exc.status
        return status

    def run_sequence(self, seq: Sequence, fds: Fds, tested: bool = False) -> int:
        status = 0
        for item in seq.items:
            status = self.start_job(item, fds) if item.background else self.run_and_or(item, fds, tested)
        return status

    def start_job(self, node: AndOr, fds: Fds) -> int:
        return start_job(self, node, fds)

    def run_and_or(self, node: AndOr, fds: Fds, tested: bool) -> int:
        status = self.run_pipeline(node.first, fds, tested or bool(node.rest))
        last, last_negated = 0, node.first.negate
        for k, (op, pipeline) in enumerate(node.rest, start=1):
            if (op == "&&") != (status == 0):
                continue
            status = self.run_pipeline(pipeline, fds, tested or k < len(node.rest))
            last, last_negated = k, pipeline.negate
        if status and "errexit" in self.state.options and not tested and last == len(node.rest) and not last_negated:
            raise ShellExit(status)
        return status

    def run_pipeline(self, node: Pipeline, fds: Fds, tested: bool) -> int:
        return run_pipeline(self, node, fds, tested)

    def run_command(self, node: Node, fds: Fds, tested: bool) -> int:
        if isinstance(node, Simple):
            return self.run_simple(node, fds)
        if isinstance(node, Redirected):
            redirected, opened = self.open_redirects(node.redirects, fds)
            if redirected is None:
                return 1
            try:
                return self.run_command(node.node, redirected, tested)
            finally:
                close_all(opened)
        if isinstance(node, Group):
            if node.subshell:
                child = self.subshell()
                return child.as_process(lambda: child.run_sequence(node.body, fds, tested), fds)
            return self.run_sequence(node.body, fds, tested)
        if isinstance(node, FunctionDef):
            self.state.functions[node.name] = node.body
            return 0
        if isinstance(node, Conditional):
            return self.run_conditional(node, fds)
        if isinstance(node, ArithCommand):
            self.line = node.line
            return self.arithmetic_status([self.expander.string(node.expr)], fds)
        runner = {If: self.run_if, For: self.run_for, Loop: self.run_loop, Case: self.run_case}[type(node)]
        return runner(node, fds, tested)

    def run_if(self, node: If, fds: Fds, tested: bool) -> int:
        for condition, body in node.branches:
            if self.run_sequence(condition, fds, tested=True) == 0:
                return self.run_sequence(body, fds, tested)
        return self.run_sequence(node.orelse, fds, tested) if node.orelse else 0

    def run_for(self, node: For, fds: Fds, tested: bool) -> int:
        items = self.expander.fields(node.items) if node.items is not None else list(self.state.args)
        status = 0
        for item in items:
            self.check_cancel()
            self.assign(node.var, item)
            status, stop = self.run_loop_body(node.body, fds, tested)
            if stop:
                break
        return status

    def run_loop(self, node: Loop, fds: Fds, tested: bool) -> int:
        status = 0
        while True:
            self.check_cancel()
            if (self.run_sequence(node.condition, fds, tested=True) == 0) == node.until:
                return status
            status, stop = self.run_loop_body(node.body, fds, tested)
            if stop:
                return status

    def run_loop_body(self, body: Sequence, fds: Fds, tested: bool) -> tuple[int, bool]:
        """One pass of a loop body: (status, True when `break` ends this loop)."""
        try:
            return self.run_sequence(body, fds, tested), False
        except LoopControl as ctl:
            if ctl.levels > 1:
                raise LoopControl(ctl.brk, ctl.levels - 1) from None
            return self.state.status, ctl.brk

    def run_case(self, node: Case, fds: Fds, tested: bool) -> int:
        subject = self.expander.string(node.subject)
        for patterns, body in node.arms:
            if any(fnmatch.fnmatchcase(subject, self.expander.pattern(p)) for p in patterns):
                return self.run_sequence(body, fds, tested)
        return 0

    def run_conditional(self, node: Conditional, fds: Fds) -> int:
        """`[[ ... ]]`: 0 true, 1 false, 2 for a malformed expression."""
        self.line = node.line
        try:
            texts = [i if isinstance(i, str) else self.expander.string(i) for i in node.items]
            patterns = [i if isinstance(i, str) else self.expander.pattern(i) for i in node.items]
            return 0 if evaluate(texts, self.fs, self.cwd, patterns) else 1
        except (ExpansionError, ConditionError) as exc:
            self.error(fds, f"[[: {exc}")
            return 2

    def arithmetic_status(self, expressions: list[str], fds: Fds) -> int:
        """`((...))` and `let`: 0 when the last value is not zero, 1 when it is, 2 after an error."""
        value = 0
        for text in expressions:
            try:
                value = arithmetic(text, self)
            except ExpansionError as exc:
                self.error(fds, str(exc))
                return 2
        return 0 if value else 1

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise ShellExit(self.cancel.status())

    def run_simple(self, node: Simple, fds: Fds) -> int:
        """A simple command; what it reads as /proc/self is this shell process (builtins run in it)."""
        with reading_as(self.process.pid):
            return self._run_simple(node, fds)

    def _run_simple(self, node: Simple, fds: Fds) -> int:
        self.check_cancel()
        self.line = node.line
        self.stderr = fds[2]
        self.substitution_status = 0
        self.stdin = fds[0]  # a command substitution reads the command's stdin, as in mksh
        try:
            argv = self.expander.fields(node.words)
            assigns = [(name, _held(name, self.expander.string(word))) for name, word in node.assigns]
        except ExpansionError as exc:  # ends a script, as POSIX asks; an interactive shell goes on
            self.error(fds, str(exc))
            if not self.interactive:
                raise ShellExit(1) from None
            return 1
        finally:
            self.stdin = NullFile()  # other words (for, case, redirections) expand without one
        if "xtrace" in self.state.options:
            write(fds[2], "+ " + " ".join([*(f"{n}={v}" for n, v in assigns), *argv]) + "\n")
        redirected, opened = self.open_redirects(node.redirects, fds)
        if redirected is None:
            return 1
        if argv == ["exec"]:  # `exec >file`: redirect the rest of this shell
            fds.update(redirected)
            self.held_open.extend(opened)
            return 0
        try:
            if not argv:  # assignments only: the status is that of the last $(...) in them
                for name, value in assigns:
                    self.assign(name, value)
                return self.substitution_status
            status = self.invoke(argv, assigns, redirected)
        finally:
            close_all(opened)
        self.state.status = status
        return status

    # ---- redirections -------------------------------------------------------------------

    def open_redirects(self, redirects: list[Redirect], fds: Fds) -> tuple[Fds | None, list[Any]]:
        """Apply redirections left to right on a copy of `fds`; (None, []) after printing an error."""
        result, opened = dict(fds), []
        for redirect in redirects:
            try:
                target = self.expander.string(redirect.target)
            except ExpansionError as exc:
                self.error(fds, str(exc))
                close_all(opened)
                return None, []
            if redirect.op in ("<<", "<<-", "<<<"):  # here-document; `<<< word` is mksh's here-string
                text = target + "\n" if redirect.op == "<<<" else target
                result[redirect.fd] = io.BytesIO(text.encode("utf-8", "surrogateescape"))
                continue
            if redirect.op in (">&", "<&"):
                if target == "-":
                    result[redirect.fd] = NullFile()
                elif target.isdigit() and int(target) in result:
                    result[redirect.fd] = result[int(target)]
                else:
                    self.error(fds, f"{target}: bad file descriptor")
                    close_all(opened)
                    return None, []
                continue
            try:
                f = self.open_file(target, redirect.op)
            except DeviceOSError as exc:
                verb = "can't open" if redirect.op in ("<", "<>") else "can't create"
                self.error(fds, f"{verb} {target}: {exc.message}")
                close_all(opened)
                return None, []
            opened.append(f)
            result[redirect.fd] = f
        return result, opened

    def open_file(self, target: str, op: str) -> Any:
        if self.fs.norm(target, self.cwd) == "/dev/null":
            return NullFile()
        if op in ("<", "<>"):
            return self.fs.open_read(target, self.cwd)
        return self.fs.open_write(target, self.cwd, append=op == ">>")

    # ---- commands -----------------------------------------------------------------------

    def resolve(self, name: str) -> tuple[str, str] | None:
        """How a command name runs: ("function"|"builtin"|"program"|"file", path or name), or None."""
        if "/" in name:
            path = self.fs.norm(name, self.cwd)
            if path in SYSTEM_PROGRAMS:
                return "program", path
            command = self.shell.commands.get(path.rpartition("/")[2])
            if path.rpartition("/")[0] == "/system/bin" and command is not None and command.applet:
                return "builtin", path
            return ("file", path) if self.fs.exists(path) else None
        if name in self.state.functions:
            return "function", name
        if name in self.shell.commands:
            return "builtin", f"/system/bin/{name}" if self.shell.commands[name].applet else name
        for folder in self.state.vars.get("PATH", "").split(":"):
            path = self.fs.norm(f"{folder or '.'}/{name}", self.cwd)
            if path in SYSTEM_PROGRAMS:
                return "program", path
            if self.fs.is_file(path) and self.fs.stat(path).st_mode & 0o111:
                return "file", path
        return None

    def invoke(self, argv: list[str], assigns: list[tuple[str, str]], fds: Fds) -> int:
        """Run a command with `VAR=value` prefixes: they stay set for functions and special builtins."""
        command = self.shell.commands.get(argv[0])
        if argv[0] in self.state.functions or (command is not None and command.special):
            for name, value in assigns:
                self.assign(name, value)
        return self.dispatch(argv, {**self.environ(), **dict(assigns)}, fds)

    def dispatch(self, argv: list[str], env: dict[str, str], fds: Fds) -> int:
        """Find and run one command with the environment `env`."""
        found = self.resolve(argv[0])
        if found is None:
            self.error(fds, f"{argv[0]}: inaccessible or not found")
            return 127
        kind, path = found
        if kind == "function":
            return self.call_function(argv, fds)
        if kind == "builtin":
            return self.run_builtin(path.rpartition("/")[2], argv, env, fds)
        if kind == "program":
            return self.run_program(path, argv, env, fds)
        return self.exec_file(path, argv, env, fds)

    def call_function(self, argv: list[str], fds: Fds) -> int:
        """A function call: its own arguments, and `local` variables restored when it returns."""
        saved = self.state.args
        self.state.args = argv[1:]
        self.local_frames.append({})
        try:
            return self.run_sequence(Sequence([AndOr(Pipeline([self.state.functions[argv[0]]]))]), fds)
        except ReturnFrom as ret:
            return ret.status
        finally:
            self.state.args = saved
            for name, value in self.local_frames.pop().items():
                if value is None:
                    self.state.vars.pop(name, None)
                else:
                    self.state.vars[name] = value

    def run_builtin(self, name: str, argv: list[str], env: dict[str, str], fds: Fds) -> int:
        try:
            return self.shell.commands[name].fn(Invocation(argv, env, fds, self))
        except DeviceOSError as exc:
            write(fds[2], f"{name}: {exc.path}: {exc.message}\n")
            return 1
        except UsageError as exc:
            write(fds[2], f"{name}: {exc}\n")
            return 1
        except io.UnsupportedOperation:  # e.g. `echo x >&0`, or `1<>file` (opened for reading only here)
            write(fds[2], f"{name}: write error: Bad file descriptor\n")
            return 1

    def run_program(self, path: str, argv: list[str], env: dict[str, str], fds: Fds) -> int:
        """A system program: the device's own Python code, never a host executable."""
        self.device.log("program_start", program=path, argv=argv, cwd=self.cwd)
        processes = table_for(self.device)
        try:
            with processes.running(" ".join(argv), self.process.session, self.cancel, ppid=self.process.pid) as proc:
                context = ProgramContext(argv=argv, env=env, cwd=self.cwd, fs=self.fs, stdin=fds[0], stdout=fds[1],
                                         stderr=fds[2], device=self.device, cancel=proc.cancel)
                with reading_as(proc.pid):
                    status = int(SYSTEM_PROGRAMS[path](context))
                status = proc.cancel.killed_with or status  # killed: the signal's status, whatever it returned
        except (BrokenPipeError, ConnectionError):
            raise  # the client is gone: not the program's fault
        except DeviceOSError as exc:  # e.g. its redirected output ran out of space
            write(fds[2], f"{argv[0]}: {exc.path}: {exc.message}\n")
            status = 1
        except Exception as exc:  # a bug in a system program: the device reports a crash, not a traceback
            self.device.log("program_crash", program=path, error=repr(exc))
            write(fds[2], f"{argv[0]}: internal error: {exc}\n")
            status = 134
        self.device.log("program_exit", program=path, status=status)
        return status

    def exec_file(self, path: str, argv: list[str], env: dict[str, str], fds: Fds) -> int:
        """Run a file by path: shell scripts are interpreted, native code is refused."""
        launch = plan_exec(self.fs, path, self.device.props)
        if launch.refusal:
            self.error(fds, f"{argv[0]}: {launch.refusal}")
            return launch.status
        if launch.program:
            return self.run_program(launch.program, [launch.program, *launch.program_args, *argv], env, fds)
        return self.run_script(path, argv, env, fds, options=launch.options)

    def run_script(self, path: str, argv: list[str], env: dict[str, str], fds: Fds,
                   options: set[str] | None = None) -> int:
        """A script is a new shell process: it sees exported variables only and its own cwd."""
        try:
            with self.fs.open_read(path, self.cwd) as f:
                source = f.read().decode("utf-8", "replace")
        except DeviceOSError as exc:
            self.error(fds, f"{argv[0]}: {exc.message}")
            return 127
        return self.spawn(source, argv[0], argv[1:], env, fds, script=argv[0], options=options)

    def spawn(self, source: str | BinaryIO, name: str, args: list[str], env: dict[str, str], fds: Fds, *,
              script: str | None, options: set[str] | None = None) -> int:
        """Run `source` (text, or a stream read line by line) in a new shell process (its own pid,
        `$$`, in the process list) that inherits `env` and this shell's cwd."""
        state = State(dict(env), set(env), self.cwd, list(args), name, options=set(options or ()))
        how = [script] if script else ["-c", source] if isinstance(source, str) else []
        with table_for(self.device).running(" ".join([SH, *how, *args]), self.process.session, self.cancel,
                                            ppid=self.process.pid) as process:
            child = Interp(self.shell, state, process, script)
            if isinstance(source, str):
                status = child.run_source(source, fds)
            elif isinstance(source, TerminalInput):  # `sh` typed at a terminal's prompt: interactive there
                status = child.run_terminal(source.pty)
            else:
                status = child.run_lines(source, fds)
            return process.cancel.killed_with or status


def _held(name: str, value: str) -> str:
    """A value a variable may hold: a phone's RAM would run out first; the emulated device's must not."""
    if len(value) > VALUE_LIMIT:
        raise ExpansionError(f"{name}: value too long (the emulated shell holds at most {VALUE_LIMIT} bytes)")
    return value


class _Capped(io.BytesIO):
    """A substitution's output, which a variable will hold: past `limit` bytes its subshell ends as if
    killed by SIGPIPE (status 141), so a command that never stops cannot fill the device's memory."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.overflowed = False

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.limit:
            self.overflowed = True
            raise ShellExit(141)
        return super().write(data)


def write(stream: BinaryIO, text: str) -> None:
    stream.write(text.encode("utf-8", "surrogateescape"))


def close_all(files: list[Any]) -> None:
    for f in files:
        f.close()


class Shell:
    """The device's /system/bin/sh running the commands of `commands` (name -> Command). One instance
    per device; `run` is safe to call from many threads."""

    def __init__(self, fs: Sandbox, device: Any, commands: Mapping[str, Command]) -> None:
        self.fs = fs
        self.device = device
        self.commands = commands

    def run(self, command: str, *, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO,
            env: dict[str, str] | None = None, cwd: str = "/", cancel: threading.Event | None = None) -> int:
        """Run a command line or script text like `sh -c`; the exit status comes back, errors go to stderr.
        Only a failing output stream itself (BrokenPipeError: the client is gone) propagates."""
        status = self._session(f"{SH} -c {command}", lambda interp: interp.run_source(
            command, {0: stdin, 1: stdout, 2: stderr}), env, cwd, cancel, stderr)
        for stream in (stdout, stderr):
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()
        return status

    def run_terminal(self, terminal: Pty, command: str, *, env: dict[str, str] | None = None, cwd: str = "/",
                     cancel: threading.Event | None = None) -> int:
        """A session on a terminal: the interactive shell when `command` is empty (with mkshrc's
        HOSTNAME, the device's name, for the prompt), else the command as its foreground job."""
        if command:
            def body(interp: Interp) -> int:
                terminal.set_foreground(interp.process.cancel)
                return interp.run_source(command, {0: terminal.input, 1: terminal.output, 2: terminal.output})
            return self._session(f"{SH} -c {command}", body, env, cwd, cancel, terminal.output)
        interactive_env = {"HOSTNAME": self.device.props.get("ro.product.device", "android"), **(env or {})}
        return self._session(f"{SH} -", lambda interp: interp.run_terminal(terminal), interactive_env, cwd, cancel,
                             terminal.output)

    def _session(self, cmdline: str, body: Callable[[Interp], int], env: dict[str, str] | None, cwd: str,
                 cancel: threading.Event | None, stderr: BinaryIO) -> int:
        """One top-level shell process (a session of its own in the process list) running `body`."""
        variables = {**DEFAULT_ENV, **(env or {})}
        state = State(variables, set(variables), self.fs.norm(cwd), [])
        with table_for(self.device).running(cmdline, Session(), cancel or threading.Event()) as process:
            try:
                status = body(Interp(self, state, process))
            except RecursionError:  # `f() { f; }; f` and the like
                write(stderr, f"{SH}: recursion too deep\n")
                status = 2
            return process.cancel.killed_with or status

