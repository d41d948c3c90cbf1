"""The device's filesystem: one host folder per device, seen by clients as an Android-like tree.

`Sandbox.host()` is the only place a device path becomes a host path, so its checks (no escape
through `..`, symlinks or absolute host paths; writes only under the writable areas) cannot be
bypassed. Storage use is a running total, so quota checks cost nothing per write.

The system image's executables (emulator.programs.system_image()) have no host file: the Sandbox
answers for them as empty read-only 0755 files, and virtual folders (`/proc`, `/sys`: the device
image's, emulator.image.tree) are served from their VirtualFiles and never looked for on the host,
so every view of the tree (the shell, sync) agrees.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import shutil
import stat as statmod
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Protocol

from emulator.programs import system_image

NOENT = "No such file or directory"
ACCES = "Permission denied"
NOSPC = "No space left on device"
NOTDIR = "Not a directory"
ISDIR = "Is a directory"
EXIST = "File exists"
ROFS = "Read-only file system"
NOTEMPTY = "Directory not empty"
INVAL = "Invalid argument"
LOOP = "Too many symbolic links encountered"  # bionic's strerror(ELOOP)
MAX_LINKS = 40  # links followed in one path before ELOOP, as Linux's MAXSYMLINKS
LINK_PREFIX = ".edgeloop-link:"  # what a device symlink's host link points at, before its encoded target

WRITABLE = ("/data/local/tmp", "/sdcard")
READ_ONLY = ("/system", "/vendor")
TREE = ("/data/local/tmp", "/sdcard", "/system/bin", "/system/lib64", "/system/etc", "/vendor/lib64")
HEXAGON_TREE = ("/vendor/lib/rfsa/adsp",)
PARTIAL_PREFIX = ".edgeloop-partial-"  # in-flight atomic writes; hidden from listings
ROOT_ID, SHELL_ID, SDCARD_RW_GID = 0, 2000, 1015
ID_NAMES = {ROOT_ID: "root", SHELL_ID: "shell", SDCARD_RW_GID: "sdcard_rw"}
IMAGE_TIME = 1230768000  # 2009-01-01 00:00 UTC: the fixed mtime Android's build gives system image files
# An image executable: root-owned, group shell, 0755, empty (st_mode, ino, dev, nlink, uid, gid, size, times).
IMAGE_STAT = os.stat_result((statmod.S_IFREG | 0o755, 0, 0, 1, 0, 2000, 0, IMAGE_TIME, IMAGE_TIME, IMAGE_TIME))

_ERRNO_MESSAGES = {
    errno.ENOENT: NOENT,
    errno.EACCES: ACCES,
    errno.EPERM: ACCES,
    errno.ENOSPC: NOSPC,
    errno.ENOTDIR: NOTDIR,
    errno.EISDIR: ISDIR,
    errno.EEXIST: EXIST,
    errno.EROFS: ROFS,
    errno.ENOTEMPTY: NOTEMPTY,
    errno.ELOOP: LOOP,
    errno.ENAMETOOLONG: NOENT,
}


class VirtualFiles(Protocol):
    """Folders made up as they are read (emulator.image.tree.VirtualTree); errors are DeviceOSErrors."""

    roots: tuple[str, ...]  # the device folders served, e.g. ("/proc", "/sys")

    def stat(self, path: str) -> os.stat_result: ...

    def listdir(self, path: str) -> list[str]: ...

    def read(self, path: str) -> bytes: ...


class DeviceOSError(Exception):
    """An errno-style failure as a device reports it; str() is the message, e.g. 'Permission denied'."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextmanager
def _device_errors(path: str) -> Iterator[None]:
    """Host OSErrors become the message a device would print; nothing host-specific leaks out."""
    try:
        yield
    except DeviceOSError:
        raise
    except OSError as exc:
        raise DeviceOSError(path, _ERRNO_MESSAGES.get(exc.errno or 0, ACCES)) from None
    except ValueError:  # embedded NUL and the like
        raise DeviceOSError(path, NOENT) from None


