"""gzip, gunzip, zcat and tar for packing results, on Python's gzip and tarfile with every file
read and written through the Sandbox (an archive's names never leave the folder it is unpacked in)."""

from __future__ import annotations

import gzip
import io
import stat as statmod
import tarfile
import zlib
from typing import BinaryIO

from emulator.sandbox import DeviceOSError
from emulator.shell.builtins import Invocation, UsageError, getopt
from emulator.shell.files import join_path, walk_kinds


def _decompress(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"not in gzip format ({exc})") from None


def cmd_gzip(inv: Invocation) -> int:
    """gzip [-d] [-c] [-k] [-f] [-1..9] [FILE...]: FILE becomes FILE.gz (or back with -d); no FILE,
    or -c, writes to stdout. gunzip is gzip -d, zcat gzip -dc."""
    opts = getopt(inv.args, "cdfkqnv123456789")
    decompress = "d" in opts.flags or inv.name in ("gunzip", "zcat")
    to_stdout = "c" in opts.flags or inv.name == "zcat" or not opts.operands
    level = max([int(c) for c in opts.flags if c.isdigit()] or [6])
    convert = (lambda data: _decompress(data)) if decompress else (lambda data: gzip.compress(data, level, mtime=0))
    if not opts.operands:
        inv.out(convert(inv.stdin.read()))
        return 0

    def one(name: str) -> None:
        if decompress and not to_stdout and not name.endswith(".gz"):
            raise DeviceOSError(name, "unknown suffix")
        with inv.fs.open_read(name, inv.cwd) as f:
            result = convert(f.read())
        if to_stdout:
            inv.out(result)
            return
        target = name[:-3] if decompress else name + ".gz"
        if inv.fs.exists(target, inv.cwd) and "f" not in opts.flags:
            raise DeviceOSError(target, "File exists")
        with inv.fs.open_write(target, inv.cwd, atomic=True) as out:
            out.write(result)
        if "k" not in opts.flags:
            inv.fs.remove(name, inv.cwd)

    return inv.each(opts.operands, one)


def _member(inv: Invocation, path: str, folder: bool) -> tuple[tarfile.TarInfo, BinaryIO | None]:
    """A file, folder or symbolic link (stored as a link, as tar does without -h)."""
    st = inv.fs.lstat(path, inv.cwd)
    info = tarfile.TarInfo(path.lstrip("/") or ".")
    info.mode, info.mtime = statmod.S_IMODE(st.st_mode), int(st.st_mtime)
    info.uname = info.gname = "shell"
    info.uid = info.gid = 2000
    if statmod.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, inv.fs.readlink(path, inv.cwd)
        return info, None
    if folder:
        info.type = tarfile.DIRTYPE
        return info, None
    info.size = st.st_size
    return info, inv.fs.open_read(path, inv.cwd)


def _safe_name(name: str) -> str | None:
    """A member's path relative to where it unpacks, or None for one that would climb out."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return None if ".." in parts or not parts else "/".join(parts)


def cmd_tar(inv: Invocation) -> int:
    """tar c|x|t [z] [v] [f ARCHIVE] [-C DIR] [FILE...]: create, extract or list (`-` is stdin/stdout);
    z gzips, and extraction and listing recognise a gzipped archive by itself."""
    args = list(inv.args)
    if args and not args[0].startswith("-"):
        args[0] = "-" + args[0]
    opts = getopt(args, "cxtzvjO", "fC")
    modes = opts.flags & {"c", "x", "t"}
    if len(modes) != 1:
        raise UsageError("needs one of c, x, t")
    archive = opts.last("f", "-") or "-"
    where = opts.last("C", ".") or "."
    if "c" in opts.flags:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for operand in opts.operands:
                for path, folder in walk_kinds(inv, join_path(where, operand) if where != "." else operand):
                    info, data = _member(inv, path, folder)
                    info.name = path[len(where) + 1 :] if where != "." else info.name
                    if "v" in opts.flags:
                        inv.fds[2].write(f"{info.name}\n".encode())
                    tar.addfile(info, data)
                    if data is not None:
                        data.close()
        data = buffer.getvalue()
        data = gzip.compress(data, mtime=0) if "z" in opts.flags else data
        if archive == "-":
            inv.out(data)
        else:
            with inv.fs.open_write(archive, inv.cwd, atomic=True) as out:
                out.write(data)
        return 0
    if archive == "-":
        data = inv.stdin.read()
    else:
        with inv.fs.open_read(archive, inv.cwd) as f:
            data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = _decompress(data)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            _read_members(inv, tar, opts.flags, opts.operands, where)
    except tarfile.TarError as exc:
        raise UsageError(f"not a tar archive ({exc})") from None
    return 0


def _read_members(inv: Invocation, tar: tarfile.TarFile, flags: set[str], wanted: list[str], where: str) -> None:
    """t lists (folders with a final /), x extracts; only the members `wanted` names when it names any."""
    for info in tar.getmembers():
        name = _safe_name(info.name)
        if name is None or (wanted and not any(name == w or name.startswith(w.rstrip("/") + "/") for w in wanted)):
            continue
        shown = f"{name}/" if info.isdir() else name
        if "t" in flags:
            inv.out(f"{shown}\n")
        elif "v" in flags:
            inv.fds[2].write(f"{shown}\n".encode())
        if "x" in flags:
            _extract(inv, tar, info, join_path(where, name) if where != "." else name, "O" in flags)


def _extract(inv: Invocation, tar: tarfile.TarFile, info: tarfile.TarInfo, path: str, to_stdout: bool) -> None:
    if info.isdir():
        if not to_stdout:
            inv.fs.mkdir(path, inv.cwd, parents=True)
        return
    if not info.isfile():
        return  # links and devices: the sandbox has none
    source = tar.extractfile(info)
    content = source.read() if source else b""
    if to_stdout:
        inv.out(content)
        return
    folder = path.rpartition("/")[0]
    if folder and not inv.fs.is_dir(folder, inv.cwd):
        inv.fs.mkdir(folder, inv.cwd, parents=True)
    with inv.fs.open_write(path, inv.cwd, atomic=True, mode=info.mode & 0o777 or 0o644) as out:
        out.write(content)
