"""Moving files to and from a device: sync pushes, batched shell calls, safe pulls.

What goes where on the device is harness.store's business; this module only moves bytes. Names
coming back from a device are never trusted: a pull only writes inside the local folder it was given.
"""

from __future__ import annotations

import contextlib
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar

import adbutils

from deploy.errors import DeviceError
from deploy.fsutil import atomic_path, atomic_write_bytes
from harness.devices import DEVICE_FAILURES

DEVICE_ROOT = PurePosixPath("/data/local/tmp/edgeloop")
SHELL_TIMEOUT = 60.0
SYNC_CHUNK = 64 * 1024  # the sync protocol's maximum DATA size
# Paths per shell call are capped by length: the command travels in one OPEN packet, which old
# devices limit to 4 KiB (MAX_PAYLOAD of adb protocol version 1).
COMMAND_BUDGET = 3000

Progress = Callable[[int], None]  # called with the bytes just sent
T = TypeVar("T")


class Refused(adbutils.AdbError):
    """The device answered a sync request with FAIL (no space, permission denied...): it is still there."""


def vanished(device: adbutils.AdbDevice, doing: str, exc: BaseException, *, resumable: bool = False) -> DeviceError:
    """The error for a failed device request: refused (the device said why) or no answer at all. The
    transport's own words ("Expected 5 bytes, got 0", errno texts) say nothing a user can act on."""
    if isinstance(exc, Refused):
        return DeviceError(f"device {device.serial} refused {doing}: {exc}",
                           "free space on the device, or check the folder's permissions")
    return DeviceError(f"device {device.serial} stopped answering while {doing}",
                       "reconnect it (check `adb devices -l`) and run again"
                       + (": what was already sent is kept" if resumable else ""))


def device_shell(device: adbutils.AdbDevice, command: str, doing: str, *, binary: bool = False) -> Any:
    """One shell v2 call (exit code, stdout and stderr apart); a vanished device is a DeviceError."""
    try:
        return device.shell2(command, timeout=SHELL_TIMEOUT, v2=True, encoding=None if binary else "utf-8")
    except DEVICE_FAILURES as exc:
        raise vanished(device, doing, exc) from None


def remote_exists(device: adbutils.AdbDevice, path: PurePosixPath | str) -> bool:
    """sync STAT answers mode 0 for a missing path (adbutils would pull it as an empty folder)."""
    try:
        return device.sync.stat(str(path)).mode != 0
    except DEVICE_FAILURES as exc:
        raise vanished(device, f"looking at {path}", exc) from None


def _quoted_length(path: str) -> int:
    return len(shell_quote(path)) + 1


def batches(items: list[T], budget: int = COMMAND_BUDGET,
            cost: Callable[[T], int] = _quoted_length) -> list[list[T]]:
    """Split items into groups whose command length (by default: paths quoted, space-separated) stays
    within `budget` (an item costlier than the budget gets a group of its own)."""
    groups: list[list[T]] = []
    used = budget
    for item in items:
        size = cost(item)
        if used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += size
    return groups


@dataclass
class Tally:
    """Counts the bytes sent and passes them on to the caller's progress."""

    progress: Progress | None
    sent: int = 0

    def __call__(self, n: int) -> None:
        self.sent += n
        if self.progress:
            self.progress(n)


def send_file(device: adbutils.AdbDevice, source: BinaryIO, remote: PurePosixPath, mode: int = 0o644,
              progress: Progress | None = None, *, mtime: int | None = None) -> int:
    """sync SEND over adbutils' transport, each DATA header and its 64 KiB chunk in one write;
    `progress` hears of each chunk as it goes (a push cut off midway still counts what went); the
    file gets `mtime` (default now), as adbd sets it from DONE.

    adbutils' own push writes 4 KiB chunks with the header apart, which stalls on every file
    (Nagle against delayed ACKs): about 80 ms a file on loopback, most of a cold deploy."""
    spec = f"{remote},{stat.S_IFREG | mode}".encode()
    total = 0
    with device.open_transport(timeout=SHELL_TIMEOUT) as conn:
        conn.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.send_command("sync:")
        conn.check_okay()
        conn.conn.sendall(b"SEND" + struct.pack("<I", len(spec)) + spec)
        while chunk := source.read(SYNC_CHUNK):
            conn.conn.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
            total += len(chunk)
            if progress:
                progress(len(chunk))
        conn.conn.sendall(b"DONE" + struct.pack("<I", int(time.time()) if mtime is None else mtime))
        status = conn.read_string(4)
        if status == "FAIL":
            raise Refused(conn.read_string(struct.unpack("<I", conn.read(4))[0]))
        if status != "OKAY":
            raise EOFError(f"no answer to the push of {remote} (got {status!r})")
        conn.conn.sendall(b"QUIT" + struct.pack("<I", 0))
    return total


