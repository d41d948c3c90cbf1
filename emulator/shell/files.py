"""The device shell's commands that read files (toybox's ls, cat, stat, df, find, ...), on the Sandbox only;
those that change files are in emulator.shell.fileops."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat as statmod
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from emulator.sandbox import ID_NAMES, DeviceOSError
from emulator.shell.builtins import (
    Invocation,
    UsageError,
    read_chunk,
    read_operands,
    split_flags,
)

# ---- file facts shared by ls, stat and find --------------------------------------------------


def join_path(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


def _long_line(inv: Invocation, path: str, label: str) -> str:
    """One `ls -l` line; a symbolic link is described itself, with `-> target`."""
    st = inv.fs.lstat(path, inv.cwd)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime))
    size = st.st_size if not statmod.S_ISDIR(st.st_mode) else 4096
    uid, gid = inv.fs.owner(path, inv.cwd)
    link = f" -> {inv.fs.readlink(path, inv.cwd)}" if statmod.S_ISLNK(st.st_mode) else ""
    return f"{statmod.filemode(st.st_mode)} 1 {ID_NAMES[uid]} {ID_NAMES[gid]} {size} {when} {label}{link}"


# ---- listing and reading -------------------------------------------------------------------


def cmd_ls(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "laAdR1hF")
    status = 0
    files, folders = [], []
    for operand in operands or ["."]:
        try:  # with -l or -d a link operand is listed itself, else what it leads to
            st = (inv.fs.lstat if flags & {"l", "d"} else inv.fs.stat)(operand, inv.cwd)
        except DeviceOSError as exc:
            status = inv.fail(operand, exc)
            continue
        (folders if statmod.S_ISDIR(st.st_mode) and "d" not in flags else files).append(operand)
    files.sort()  # as toybox sorts its operands
    folders.sort()
    for path in files:
        inv.out((_long_line(inv, path, path) if "l" in flags else path) + "\n")
    for k, folder in enumerate(folders):
        if len(operands) > 1 or files or "R" in flags:
            inv.out(("\n" if k or files else "") + f"{folder}:\n")
        status = _list_folder(inv, folder, flags) or status
    return status


def _list_folder(inv: Invocation, folder: str, flags: set[str]) -> int:
    try:
        names = inv.fs.listdir(folder, inv.cwd)
    except DeviceOSError as exc:
        return inv.fail(folder, exc)
    shown = ([".", ".."] if "a" in flags else []) + [n for n in names if "a" in flags or "A" in flags
                                                    or not n.startswith(".")]
    if "l" in flags:
        inv.out(f"total {len(shown)}\n")
    for name in shown:
        inv.out((_long_line(inv, join_path(folder, name), name) if "l" in flags else name) + "\n")
    status = 0
    if "R" in flags:
        for name in shown:
            path = join_path(folder, name)
            if name not in (".", "..") and inv.fs.is_dir(path, inv.cwd) and not inv.fs.is_link(path, inv.cwd):
                inv.out(f"\n{path}:\n")
                status = _list_folder(inv, path, flags) or status
    return status


def cmd_cat(inv: Invocation) -> int:
    _flags, operands = split_flags(inv.args, "uv")
    status = 0
    for operand in operands or ["-"]:
        if operand == "-":
            while chunk := read_chunk(inv.stdin):
                inv.out(chunk)
            continue
        try:
            with inv.fs.open_read(operand, inv.cwd) as f:
                while chunk := f.read(1 << 20):
                    inv.out(chunk)
        except DeviceOSError as exc:
            status = inv.fail(operand, exc)
    return status


def _count_option(args: list[str], default: int) -> tuple[int, bool, bool, list[str]]:
    """head/tail: (-n N | -nN | -N | -c N) -> (count, count bytes?, from start (+N)?, operands)."""
    count, use_bytes, from_start, rest = default, False, False, []
    k = 0
    while k < len(args):
        arg = args[k]
        if arg[:2] in ("-n", "-c") and (len(arg) > 2 or k + 1 < len(args)):
            use_bytes = arg[:2] == "-c"
            value = arg[2:] if len(arg) > 2 else args[k + 1]
            from_start = value.startswith("+")
            count = _number(value.lstrip("+"))
            k += 1 if len(arg) > 2 else 2
            continue
        if arg[:1] == "-" and arg[1:].isdigit():
            count = int(arg[1:])
        elif arg not in ("-q", "-v"):
            rest.append(arg)
        k += 1
    return count, use_bytes, from_start, rest


def _number(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"invalid number '{text}'")
    return int(text)


def cmd_head(inv: Invocation) -> int:
    """Copies only what it prints: from a pipe it stops reading (and its writer gets SIGPIPE) once done."""
    count, use_bytes, _, operands = _count_option(inv.args, 10)
    status = 0
    for k, operand in enumerate(operands or ["-"]):
        try:
            source = inv.stdin if operand == "-" else inv.fs.open_read(operand, inv.cwd)
        except DeviceOSError as exc:
            status = inv.fail(operand, exc)
            continue
        if len(operands) > 1:
            inv.out(("\n" if k else "") + f"==> {operand} <==\n")
        try:
            _copy_head(inv, source, count, use_bytes)
        finally:
            if source is not inv.stdin:
                source.close()
    return status


def _copy_head(inv: Invocation, source: BinaryIO, count: int, use_bytes: bool) -> None:
    left = count
    while left > 0:
        data = source.read(min(left, 1 << 16)) if use_bytes else source.readline()
        if not data:
            return
        inv.out(data)
        left -= len(data) if use_bytes else 1


def cmd_tail(inv: Invocation) -> int:
    count, use_bytes, from_start, operands = _count_option(inv.args, 10)

    def cut(data: bytes) -> bytes | list[bytes]:
        items = data if use_bytes else _lines(data)
        if from_start:
            return items[max(count - 1, 0) :]
        return items[len(items) - count :] if count else items[:0]

    return _slice(inv, operands, cut)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _slice(inv: Invocation, operands: list[str], cut: Callable[[bytes], bytes | list[bytes]]) -> int:
    status = 0
    results = read_operands(inv, operands)
    for k, (name, content) in enumerate(results):
        if content is None:
            status = 1
            continue
        if len(results) > 1:
            inv.out(("\n" if k else "") + f"==> {name} <==\n")
        part = cut(content)
        inv.out(part if isinstance(part, bytes) else b"".join(part))
    return status


def cmd_wc(inv: Invocation) -> int:
    """Counts as toybox prints them: padded to 7 columns when several files (then a total line) or
    several counts of stdin, plain for one file or one count of stdin."""
    flags, operands = split_flags(inv.args, "clwm")
    chosen = [f for f in "lwc" if f in flags or (f == "c" and "m" in flags)] or ["l", "w", "c"]
    pad = len(operands) > 1 or (not operands and len(chosen) > 1)
    status, totals = 0, dict.fromkeys(chosen, 0)

    def line(counts: dict[str, int], label: str) -> str:
        numbers = [str(counts[f]).rjust(7) if pad else str(counts[f]) for f in chosen]
        return " ".join(numbers) + (f" {label}" if label else "") + "\n"

    for name, content in read_operands(inv, operands):
        if content is None:
            status = 1
            continue
        counts = {"l": content.count(b"\n"), "w": len(content.split()), "c": len(content)}
        for f in chosen:
            totals[f] += counts[f]
        inv.out(line(counts, "" if name == "-" and not operands else name))
    if len(operands) > 1:
        inv.out(line(totals, "total"))
    return status


def _hash_command(inv: Invocation, algorithm: str) -> int:
    _flags, operands = split_flags(inv.args, "b")
    status = 0
    for operand in operands or ["-"]:
        digest = hashlib.new(algorithm)
        try:
            source = inv.stdin if operand == "-" else inv.fs.open_read(operand, inv.cwd)
            while chunk := source.read(1 << 20):
                digest.update(chunk)
            if operand != "-":
                source.close()
        except DeviceOSError as exc:
            status = inv.fail(operand, exc)
            continue
        inv.out(f"{digest.hexdigest()}  {operand}\n")
    return status


def cmd_md5sum(inv: Invocation) -> int:
    return _hash_command(inv, "md5")


def cmd_sha1sum(inv: Invocation) -> int:
    return _hash_command(inv, "sha1")


def cmd_sha256sum(inv: Invocation) -> int:
    return _hash_command(inv, "sha256")


def cmd_tee(inv: Invocation) -> int:
    flags, operands = split_flags(inv.args, "a")
    outputs, status = [], 0
    for operand in operands:
        try:
            outputs.append(inv.fs.open_write(operand, inv.cwd, append="a" in flags))
        except DeviceOSError as exc:
            status = inv.fail(operand, exc)
    try:
        while chunk := read_chunk(inv.stdin):
            inv.out(chunk)
            for f in outputs:
                f.write(chunk)
    finally:
        for f in outputs:
            f.close()
    return status


# ---- file facts ----------------------------------------------------------------------------


def _stat_field(inv: Invocation, path: str, st: os.stat_result, key: str) -> str:
    kind = "directory" if statmod.S_ISDIR(st.st_mode) else (
        "regular file" if st.st_size else "regular empty file")
    uid, gid = inv.fs.owner(path, inv.cwd)
    values = {
        "s": str(st.st_size), "a": f"{statmod.S_IMODE(st.st_mode):o}", "A": statmod.filemode(st.st_mode),
        "n": path, "N": f"'{path}'", "F": kind, "U": ID_NAMES[uid], "G": ID_NAMES[gid],
        "u": str(uid), "g": str(gid),
        "Y": str(int(st.st_mtime)), "X": str(int(st.st_atime)), "b": str((st.st_size + 511) // 512), "B": "512",
        "h": str(st.st_nlink), "i": str(st.st_ino), "f": f"{st.st_mode:x}", "y": time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
    }
    if key not in values:
        raise UsageError(f"bad -c format '%{key}'")
    return values[key]


def _format_stat(inv: Invocation, path: str, st: os.stat_result, fmt: str) -> str:
    out, k = [], 0
    while k < len(fmt):
        if fmt[k] == "%" and k + 1 < len(fmt):
            out.append("%" if fmt[k + 1] == "%" else _stat_field(inv, path, st, fmt[k + 1]))
            k += 2
        else:
            out.append(fmt[k])
            k += 1
    return "".join(out)


_STAT_DEFAULT = (
    "  File: %N\n  Size: %s\t Blocks: %b\t IO Blocks: 4096\t%F\n"
    "Access: (%a/%A)\tUid: ( %u/ %U)\tGid: ( %g/ %G)\nModify: %y\n"
)


def cmd_stat(inv: Invocation) -> int:
    args = list(inv.args)
    fmt = _STAT_DEFAULT
    for option in ("-c", "--format", "--printf"):
        if option in args:
            k = args.index(option)
            if k + 1 >= len(args):
                raise UsageError(f"option requires an argument -- {option.lstrip('-')}")
            fmt = args[k + 1] + ("" if option == "--printf" else "\n")
            del args[k : k + 2]
    _flags, operands = split_flags(args, "Lf")
    if not operands:
        inv.err("needs 1 argument")
        return 1
    status = 0
    for operand in operands:
        try:
            st = inv.fs.stat(operand, inv.cwd)
        except DeviceOSError as exc:
            inv.err(f"{operand}: {exc.message}")
            status = 1
            continue
        inv.out(_format_stat(inv, operand, st, fmt))
    return status


def cmd_df(inv: Invocation) -> int:
    """/data and /sdcard share the device's storage quota, as on a phone with emulated storage."""
    flags, operands = split_flags(inv.args, "hkPa")
    fs = inv.fs
    mounts = {"/data": "/dev/block/dm-48", "/sdcard": "/dev/fuse"}
    wanted = [m for m in mounts if not operands or any(
        fs.norm(o, inv.cwd) == m or fs.norm(o, inv.cwd).startswith(m + "/") for o in operands)]
    used, free = fs.used_bytes(), fs.free_bytes()
    size = used + free

    def show(n: int) -> str:
        return _human(n) if "h" in flags else str(n // 1024)

    header = "Size" if "h" in flags else "1K-blocks"
    inv.out(f"Filesystem        {header:>10} {'Used':>10} {'Available':>10} Use% Mounted on\n")
    for mount in wanted:
        percent = f"{(100 * used + size - 1) // size if size else 100}%"
        inv.out(f"{mounts[mount]:<17} {show(size):>10} {show(used):>10} {show(free):>10} {percent:>4} {mount}\n")
    return 0


def _human(n: int) -> str:
    value = float(n)
    for unit in ("", "K", "M", "G"):
        if value < 1024:
            return f"{int(value)}{unit}" if not unit or value >= 10 else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def walk(inv: Invocation, top: str, depth: int = 0, max_depth: int | None = None) -> Iterator[str]:
    """`top` and everything below it (pre-order, sorted), as paths spelled from `top`."""
    for path, _folder in walk_kinds(inv, top, depth, max_depth):
        yield path


def walk_kinds(inv: Invocation, top: str, depth: int = 0, max_depth: int | None = None) -> Iterator[tuple[str, bool]]:
    """walk(), with whether each path is a folder to descend into (a link to one is not followed)."""
    folder = inv.fs.is_dir(top, inv.cwd) and not inv.fs.is_link(top, inv.cwd)
    yield top, folder
    if (max_depth is not None and depth >= max_depth) or not folder:
        return
    for name in inv.fs.listdir(top, inv.cwd):
        yield from walk_kinds(inv, join_path(top, name), depth + 1, max_depth)


def cmd_find(inv: Invocation) -> int:
    """find [PATH...] with -name/-iname/-path PAT, -type f|d, -size [+-]N[ckMG], -mtime [+-]N,
    -maxdepth N, -mindepth N, -print, and -exec CMD {} ; (once per path) or + (once for all)."""
    args = list(inv.args)
    roots = []
    while args and not args[0].startswith("-") and args[0] not in ("!", "("):
        roots.append(args.pop(0))
    tests, max_depth, min_depth, execs = [], None, 0, []
    while args:
        option = args.pop(0)
        if option == "-print":
            continue
        if option == "-exec":
            end = next((k for k, a in enumerate(args) if a in (";", "+")), None)
            if end is None or not args[:end]:
                raise UsageError("-exec needs a command ending in ';' or '+'")
            execs.append((args[:end], args[end] == "+"))
            args = args[end + 1 :]
            continue
        if not args:
            raise UsageError(f"'{option}' needs 1 arg")
        value = args.pop(0)
        if option in ("-name", "-iname", "-type", "-path", "-size", "-mtime"):
            tests.append((option, value))
        elif option in ("-maxdepth", "-mindepth"):
            depth = _number(value)
            max_depth, min_depth = (depth, min_depth) if option == "-maxdepth" else (max_depth, depth)
        else:
            raise UsageError(f"bad arg '{option}'")
    status, found = 0, []
    for root in roots or ["."]:
        if not inv.fs.exists(root, inv.cwd):
            status = inv.fail(root, DeviceOSError(root, "No such file or directory"))
            continue
        for path, folder in walk_kinds(inv, root, max_depth=max_depth):
            depth = path[len(root) :].count("/") if path != root else 0
            if depth >= min_depth and all(_find_test(inv, path, folder, t) for t in tests):
                if not execs:
                    inv.out(path + "\n")
                found.append(path)
                for command, batched in execs:
                    if not batched:
                        status = _find_exec(inv, command, [path]) or status
    for command, batched in execs:
        if batched and found:
            status = _find_exec(inv, command, found) or status
    return status


def _find_exec(inv: Invocation, command: list[str], paths: list[str]) -> int:
    """-exec: `{}` is the path (with +, all the paths in its place)."""
    if len(paths) == 1 and not any(a == "{}" for a in command):
        argv = [a.replace("{}", paths[0]) for a in command]
    else:
        argv = [x for a in command for x in (paths if a == "{}" else [a.replace("{}", paths[0])])]
    return 1 if inv.interp.dispatch(argv, inv.env, inv.fds) else 0


def _compare_number(spec: str, actual: float) -> bool:
    """find's N, +N (more than) and -N (less than)."""
    if spec[:1] == "+":
        return actual > float(spec[1:])
    if spec[:1] == "-":
        return actual < float(spec[1:])
    return actual == float(spec)


def _find_test(inv: Invocation, path: str, folder: bool, test: tuple[str, str]) -> bool:
    option, value = test
    name = path.rstrip("/").rpartition("/")[2] or path
    if option == "-size":
        units = {"c": 1, "k": 1024, "M": 1 << 20, "G": 1 << 30}
        unit = units.get(value[-1:], 512)
        number_part = value[:-1] if value[-1:] in units or value[-1:] == "b" else value
        blocks = -(-inv.fs.stat(path, inv.cwd).st_size // unit)  # rounded up, as find counts
        return _compare_number(number_part, blocks)
    if option == "-mtime":
        age_days = int((time.time() - inv.fs.stat(path, inv.cwd).st_mtime) // 86400)
        return _compare_number(value, age_days)
    if option == "-name":
        return fnmatch.fnmatchcase(name, value)
    if option == "-iname":
        return fnmatch.fnmatchcase(name.lower(), value.lower())
    if option == "-path":
        return fnmatch.fnmatchcase(path, value)
    if value == "d":
        return folder
    if value in "fl":
        return (value == "l") == inv.fs.is_link(path, inv.cwd) and not folder
    if value in "bcps":
        return False
    raise UsageError(f"bad -type '{value}'")


def cmd_realpath(inv: Invocation) -> int:
    """realpath and readlink -f/-e/-m: canonical device paths, links followed; plain readlink: what a
    link holds (exit 1, silent, for anything else)."""
    flags, operands = split_flags(inv.args, "fenmq")
    if inv.name == "readlink" and not flags & {"f", "e", "m"}:
        try:
            targets = [inv.fs.readlink(operand, inv.cwd) for operand in operands]
        except DeviceOSError:
            return 1
        inv.out("".join(f"{target}\n" for target in targets))
        return 0 if targets else 1
    status = 0
    for operand in operands:
        path = inv.fs.resolve(operand, inv.cwd)
        if "m" not in flags and not inv.fs.exists(path):
            status = inv.fail(operand, DeviceOSError(operand, "No such file or directory"))
            continue
        inv.out(path + "\n")
    return status


def cmd_du(inv: Invocation) -> int:
    """du [-s] [-k|-h] [PATH...]: kilobytes (rounded up) of the files below each path."""
    flags, operands = split_flags(inv.args, "skha")
    status = 0
    for root in operands or ["."]:
        if not inv.fs.exists(root, inv.cwd):
            status = inv.fail(root, DeviceOSError(root, "No such file or directory"))
            continue
        total = sum(inv.fs.stat(p, inv.cwd).st_size for p in walk(inv, root) if inv.fs.is_file(p, inv.cwd))
        size = _human(total) if "h" in flags else str((total + 1023) // 1024)
        inv.out(f"{size}\t{root}\n")
    return status
