"""`/system/bin/taskset`: toybox's taskset on the device image's CPU affinities.

`taskset MASK COMMAND [ARGS...]` runs the command with that mask; `taskset -p PID` prints a
process's mask and `taskset -p MASK PID` sets it (with -a, the same: a device process has one
thread). A mask is hexadecimal (`f0`, `0xf0`), limited to the device's cores. The command runs in a
shell of its own started by taskset (the device cannot exec in place), whose processes inherit the
mask: net-run keeps as many cores busy as its mask holds (emulator.image.DeviceImage.running).
"""

from __future__ import annotations

import shlex

from emulator.programs import ProgramContext, register
from emulator.shell import COMMANDS, Shell

USAGE = "usage: taskset [-ap] [mask] [PID | cmd [args...]]"


def _mask(ctx: ProgramContext, text: str) -> int | None:
    """The device's cores in a hexadecimal mask; None when it names none of them (or is no number)."""
    try:
        mask = int(text.removeprefix("0x").removeprefix("0X"), 16) & ctx.device.image.all_cores
    except ValueError:
        return None
    return mask or None


def _fail(ctx: ProgramContext, message: str) -> int:
    ctx.stderr.write(f"taskset: {message}\n".encode())
    return 1


def _for_pid(ctx: ProgramContext, args: list[str]) -> int:
    """-p [MASK] PID: print the process's mask, and with MASK set it."""
    image, pid = ctx.device.image, args[-1]
    token = image.token_of(int(pid)) if pid.isdigit() else None
    if token is None:
        return _fail(ctx, f"failed to get pid {pid}'s affinity: No such process")
    ctx.stdout.write(f"pid {pid}'s current affinity mask: {image.affinity(token):x}\n".encode())
    if len(args) == 1:
        return 0
    mask = _mask(ctx, args[0])
    if mask is None:
        return _fail(ctx, f"failed to set pid {pid}'s affinity: Invalid argument")
    image.set_affinity(token, mask)
    ctx.stdout.write(f"pid {pid}'s new affinity mask: {mask:x}\n".encode())
    return 0


@register("/system/bin/taskset")
def main(ctx: ProgramContext) -> int:
    args = ctx.argv[1:]
    flags = set()
    while args and args[0].startswith("-") and len(args[0]) > 1:
        flags |= set(args.pop(0)[1:])
    if flags - {"a", "p"} or not args or ("p" not in flags and len(args) < 2):
        ctx.stderr.write(f"{USAGE}\n".encode())
        return 1
    if "p" in flags:
        return _for_pid(ctx, args)
    mask = _mask(ctx, args[0])
    if mask is None:
        return _fail(ctx, "failed to set pid 0's affinity: Invalid argument")
    ctx.device.image.set_affinity(ctx.cancel, mask)  # this process's: the shell below and what it runs inherit it
    return Shell(ctx.fs, ctx.device, COMMANDS).run(shlex.join(args[1:]), stdin=ctx.stdin, stdout=ctx.stdout,
                                                   stderr=ctx.stderr, env=ctx.env, cwd=ctx.cwd, cancel=ctx.cancel)
