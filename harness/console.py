"""The command-line boundary: user-facing errors become one line and an exit code."""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Exit, ParseError, Program
from rich.console import Console
from rich.text import Text

from deploy.errors import EdgeloopError, Interrupted
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


def number(value: Any, option: str, kind: Callable[[Any], N] = float) -> N:
    """A command-line value as a number: invoke passes options as strings, and `--runs x` must be
    one line of error, not a ValueError's traceback."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise EdgeloopError(f"{option} expects a number, got {value!r}") from None


def _check_adb_port_variable() -> None:
    """adbutils reads $ANDROID_ADB_SERVER_PORT with int() when it is imported: a bad value would be a
    ValueError's traceback from deep inside an import. adb itself refuses such a value too."""
    value = os.environ.get("ANDROID_ADB_SERVER_PORT")
    if value is not None and not (value.isdigit() and 0 < int(value) < 65536):
        raise EdgeloopError(f"$ANDROID_ADB_SERVER_PORT must be a port number (1-65535), got {value!r}",
                            "unset it, or set it to the port of your adb server")


def user_errors(fn: F) -> F:
    """Print an EdgeloopError as `error: message (hint)` and exit with its code; tracebacks only
    with EDGELOOP_DEBUG=1. KeyboardInterrupt exits 130 without a traceback.

    Parameters without a default are required options. invoke would make them positional
    arguments, which swallow `--help` as a value; so the signature invoke sees gives them a default
    of None, and a missing one is a one-line error here."""
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            missing = [name for name in required if kwargs.get(name) is None]
            if missing and len(args) <= 1:
                flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
                raise EdgeloopError(f"missing {flags}", "see the task's --help")
            _check_adb_port_variable()
            return fn(*args, **kwargs)
        except EdgeloopError as exc:
            if os.environ.get("EDGELOOP_DEBUG"):
                raise
            err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)  # text, not markup
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            reports = f" (reports: {exc.reports})" if isinstance(exc, Interrupted) else ""
            err_console.print(f"interrupted{reports}", markup=False, soft_wrap=True)
            sys.exit(130)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[params[0], *(p.replace(default=None) if p.name in required else p for p in params[1:])])
    return wrapper  # type: ignore[return-value]


class EdgeloopProgram(Program):
    """invoke's Program, except that a command line it cannot parse (a misspelt task or option, an option
    without its value) is bad input like any other: one `error:` line, exit 2. invoke itself exits 1,
    which here means a check failed. Output piped into a reader that left early (`edgeloop --list | head`)
    ends quietly, as other command-line tools do, rather than with a BrokenPipeError traceback."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        try:
            super().run(argv, exit)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush has nowhere to fail
            sys.exit(141)  # 128 + SIGPIPE, what a shell reports for a writer killed by it

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"error: {self._explain(exc)}", code=2) from None

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
                return f"{task}: unexpected argument '{word}' ({help_hint})"
            return f"unknown task '{word}' ({did_you_mean(word, self.collection.task_names)})"
        needs = re.match(r"Flag <Argument: (\w+)", str(exc))
        if needs and "needed value" in str(exc):
            return f"{task}: --{needs[1].replace('_', '-')} needs a value ({help_hint})"
        return f"{exc} ({help_hint})"
