"""diff as toybox's: unified output (-u is the default; -U N lines of context), `--- name\\tmtime`
headers, status 0 when the files are equal, 1 when not, 2 when one cannot be read."""

from __future__ import annotations

import difflib
import time

from emulator.sandbox import DeviceOSError
from emulator.shell.builtins import Invocation, UsageError, getopt


def _header(inv: Invocation, name: str) -> str:
    if name == "-":
        return name
    mtime = inv.fs.stat(name, inv.cwd).st_mtime
    fraction = f"{mtime % 1:.9f}"[1:]
    return f"{name}\t{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(mtime))}{fraction} +0000"


def cmd_diff(inv: Invocation) -> int:
    opts = getopt(inv.args, "uqsbBiwNar", "UL")
    if len(opts.operands) != 2:
        raise UsageError("needs 2 arguments")
    texts = []
    try:
        for name in opts.operands:
            if name == "-":
                texts.append(inv.stdin.read())
            else:
                with inv.fs.open_read(name, inv.cwd) as f:
                    texts.append(f.read())
    except DeviceOSError as exc:
        inv.fail(exc.path, exc)
        return 2
    old, new = (t.decode("utf-8", "surrogateescape").splitlines(keepends=True) for t in texts)
    if old == new:
        if "s" in opts.flags:
            inv.out(f"Files {opts.operands[0]} and {opts.operands[1]} are identical\n")
        return 0
    if "q" in opts.flags:
        inv.out(f"Files {opts.operands[0]} and {opts.operands[1]} differ\n")
        return 1
    first, second = (_header(inv, name) for name in opts.operands)
    for line in difflib.unified_diff(old, new, first, second, n=opts.number("U", 3)):
        if line.startswith(("---", "+++")):
            line = line.rstrip("\n") + "\n"
        inv.out(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return 1
