"""The device shell's commands that change files (mkdir, rm, cp, mv, ln, chmod, touch, mktemp), on the
Sandbox only: its checks decide what is read-only, missing or full."""

from __future__ import annotations

import os
import secrets
import stat as statmod
from collections.abc import Callable

from emulator.sandbox import ISDIR, NOENT, NOTDIR, NOTEMPTY, DeviceOSError
from emulator.shell.builtins import Invocation, UsageError, split_flags, take_option
from emulator.shell.files import join_path, walk


def cmd_mkdir(inv: Invocation) -> int:
    args = list(inv.args)
    spec = take_option(args, "m") or "755"
    if not _is_octal(spec):
        raise UsageError(f"bad mode '{spec}'")
    mode = int(spec, 8)
    flags, operands = split_flags(args, "pv")
    status = 0
    for operand in operands:
        try:
            inv.fs.mkdir(operand, inv.cwd, parents="p" in flags, mode=mode)
        except DeviceOSError as exc:
            inv.err(f"'{operand}': {exc.message}")
            status = 1
    return status


def _is_octal(text: str) -> bool:
    return bool(text) and all(c in "01234567" for c in text)


def cmd_rm(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "rRfiv")
    recursive = bool(flags & {"r", "R"})

    def remove(operand: str) -> None:  # a link goes itself, even a dangling one or one to a folder
        link = inv.fs.is_link(operand, inv.cwd)
        if not link and not inv.fs.exists(operand, inv.cwd):
            if "f" not in flags:
                raise DeviceOSError(operand, NOENT)
        elif not link and inv.fs.is_dir(operand, inv.cwd) and not recursive:
            raise DeviceOSError(operand, ISDIR)
        else:
            inv.fs.remove(operand, inv.cwd, recursive=recursive)

    return inv.each(operands, remove)


def cmd_rmdir(inv: Invocation) -> int:
    _flags, operands = split_flags(inv.args, "p")

    def remove(operand: str) -> None:
        if not inv.fs.is_dir(operand, inv.cwd):
            raise DeviceOSError(operand, NOTDIR if inv.fs.exists(operand, inv.cwd) else NOENT)
        if inv.fs.listdir(operand, inv.cwd):
            raise DeviceOSError(operand, NOTEMPTY)
        inv.fs.remove(operand, inv.cwd, recursive=True)

    return inv.each(operands, remove)


def _destination(inv: Invocation, operands: list[str], enter_links: bool = True) -> tuple[list[str], str, bool] | None:
    """cp/mv operands -> (sources, destination, destination is a folder), or None after an error.
    Without `enter_links` a link to a folder is a destination, not a folder (ln -n)."""
    if len(operands) < 2:
        inv.err("needs 2 arguments")
        return None
    *sources, target = operands
    into = inv.fs.is_dir(target, inv.cwd) and (enter_links or not inv.fs.is_link(target, inv.cwd))
    if len(sources) > 1 and not into:
        inv.err(f"'{target}' not directory")
        return None
    return sources, target, into


def _target_path(inv: Invocation, source: str, target: str, into: bool) -> str:
    name = inv.fs.norm(source, inv.cwd).rpartition("/")[2]
    return join_path(target, name) if into else target


def _each_destination(inv: Invocation, operands: list[str], action: Callable[[str, str], int],
                      enter_links: bool = True) -> int:
    """cp and ln: `action(source, destination)` for each source (its status, 0 or 1); a failure names
    the path at fault (the source, or the new name) and the others still run."""
    plan = _destination(inv, operands, enter_links)
    if plan is None:
        return 1
    sources, target, into = plan
    status = 0
    for source in sources:
        try:
            status = action(source, _target_path(inv, source, target, into)) or status
        except DeviceOSError as exc:
            status = inv.fail(exc.path, exc)
    return status


def cmd_cp(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "rRfpavdP")

    def copy(source: str, dest: str) -> int:
        if not inv.fs.is_dir(source, inv.cwd):
            inv.fs.copy(source, dest, inv.cwd)
        elif not flags & {"r", "R", "a"}:
            inv.err(f"Skipped dir '{source}'")
            return 1
        else:
            _copy_tree(inv, source, dest)
        return 0

    return _each_destination(inv, operands, copy)


def _copy_tree(inv: Invocation, source: str, dest: str) -> None:
    if not inv.fs.is_dir(dest, inv.cwd):
        inv.fs.mkdir(dest, inv.cwd)
    for name in inv.fs.listdir(source, inv.cwd):
        src, dst = join_path(source, name), join_path(dest, name)
        if inv.fs.is_dir(src, inv.cwd):
            _copy_tree(inv, src, dst)
        else:
            inv.fs.copy(src, dst, inv.cwd)


def cmd_mv(inv: Invocation) -> int:
    _flags, operands = split_flags(inv.args, "fniv")
    plan = _destination(inv, operands)
    if plan is None:
        return 1
    sources, target, into = plan
    return inv.each(sources, lambda source: inv.fs.rename(source, _target_path(inv, source, target, into), inv.cwd))