def _under(path: str, area: str) -> bool:
    return path == area or path.startswith(area + "/")


class _QuotaWriter:
    """A file opened for writing whose every write is charged to the sandbox before it happens."""

    def __init__(self, fs: Sandbox, device_path: str, f: BinaryIO, tmp: Path | None, target: Path) -> None:
        self._fs = fs
        self._path = device_path
        self._f = f
        self._tmp = tmp
        self._target = target
        self._written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        n = len(data)
        self._fs._charge(self._path, n)
        try:
            self._f.write(data)
            if self._tmp is None:  # a plain file shows what was written at once, as on a device
                self._f.flush()
        except OSError:
            self._fs._charge(self._path, -n)
            raise
        self._written += n
        return n

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._f.flush()

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        """Finish the write; an atomic write becomes visible only now."""
        if self.closed:
            return
        self.closed = True
        self._f.close()
        if self._tmp is not None:
            with _device_errors(self._path):
                replaced = _own_size(self._target)
                os.replace(self._tmp, self._target)
            self._fs._charge(self._path, -replaced, check=False)

    def abort(self) -> None:
        """Drop an atomic write (or truncate nothing for a plain one): no partial file survives."""
        if self.closed:
            return
        self.closed = True
        self._f.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._fs._charge(self._path, -self._written, check=False)

    def __enter__(self) -> _QuotaWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _OwnerBits:
    """The owner permission bits the device gave its files and folders where the host file cannot
    carry them: a host file always lets its owner (the device process) read and write it, and enter a
    folder, so the device can manage its own tree whatever a client's chmod said (`chmod 444`, `chmod
    0`). Kept by inode, so a hard link shares them and a rename keeps them, as the kernel keeps a
    mode; saved beside the sandbox (`<sandbox>.modes.json`) so they survive a restart with the storage."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._bits: dict[tuple[int, int], int] = {}
        with suppress(OSError, ValueError, TypeError):  # none saved yet (or unreadable): none kept
            self._bits = {(int(dev), int(ino)): int(bits) for dev, ino, bits in json.loads(path.read_text())}

    def record(self, host: Path, mode: int) -> None:
        """`host` now has the device mode `mode` (a new file, or a chmod)."""
        st = os.lstat(host)
        key, bits = (st.st_dev, st.st_ino), mode & 0o700
        with self._lock:
            if bits == st.st_mode & 0o700:
                if self._bits.pop(key, None) is None:
                    return
            else:
                self._bits[key] = bits
            tmp = self._path.with_name(self._path.name + ".tmp")
            tmp.write_text(json.dumps([[dev, ino, value] for (dev, ino), value in self._bits.items()]))
            os.replace(tmp, self._path)

    def apply(self, st: os.stat_result) -> os.stat_result:
        """The stat the device reports: the host's, with the device's owner bits."""
        bits = self._bits.get((st.st_dev, st.st_ino))
        return st if bits is None else _changed(st, mode=(st.st_mode & ~0o700) | bits)


_STAT_EXTRA = ("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blksize",
               "st_blocks")


def _changed(st: os.stat_result, *, mode: int | None = None, size: int | None = None) -> os.stat_result:
    """A copy of `st` with another mode or size (every other field, nanosecond times included, kept)."""
    fields = list(st)
    fields[statmod.ST_MODE] = st.st_mode if mode is None else mode
    fields[statmod.ST_SIZE] = st.st_size if size is None else size
    return os.stat_result(fields, {name: getattr(st, name) for name in _STAT_EXTRA})


class Sandbox:
    """An Android-like tree under `root` with a storage quota (bytes of regular files)."""

    def __init__(self, root: Path, quota_bytes: int, *, hexagon: bool = False,
                 virtual: VirtualFiles | None = None) -> None:
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self.virtual = virtual
        self.storage_full = False  # the storage_full fault: every write fails as if the disk were full
        self._lock = threading.Lock()
        for area in TREE + (HEXAGON_TREE if hexagon else ()):
            (self.root / area.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)
        self._used = self._scan()
        self._owner_bits = _OwnerBits(self.root.with_name(self.root.name + ".modes.json"))

    def _scan(self) -> int:
        """Total size of the tree (a file with several hard links counted once), removing partial files
        a killed device left behind."""
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(PARTIAL_PREFIX):
                    os.unlink(os.path.join(folder, name))
        return sum(size for size, _links, _seen in _inodes(self.root).values())

    # ---- paths -------------------------------------------------------------------------

    def norm(self, path: str, cwd: str = "/") -> str:
        """Device-absolute path with '.' and '..' resolved; '..' at '/' stays at '/'."""
        if not path.startswith("/"):
            path = f"{cwd.rstrip('/')}/{path}"
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def _virtual(self, device: str) -> VirtualFiles | None:
        """The virtual files serving this (normalised) path, if a virtual folder holds it."""
        if self.virtual is not None and any(_under(device, root) for root in self.virtual.roots):
            return self.virtual
        return None

    def resolve(self, path: str, cwd: str = "/", *, follow: bool = True) -> str:
        """The device path `path` names once its symbolic links are followed (the last component's
        only with `follow`), component by component as the kernel does: an absolute target starts
        again at the device's `/` and `..` never climbs above it, so no link leads out of the device."""
        pending = (path if path.startswith("/") else f"{cwd}/{path}").split("/")
        resolved: list[str] = []
        links = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                del resolved[-1:]
                continue
            last = all(p in ("", ".") for p in pending) and not path.endswith("/")
            target = None if last and not follow else self._link_target("/" + "/".join([*resolved, part]))
            if target is None:
                resolved.append(part)
                continue
            links += 1
            if links > MAX_LINKS:
                raise DeviceOSError(self.norm(path, cwd), LOOP)
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
        return "/" + "/".join(resolved)

    def _link_target(self, device: str) -> str | None:
        """The target of the device's symbolic link at `device` (normalised, its folders resolved), or
        None. A host symlink the device did not make is no device link: host() judges where it leads."""
        if self._virtual(device):
            return None
        try:
            raw = os.readlink(os.path.join(self._real_root, device.lstrip("/")))
        except (OSError, ValueError):
            return None
        return urllib.parse.unquote(raw[len(LINK_PREFIX):]) if raw.startswith(LINK_PREFIX) else None

    def host(self, path: str, cwd: str = "/", *, write: bool = False, follow: bool = True) -> Path:
        """Map a device path to its host path (links followed, the last one only with `follow`);
        refuse escapes and writes outside writable areas."""
        device = self.resolve(path, cwd, follow=follow)
        if "\0" in device:
            raise DeviceOSError(device, NOENT)
        host = os.path.join(self._real_root, device.lstrip("/")) if device != "/" else self._real_root
        if follow or device == "/":
            real = os.path.realpath(host)
        else:  # the entry itself (a link is not followed): where its folder really is
            real = os.path.join(os.path.realpath(os.path.dirname(host)), os.path.basename(host))
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise DeviceOSError(device, ACCES)
        if write:
            self._check_writable(device, "/" + os.path.relpath(real, self._real_root).replace(os.sep, "/"))
        return Path(host)

    def _check_writable(self, device: str, resolved: str) -> None:
        resolved = "/" if resolved == "/." else resolved
        for candidate in (device, resolved):
            if any(_under(candidate, area) and candidate != area for area in WRITABLE):
                continue
            if any(_under(candidate, area) for area in READ_ONLY):
                raise DeviceOSError(device, ROFS)
            raise DeviceOSError(device, ACCES)

    # ---- queries -----------------------------------------------------------------------

    def _mode(self, path: str, cwd: str) -> int | None:
        try:
            return self.stat(path, cwd).st_mode
        except DeviceOSError:
            return None

    def exists(self, path: str, cwd: str = "/") -> bool:
        return self._mode(path, cwd) is not None

    def is_dir(self, path: str, cwd: str = "/") -> bool:
        return statmod.S_ISDIR(self._mode(path, cwd) or 0)

    def is_file(self, path: str, cwd: str = "/") -> bool:
        return statmod.S_ISREG(self._mode(path, cwd) or 0)

    def stat(self, path: str, cwd: str = "/") -> os.stat_result:
        device = self.resolve(path, cwd)
        if virtual := self._virtual(device):
            return virtual.stat(device)
        host = self.host(device)
        with _device_errors(device):
            return self._owner_bits.apply(_image_fallback(device, os.stat, host))

    def lstat(self, path: str, cwd: str = "/") -> os.stat_result:
        """Of the entry itself: a symlink is described, not followed (its folder is checked)."""
        device = self.resolve(path, cwd, follow=False)
        if device == "/" or self._virtual(device):  # virtual files have no symlinks
            return self.stat(device)
        host = self.host(device, follow=False)
        with _device_errors(device):
            st = _image_fallback(device, os.lstat, host)
        target = self._link_target(device)
        if target is not None:  # the size of its target's text, as Linux reports
            return _changed(st, size=len(target.encode("utf-8", "surrogateescape")))
        return self._owner_bits.apply(st)

    def is_link(self, path: str, cwd: str = "/") -> bool:
        try:
            return statmod.S_ISLNK(self.lstat(path, cwd).st_mode)
        except DeviceOSError:
            return False

    def readlink(self, path: str, cwd: str = "/") -> str:
        """What the symbolic link at `path` holds; `Invalid argument` for anything else, as readlink(2)."""
        device = self.resolve(path, cwd, follow=False)
        target = self._link_target(device)
        if target is None:
            self.lstat(device)  # no such entry at all: that error
            raise DeviceOSError(device, INVAL)
        return target

    def symlink(self, target: str, path: str, cwd: str = "/") -> None:
        """A symbolic link at `path` (in a writable area) holding `target`, a device path that is only
        read when the link is followed. On the host it is a link to a name with no `/` in it
        (LINK_PREFIX and the target, percent-encoded): whatever follows it on the host stays in its folder."""
        device = self.resolve(path, cwd, follow=False)
        host = self.host(device, write=True, follow=False)
        if not target or "\0" in target:
            raise DeviceOSError(device, NOENT)
        with _device_errors(device):
            os.symlink(LINK_PREFIX + urllib.parse.quote(target, safe=""), host)

    def owner(self, path: str, cwd: str = "/") -> tuple[int, int]:
        """The uid and gid the device reports (host files all belong to the host user): the writable
        areas are the shell user's (shared storage with group sdcard_rw), the image's executables
        root:shell, everything else root's. One answer for the shell's ls/stat and sync's STA2."""
        device = self.resolve(path, cwd)
        if virtual := self._virtual(device):
            st = virtual.stat(device)
            return st.st_uid, st.st_gid
        if _under(device, "/sdcard"):
            return SHELL_ID, SDCARD_RW_GID
        if any(_under(device, area) for area in WRITABLE):
            return SHELL_ID, SHELL_ID
        return ROOT_ID, SHELL_ID if _under(device, "/system/bin") else ROOT_ID

    def listdir(self, path: str, cwd: str = "/") -> list[str]:
        device = self.resolve(path, cwd)
        if virtual := self._virtual(device):
            return virtual.listdir(device)
        host = self.host(device)
        with _device_errors(device):
            names = {name for name in os.listdir(host) if not name.startswith(PARTIAL_PREFIX)}
        made_up = [*system_image(), *(self.virtual.roots if self.virtual else ())]
        image = {p.rpartition("/")[2] for p in made_up if (p.rpartition("/")[0] or "/") == device}
        return sorted(names | image)

    def used_bytes(self) -> int:
        return self._used

    def free_bytes(self) -> int:
        return 0 if self.storage_full else max(0, self.quota_bytes - self._used)

    # ---- changes -----------------------------------------------------------------------

    def _charge(self, path: str, n: int, *, check: bool = True) -> None:
        with self._lock:
            if check and n > 0 and (self.storage_full or self._used + n > self.quota_bytes):
                raise DeviceOSError(path, NOSPC)
            self._used += n

    def open_read(self, path: str, cwd: str = "/") -> BinaryIO:
        device = self.resolve(path, cwd)
        if virtual := self._virtual(device):
            return io.BytesIO(virtual.read(device))  # the text as of opening, as seq_file gives it
        host = self.host(device)
        with _device_errors(device):
            if host.is_dir():
                raise DeviceOSError(device, ISDIR)
            if not os.path.lexists(host) and device in system_image():
                return io.BytesIO()  # an image executable reads as the empty file its stat describes
            self._check_access(device, host, 0o400)
            return open(host, "rb")

    def open_write(
        self, path: str, cwd: str = "/", *, append: bool = False, mode: int = 0o644, atomic: bool = False
    ) -> _QuotaWriter:
        """Open for writing. atomic=True writes a hidden temp file renamed over `path` on close();
        abort() (or an exception in a `with` block) removes it."""
        device = self.resolve(path, cwd)
        host = self.host(device, write=True)
        with _device_errors(device):
            if host.is_dir():
                raise DeviceOSError(device, ISDIR)
            if not host.parent.is_dir():
                raise DeviceOSError(device, NOENT if not host.parent.exists() else NOTDIR)
            if atomic:
                tmp = host.parent / f"{PARTIAL_PREFIX}{secrets.token_hex(6)}"
                f = open(tmp, "wb")  # noqa: SIM115 - owned by the writer
                self._chmod(tmp, mode)
                return _QuotaWriter(self, device, f, tmp, host)
            existed = host.is_file()
            if existed:
                self._check_access(device, host, 0o200)
            old_size = host.stat().st_size if existed else 0
            f = open(host, "ab" if append else "wb")  # noqa: SIM115 - owned by the writer
            if not existed:
                self._chmod(host, mode)
            if not append:
                self._charge(device, -old_size, check=False)
            return _QuotaWriter(self, device, f, None, host)

    def mkdir(self, path: str, cwd: str = "/", *, parents: bool = False, mode: int = 0o755) -> None:
        device = self.resolve(path, cwd)
        if self._virtual(device) and self.exists(device):
            if parents and self.is_dir(device):
                return
            raise DeviceOSError(device, EXIST)
        existing = self.host(device)
        if existing.exists():
            if parents and existing.is_dir():
                return
            raise DeviceOSError(device, EXIST)
        host = self.host(device, write=True)
        with _device_errors(device):
            if parents:
                os.makedirs(host, mode=_host_mode(mode, folder=True), exist_ok=True)
            else:
                os.mkdir(host, mode=_host_mode(mode, folder=True))
            self._owner_bits.record(host, mode)  # a new inode: no bits of an old file that had it

    def remove(self, path: str, cwd: str = "/", *, recursive: bool = False) -> None:
        device = self.resolve(path, cwd, follow=False)  # a link goes, not what it leads to
        host = self.host(device, write=True, follow=False)
        with _device_errors(device):
            st = os.lstat(host)
            if not statmod.S_ISDIR(st.st_mode):
                os.unlink(host)
                freed = st.st_size if statmod.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0
            elif not recursive:
                raise DeviceOSError(device, ISDIR)
            else:
                freed = _tree_size(host)
                shutil.rmtree(host)
        self._charge(device, -freed, check=False)

    def rename(self, src: str, dst: str, cwd: str = "/") -> None:
        src_dev, dst_dev = self.resolve(src, cwd, follow=False), self.resolve(dst, cwd, follow=False)
        src_host = self.host(src_dev, write=True, follow=False)
        dst_host = self.host(dst_dev, write=True, follow=False)
        with _device_errors(src_dev):
            if not os.path.lexists(src_host):
                raise DeviceOSError(src_dev, NOENT)
            replaced = _own_size(dst_host) if not src_host.is_dir() else 0
            os.replace(src_host, dst_host)
        self._charge(dst_dev, -replaced, check=False)

    def link(self, src: str, dst: str, cwd: str = "/") -> None:
        """A hard link `dst` to the regular file `src`, both in the writable areas (so no link can reach
        the system image or outside the sandbox); costs no storage. An existing `dst` is an error."""
        src_dev, dst_dev = self.resolve(src, cwd), self.resolve(dst, cwd, follow=False)
        src_host = self.host(src_dev, write=True)
        dst_host = self.host(dst_dev, write=True, follow=False)
        with _device_errors(src_dev):
            if not statmod.S_ISREG(os.lstat(src_host).st_mode):
                raise DeviceOSError(src_dev, ACCES if not src_host.is_dir() else ISDIR)
        with _device_errors(dst_dev):
            os.link(src_host, dst_host, follow_symlinks=False)

    def copy(self, src: str, dst: str, cwd: str = "/") -> None:
        """Copy one regular file to the path `dst` (not into a folder), keeping its mode."""
        mode = statmod.S_IMODE(self.stat(src, cwd).st_mode)
        with self.open_read(src, cwd) as reader, self.open_write(dst, cwd, mode=mode, atomic=True) as writer:
            while chunk := reader.read(1 << 20):
                writer.write(chunk)

    def chmod(self, path: str, mode: int, cwd: str = "/") -> None:
        device = self.resolve(path, cwd)
        host = self.host(device, write=True)
        with _device_errors(device):
            self._chmod(host, mode)

    def _chmod(self, host: Path, mode: int) -> None:
        os.chmod(host, _host_mode(mode, folder=host.is_dir()))
        self._owner_bits.record(host, mode)

    def _check_access(self, device: str, host: Path, bit: int) -> None:
        """The shell user owns its files, and the kernel checks an owner's bits: a file it made
        read-only (or unreadable) refuses it too."""
        if not self._owner_bits.apply(os.stat(host)).st_mode & bit:
            raise DeviceOSError(device, ACCES)


