"""The command-line boundary: user-facing errors become one line and an exit code."""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Exit, ParseError, Program
from rich.console import Console
from rich.text import Text

from deploy.errors import EdgeloopError, InternalError, Interrupted, disk_full
from deploy.fsutil import SHOWN, shortened
from deploy.yamlnode import did_you_mean

PIPED_WIDTH = 160  # columns when no terminal says how wide it is


def _console(stderr: bool) -> Console:
    """Wraps at the terminal's width. Piped into a file or a CI log, with no terminal to ask and no
    COLUMNS, rich would wrap at 80, which cut serials, paths and layer names inside table cells."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPED_WIDTH
    return out


console = _console(stderr=False)
err_console = _console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
N = TypeVar("N", int, float)


def number(value: Any, option: str, kind: Callable[[Any], N] = float, *, low: float | None = None,
           high: float | None = None) -> N:
    """A command-line value as a number: invoke passes options as strings, and `--runs x` must be
    one line of error, not a ValueError's traceback. Never NaN or infinite (a NaN margin compares
    false with everything, which switched regression checks off), and within [low, high] if given."""
    try:
        parsed = kind(value)
    except (TypeError, ValueError):
        raise EdgeloopError(f"{option} expects a number, got {value!r}") from None
    check_range(parsed, option, low, high, given=repr(value))
    return parsed


def check_range(value: float, option: str, low: float | None = None, high: float | None = None, *,
                given: str | None = None) -> None:
    """Refuse NaN, an infinity or a value outside [low, high] (either end optional) in one line naming
    the option: the one check of every numeric flag and of the diff margins however they are given."""
    if not math.isfinite(value):
        raise EdgeloopError(f"{option} expects a finite number, got {given or value}")
    if low is not None and high is not None and not low <= value <= high:
        raise EdgeloopError(f"{option} must be between {low:g} and {high:g}, got {value:g}")
    if low is not None and value < low:
        raise EdgeloopError(f"{option} must be at least {low:g}, got {value:g}")
    if high is not None and value > high:
        raise EdgeloopError(f"{option} must be at most {high:g}, got {value:g}")


# a value as repr() quotes it, not an apostrophe (`device's`): no letter just outside its quotes
_QUOTED = re.compile(r"(?<!\w)(['\"])((?:(?!\1)[^\\]|\\.){" + str(sum(SHOWN) + 1) + r",})\1(?!\w)")


def quotes_shortened(message: str) -> str:
    """`message` with each long quoted value shortened (deploy.fsutil.shortened) and its length said: an
    error quoting what it found (a matrix's `config:` naming /etc/passwd) does not echo a file's content."""
    return _QUOTED.sub(lambda m: f"{m[1]}{shortened(m[2])}{m[1]} ({len(m[2])} characters)", message)


def _check_adb_port_variable() -> None:
    """adbutils reads $ANDROID_ADB_SERVER_PORT with int() when it is imported: a bad value would be a
    ValueError's traceback from deep inside an import. adb itself refuses such a value too."""
    value = os.environ.get("ANDROID_ADB_SERVER_PORT")
    if value is not None and not (value.isdigit() and 0 < int(value) < 65536):
        raise EdgeloopError(f"$ANDROID_ADB_SERVER_PORT must be a port number (1-65535), got {value!r}",
                            "unset it, or set it to the port of your adb server")


DEBUG_ENV = "EDGELOOP_DEBUG"  # set (or `edgeloop --debug`): errors propagate with their tracebacks


def crash_dir() -> Path:
    """Where the tracebacks of internal errors are kept: one folder per user, private to them."""
    return Path(tempfile.gettempdir()) / f"edgeloop-crashes-{os.getuid()}"


def _save_traceback(exc: BaseException) -> Path | None:
    """The traceback of an unexpected exception, in a file of its own (None if even that failed)."""
    folder = crash_dir()
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.txt"
        path.write_text(f"edgeloop {' '.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


_SIGINT_SEEN = threading.Event()


def _note_sigint(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C handling (KeyboardInterrupt), remembered: a C extension being imported turns
    it into an ImportError ('initialization failed'), which is then an interruption, not a bug."""
    _SIGINT_SEEN.set()
    signal.default_int_handler(signum, frame)


def user_errors(fn: F) -> F:
    """Print an EdgeloopError as `error: message (hint)` and exit with its code (a full disk is one
    too); any other exception is an internal error: one line naming the file its traceback went to,
    exit 4. With EDGELOOP_DEBUG=1 (`edgeloop --debug`) errors keep their tracebacks. KeyboardInterrupt
    exits 130 without a traceback.

    Parameters without a default are required options. invoke would make them positional
    arguments, which swallow `--help` as a value; so the signature invoke sees gives them a default
    of None, and a missing one is a one-line error here."""
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            _SIGINT_SEEN.clear()
            signal.signal(signal.SIGINT, _note_sigint)
        try:
            missing = [name for name in required if kwargs.get(name) is None]
            if missing and len(args) <= 1:
                flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
                raise EdgeloopError(f"missing {flags}", "see the task's --help")
            _check_adb_port_variable()
            return fn(*args, **kwargs)
        except KeyboardInterrupt as exc:
            reports = f" (reports: {exc.reports})" if isinstance(exc, Interrupted) else ""
            err_console.print(f"interrupted{reports}", markup=False, soft_wrap=True)
            sys.exit(130)
        except Exit:  # invoke's own way of ending with a code: not an error of ours
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            if _SIGINT_SEEN.is_set():  # Ctrl-C inside an extension's import surfaces as its ImportError
                err_console.print("interrupted", markup=False)
                sys.exit(130)
            error = exc if isinstance(exc, EdgeloopError) else disk_full(exc)
            if error is None:
                saved = _save_traceback(exc)
                where = f"traceback in {saved}" if saved else "no traceback could be saved"
                error = InternalError(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0],
                                      f"{where}; `edgeloop --debug ...` prints it; please report it")
            err_console.print(Text.assemble(("error:", "bold red"), f" {quotes_shortened(str(error))}"),
                              soft_wrap=True)  # text, not markup
            sys.exit(error.exit_code)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[params[0], *(p.replace(default=None) if p.name in required else p for p in params[1:])])
    return wrapper  # type: ignore[return-value]


VARIADIC = "variadic"  # a task body's attribute: the iterable option its positional words are given to


class EdgeloopProgram(Program):
    """invoke's Program, except that a command line it cannot parse (a misspelt task or option, an option
    without its value) is bad input like any other: one `error:` line, exit 2. invoke itself exits 1,
    which here means a check failed. Output piped into a reader that left early (`edgeloop --list | head`)
    ends quietly, as other command-line tools do, rather than with a BrokenPipeError traceback."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        try:
            super().run(argv, exit)
        except KeyboardInterrupt:  # before any task's own handling (while loading, say)
            err_console.print("interrupted", markup=False)
            sys.exit(130)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush has nowhere to fail
            sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a writer killed by it

    def parse_core(self, argv: list[str] | None) -> None:
        """invoke's own --debug also keeps edgeloop's tracebacks (user_errors)."""
        super().parse_core(argv)
        if self.args.debug.value:
            os.environ[DEBUG_ENV] = "1"

    def parse_tasks(self) -> None:
        self._spelled_out()
        self._config_to_task()
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"error: {self._explain(exc)}", code=2) from None

    def _spelled_out(self) -> None:
        """`edgeloop history import a.json b/` is `history.import --reports a.json --reports b/`: a namespace and
        its task may be two words, and the words after a task whose body names a VARIADIC option (an iterable
        one) that are neither options nor their values are that option's values."""
        unparsed = self.core.unparsed
        if len(unparsed) >= 2 and f"{unparsed[0]}.{unparsed[1]}" in self.collection.task_names:
            unparsed[:2] = [f"{unparsed[0]}.{unparsed[1]}"]
        name = unparsed[0] if unparsed else None
        variadic = getattr(self.collection[name].body, VARIADIC, None) if name in self.collection.task_names else None
        if variadic is None:
            return
        valued = {flag for argument in self.collection[name].get_arguments() if argument.takes_value
                  for n in argument.names for flag in (f"--{n.replace('_', '-')}", f"-{n}")}
        words, rest = unparsed[1:], [name]
        while words:
            word = words.pop(0)
            if word.startswith("-"):
                rest += [word, words.pop(0)] if word in valued and words else [word]
            else:
                rest += [f"--{variadic.replace('_', '-')}", word]
        self.core.unparsed = rest

    def _config_to_task(self) -> None:
        """`edgeloop --config X deploy` means the deployment file X, as `edgeloop deploy --config X` does:
        invoke would take X as its own runtime configuration, which edgeloop has no use for. Given to
        a task without a --config option, it is an error rather than silently something else."""
        value = self.args.config.value
        if value is None:
            return
        self.args.config.set_value(None, cast=False)
        unparsed = self.core.unparsed
        name = unparsed[0] if unparsed else None
        body = getattr(self.collection[name], "body", None) if name in self.collection.task_names else None
        if body is None or "config" not in inspect.signature(body).parameters:
            with_config = sorted(n for n in self.collection.task_names
                                 if "config" in inspect.signature(self.collection[n].body).parameters)
            what = f"{name} takes none" if name else "no task was given"
            raise Exit(f"error: --config names a deployment file, and {what} (tasks that take one: "
                       f"{', '.join(with_config)})", code=2)
        self.core.unparsed = [name, "--config", value, *unparsed[1:]]

    def _given_twice(self, task: str, word: str) -> str | None:
        """The single-value option given again just before `word`, which invoke then took as an argument
        (`--runtime cpu --runtime dsp`: 'dsp' unexpected), or None."""
        argv = self.core.unparsed
        spelled = {f"-{n}" if len(n) == 1 else f"--{n}": next(n for n in a.names if len(n) > 1)
                   for a in self.collection[task].get_arguments() if a.takes_value and a.kind is not list
                   for n in a.names}
        seen: list[str] = []
        for i, token in enumerate(argv):
            flag, sep, value = token.partition("=")
            if flag in spelled:
                seen.append(spelled[flag])
                given = value if sep else argv[i + 1] if i + 1 < len(argv) else None
                if given == word and seen.count(seen[-1]) > 1:
                    return f"--{seen[-1]}"
        return None

    def _explain(self, exc: ParseError) -> str:
        task = getattr(exc.context, "name", None)
        flags = list(getattr(exc.context, "flags", {}))
        help_hint = f"see `{self.binary} {task} --help`" if task else f"see `{self.binary} --list`"
        unknown = re.fullmatch(r"No idea what '(.*)' is!", str(exc))
        if unknown:
            word, where = unknown[1], f"{task}: " if task else ""
            if word.startswith("-"):
                return f"{where}unknown option {word} ({did_you_mean(word, flags) if task else help_hint})"
            if task:
                twice = self._given_twice(task, word)
                if twice:
                    return f"{task}: {twice} was given twice, and it takes one value ({help_hint})"
                return f"{task}: unexpected argument '{word}' ({help_hint})"
            return f"unknown task '{word}' ({did_you_mean(word, self.collection.task_names)})"
        needs = re.match(r"Flag <Argument: (\w+)", str(exc))
        if needs and "needed value" in str(exc):
            return f"{task}: --{needs[1].replace('_', '-')} needs a value ({help_hint})"
        return f"{exc} ({help_hint})"