def cmd_ln(inv: Invocation) -> int:
    """ln [-sfn] SOURCE... TARGET: hard links, or with -s symbolic links holding SOURCE as given (the
    Sandbox follows them inside the device only). -n: a TARGET that is a link to a folder is replaced,
    not entered."""
    flags, operands = split_flags(inv.args, "fsnvT")

    def link(source: str, dest: str) -> int:
        if "f" in flags and (inv.fs.is_link(dest, inv.cwd) or inv.fs.is_file(dest, inv.cwd)):
            inv.fs.remove(dest, inv.cwd)
        (inv.fs.symlink if "s" in flags else inv.fs.link)(source, dest, inv.cwd)
        return 0

    return _each_destination(inv, operands, link, enter_links="n" not in flags)


def parse_mode(spec: str, current: int, is_dir: bool) -> int:
    """chmod's octal (`755`) or symbolic (`u+x,go-w`, `+x`, `a=rX`) mode applied to `current`."""
    if _is_octal(spec):
        return int(spec, 8)
    mode = current & 0o7777
    for clause in spec.split(","):
        who = ""
        k = 0
        while k < len(clause) and clause[k] in "ugoa":
            who += clause[k]
            k += 1
        if k >= len(clause) or clause[k] not in "+-=":
            raise UsageError(f"bad mode '{spec}'")
        op, perms = clause[k], clause[k + 1 :]
        if any(c not in "rwxX" for c in perms):
            raise UsageError(f"bad mode '{spec}'")
        bits = sum({"r": 4, "w": 2, "x": 1}.get(c, 1 if is_dir or current & 0o111 else 0) for c in set(perms))
        shifts = [{"u": 6, "g": 3, "o": 0}[w] for w in (who.replace("a", "ugo") or "ugo")]
        mask = sum(7 << s for s in shifts)
        value = sum(bits << s for s in shifts)
        if op == "=":
            mode = (mode & ~mask) | value
        elif op == "+":
            mode |= value
        else:
            mode &= ~value
    return mode


def cmd_chmod(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "Rfv")
    if len(operands) < 2:
        inv.err("needs 2 arguments")
        return 1
    spec, *paths = operands

    def change(target: str) -> None:
        st = inv.fs.stat(target, inv.cwd)
        inv.fs.chmod(target, parse_mode(spec, st.st_mode, statmod.S_ISDIR(st.st_mode)), inv.cwd)

    return inv.each([t for path in paths for t in (walk(inv, path) if "R" in flags else [path])], change)


def cmd_touch(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "acm")
    status = 0
    for operand in operands:
        try:
            if not inv.fs.exists(operand, inv.cwd):
                if "c" in flags:
                    continue
                inv.fs.open_write(operand, inv.cwd).close()
            else:
                os.utime(inv.fs.host(operand, inv.cwd, write=True))
        except (DeviceOSError, OSError) as exc:
            message = exc.message if isinstance(exc, DeviceOSError) else "Permission denied"
            inv.err(f"'{operand}': {message}")
            status = 1
    return status


def cmd_mktemp(inv: Invocation) -> int:
    """mktemp [-d] [-p DIR] [TEMPLATE]: a new empty file (or folder) under $TMPDIR by default."""
    args = list(inv.args)
    folder = take_option(args, "p") or inv.env.get("TMPDIR", "/data/local/tmp")
    flags, operands = split_flags(args, "dqt")
    template = operands[0] if operands else "tmp.XXXXXXXXXX"
    stem = template.rstrip("X")
    if len(template) - len(stem) < 3:
        raise UsageError(f"template '{template}' needs at least 3 X")
    path = join_path(folder, stem) if "/" not in template else stem
    for _ in range(100):
        candidate = path + secrets.token_hex(8)[: len(template) - len(stem)]
        if inv.fs.exists(candidate, inv.cwd):
            continue
        try:
            if "d" in flags:
                inv.fs.mkdir(candidate, inv.cwd, mode=0o700)
            else:
                inv.fs.open_write(candidate, inv.cwd, mode=0o600).close()
        except DeviceOSError as exc:
            return inv.fail(candidate, exc)
        inv.out(candidate + "\n")
        return 0
    inv.err(f"cannot create a name from '{template}'")
    return 1


def cmd_dd(inv: Invocation) -> int:
    """dd [if=FILE] [of=FILE] [bs=N] [count=N] [skip=N] [seek=N]: sizes take k, M, G; the records
    report goes to stderr as toybox words it."""
    settings = dict(arg.split("=", 1) for arg in inv.args if "=" in arg)
    unknown = [arg for arg in inv.args if "=" not in arg]
    if unknown:
        raise UsageError(f"unknown argument '{unknown[0]}'")
    bs, count = _size(settings.get("bs", "512")), settings.get("count")
    source = inv.stdin if "if" not in settings else inv.fs.open_read(settings["if"], inv.cwd)
    try:
        data = source.read()
    finally:
        if source is not inv.stdin:
            source.close()
    data = data[_size(settings.get("skip", "0")) * bs :]
    if count is not None:
        data = data[: _size(count) * bs]
    if "of" in settings:
        seek = _size(settings.get("seek", "0")) * bs
        with inv.fs.open_write(settings["of"], inv.cwd) as out:
            out.write(b"\0" * seek + data)
    else:
        inv.out(data)
    full, partial = divmod(len(data), bs)
    records = f"{full}+{int(bool(partial))}"
    inv.fds[2].write(f"{records} records in\n{records} records out\n{len(data)} bytes copied\n".encode())
    return 0


def _size(text: str) -> int:
    units = {"c": 1, "w": 2, "b": 512, "k": 1024, "K": 1024, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    if not number.isdigit():
        raise UsageError(f"invalid number '{text}'")
    return int(number) * unit