def _image_fallback(device: str, stat: Callable[[Path], os.stat_result], host: Path) -> os.stat_result:
    """stat(host), or for an image executable without a host file, IMAGE_STAT."""
    try:
        return stat(host)
    except FileNotFoundError:
        if device in system_image():
            return IMAGE_STAT
        raise


def _host_mode(mode: int, *, folder: bool = False) -> int:
    """The device's permission bits, never setuid, setgid or sticky (a client's 04755 would make the
    host file run as whoever started the device); the host owner can always read and write (and
    enter folders)."""
    return (mode & 0o777) | (0o700 if folder else 0o600)


def _inodes(host: Path) -> dict[tuple[int, int], tuple[int, int, int]]:
    """(dev, ino) -> (size, links, links seen under `host`) for the regular files under `host`."""
    found: dict[tuple[int, int], tuple[int, int, int]] = {}
    for folder, _dirs, files in os.walk(host):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if statmod.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                seen = found.get(key, (0, 0, 0))[2]
                found[key] = (st.st_size, st.st_nlink, seen + 1)
    return found


def _tree_size(host: Path) -> int:
    """The storage removing `host` frees: files with a hard link outside it stay."""
    return sum(size for size, links, seen in _inodes(host).values() if seen >= links)


def _own_size(host: Path) -> int:
    """The storage replacing or removing the file `host` frees (nothing while another link holds it)."""
    try:
        st = os.lstat(host)
    except OSError:
        return 0
    return st.st_size if statmod.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0