def _safe_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def pull_tree(device: adbutils.AdbDevice, remote: PurePosixPath, local: Path) -> list[Path]:
    """Copy the regular files under `remote` into `local`; names that could escape it and symlinks are
    skipped. Returns the files written. A missing `remote` pulls nothing."""
    local.mkdir(parents=True, exist_ok=True)
    root = local.resolve()
    written: list[Path] = []
    if not remote_exists(device, remote):
        return written
    pending = [PurePosixPath(".")]
    try:
        while pending:
            rel = pending.pop()
            for info in device.sync.iter_directory(str(remote / rel)):
                if not _safe_name(info.path):
                    continue
                child = rel / info.path
                target = (root / child).resolve()
                if not target.is_relative_to(root) or target == root:
                    continue
                if stat.S_ISDIR(info.mode):
                    pending.append(child)
                elif stat.S_ISREG(info.mode):
                    _copy_out(device, remote / child, target)
                    written.append(target)
    except DEVICE_FAILURES as exc:
        raise vanished(device, f"pulling {remote}", exc) from None
    return written


def _copy_out(device: adbutils.AdbDevice, remote: PurePosixPath, local: Path) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(local) as tmp, tmp.open("wb") as f:
        for chunk in device.sync.iter_content(str(remote)):
            f.write(chunk)


def pull_file(device: adbutils.AdbDevice, remote: PurePosixPath, local: Path) -> bool:
    """Copy one regular file; False when the device has no such file (stat first: never an empty folder)."""
    try:
        info = device.sync.stat(str(remote))
        if not stat.S_ISREG(info.mode):
            return False
        _copy_out(device, remote, local)
    except DEVICE_FAILURES as exc:
        raise vanished(device, f"pulling {remote}", exc) from None
    return True


def _relative_name(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") for p in rel.parts) or "\0" in name:
        raise ValueError(f"not a safe relative path: {name!r}")
    return rel


def pull_files(device: adbutils.AdbDevice, remote_dir: PurePosixPath, names: list[str], local_dir: Path, *,
               remove: bool = False) -> list[str]:
    """Copy the named files (relative paths) from `remote_dir` into `local_dir`; return the missing ones.
    With `remove`, the request that read every file whole also deletes `remote_dir` (a run folder).

    Each batch is one shell call (`stat -c %s` of every file, then `cat` of them all): per-file
    sync calls cost two round trips each, which dominated a warm deploy. Any surprise in a batch
    (a missing file, output that does not add up) falls back to exact per-file pulls."""
    missing: list[str] = []
    groups = batches([_relative_name(n).as_posix() for n in names])
    for k, names_batch in enumerate(groups):
        batch = [PurePosixPath(n) for n in names_batch]
        if not _pull_batch(device, remote_dir, batch, local_dir, remove and k == len(groups) - 1):
            missing += [r.as_posix() for r in batch if not pull_file(device, remote_dir / r, local_dir / r)]
    return missing


def _pull_batch(device: adbutils.AdbDevice, remote_dir: PurePosixPath, batch: list[PurePosixPath],
                local_dir: Path, remove: bool) -> bool:
    quoted = " ".join(shell_quote(r.as_posix()) for r in batch)
    command = f"cd {shell_quote(str(remote_dir))} && stat -c %s {quoted} && cat {quoted}"
    if remove:
        command += f" && cd / && rm -rf {shell_quote(str(remote_dir))}"
    more = f" and {len(batch) - 1} more files" if len(batch) > 1 else ""
    result = device_shell(device, command, f"pulling {remote_dir / batch[0]}{more}", binary=True)
    head = result.stdout.split(b"\n", len(batch))
    if result.returncode != 0 or len(head) <= len(batch) or not all(h.strip().isdigit() for h in head[:-1]):
        return False
    sizes, body = [int(h) for h in head[:-1]], head[-1]
    if sum(sizes) != len(body):
        return False
    offset = 0
    for rel, size in zip(batch, sizes, strict=True):
        atomic_write_bytes(local_dir / rel, body[offset:offset + size])
        offset += size
    return True


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def remove_remote(device: adbutils.AdbDevice, *paths: PurePosixPath) -> None:
    """Delete folders under DEVICE_ROOT, a batch per shell call. Best effort: a leftover folder is
    only disk space, never a wrong result."""
    for path in paths:
        if not path.is_relative_to(DEVICE_ROOT) or path == DEVICE_ROOT:
            raise ValueError(f"refusing to remove {path} outside {DEVICE_ROOT}")
    for batch in batches([str(p) for p in paths]):
        with contextlib.suppress(*DEVICE_FAILURES):
            device.shell2(f"rm -rf {' '.join(map(shell_quote, batch))}", timeout=SHELL_TIMEOUT, v2=True)
