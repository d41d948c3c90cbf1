"""The device's own system programs: Python callables the shell may run, never host programs.

The shell looks a command up here by its device path (`/system/bin/<name>`) or bare name.
A program gets a `ProgramContext` and returns its exit status.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class ProgramContext:
    argv: list[str]  # argv[0] is the program's name as invoked
    env: dict[str, str]
    cwd: str  # device path
    fs: Any  # emulator.sandbox.Sandbox: the only way to touch files
    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]
    device: Any  # emulator device state: profile, faults, log
    cancel: threading.Event = field(default_factory=threading.Event)  # set when the client hangs up


SystemProgram = Callable[[ProgramContext], int]

# device path -> program; filled by the modules that implement programs (see register()).
SYSTEM_PROGRAMS: dict[str, SystemProgram] = {}


# Device paths (colon separated) left out of the system image: a device without edgeloop's net-run
# looks like a real phone to the harness (its tests of the "no SDK pack" path use this).
OMIT_ENV = "EDGELOOP_EMULATOR_OMIT_PROGRAMS"


def register(path: str) -> Callable[[SystemProgram], SystemProgram]:
    def wrap(fn: SystemProgram) -> SystemProgram:
        if path not in os.environ.get(OMIT_ENV, "").split(":"):
            SYSTEM_PROGRAMS[path] = fn
        return fn

    return wrap


def system_image() -> frozenset[str]:
    """Device paths of the image's executables that have no sandbox file: system programs and applets.
    The Sandbox shows them as files, so the shell (`ls`, `test -x`) and sync (STAT, LIST) agree."""
    from emulator.shell.table import APPLET_PATHS  # here: the shell's commands import the Sandbox, which imports us

    return frozenset(SYSTEM_PROGRAMS) | APPLET_PATHS
