"""The command-line boundary: user-facing errors become one line and an exit code."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from deploy.errors import EdgeloopError

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
            return fn(*args, **kwargs)
        except EdgeloopError as exc:
            if os.environ.get("EDGELOOP_DEBUG"):
                raise
            err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)  # text, not markup
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[params[0], *(p.replace(default=None) if p.name in required else p for p in params[1:])])
    return wrapper  # type: ignore[return-value]
