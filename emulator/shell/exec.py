"""What running a sandbox file by path means on the emulated device: a shell script is interpreted,
a script for a system program's interpreter goes to that program, anything else is refused with
the message and status Android's shell gives (never a host exec)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from emulator.programs import SYSTEM_PROGRAMS
from emulator.sandbox import Sandbox
from emulator.shell.builtins import UsageError, apply_options
from emulator.shell.elf import elf_refusal

SH = "/system/bin/sh"
SH_PATHS = frozenset({SH, "/system/bin/mksh", "/bin/sh"})
NOEXEC_MOUNTS = ("/sdcard",)  # Android mounts shared storage noexec


@dataclass
class Launch:
    refusal: str | None = None  # the shell's message after `name: `, with `status`
    status: int = 0
    program: str | None = None  # a system program named by `#!`, with its `#!` argument
    program_args: list[str] = field(default_factory=list)
    options: set[str] = field(default_factory=set)  # for a shell script: `#!/system/bin/sh -e`


def plan_exec(fs: Sandbox, path: str, props: dict[str, str]) -> Launch:
    """Decide how the file at device path `path` runs, from its mode, mount and first bytes."""
    if fs.is_dir(path):
        return Launch("can't execute: Is a directory", 126)
    noexec = any(path == m or path.startswith(m + "/") for m in NOEXEC_MOUNTS)
    if noexec or not fs.stat(path).st_mode & 0o111:
        return Launch("can't execute: Permission denied", 126)
    with fs.open_read(path) as f:
        head = f.read(256)
    refusal = elf_refusal(head, props)
    if refusal:
        return Launch(refusal, 126)
    if not head.startswith(b"#!"):
        return Launch()  # no interpreter line: the shell runs it, as mksh does
    interpreter, *extra = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split(maxsplit=1)
    if interpreter in SYSTEM_PROGRAMS:
        return Launch(program=interpreter, program_args=extra)
    if interpreter not in SH_PATHS:
        return Launch("No such file or directory", 127)  # the interpreter does not exist on the device
    options: set[str] = set()
    with contextlib.suppress(UsageError):  # unknown options on the #! line are ignored
        apply_options(extra[:1], options)
    return Launch(options=options)
