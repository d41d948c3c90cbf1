"""Moving files to and from a device: incremental push by manifest, safe pull, old-bundle cleanup.

The device keeps, in each bundle folder, the manifest of what it holds; it is written last, so an
interrupted push is simply resumed next time. Names coming back from a device are never trusted:
a pull only writes inside the local folder it was given.
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import adbutils

from deploy.errors import DeviceError
from deploy.fsutil import atomic_path, atomic_write_bytes
from harness.devices import DEVICE_FAILURES

DEVICE_ROOT = PurePosixPath("/data/local/tmp/edgeloop")
MANIFEST = "manifest.json"
LAST_USED = ".last_used"
KEEP_BUNDLES = 5  # cleanup policy: the bundles used most recently stay on the device, the others go
SHELL_TIMEOUT = 60.0
SYNC_CHUNK = 64 * 1024  # the sync protocol's maximum DATA size
# Paths per shell call are capped by length: the command travels in one OPEN packet, which old
# devices limit to 4 KiB (MAX_PAYLOAD of adb protocol version 1).
COMMAND_BUDGET = 3000

Progress = Callable[[int], None]  # called with the bytes just sent


class Refused(adbutils.AdbError):
    """The device answered a sync request with FAIL (no space, permission denied...): it is still there."""


def bundle_dir(bundle_id: str) -> PurePosixPath:
    return DEVICE_ROOT / bundle_id


def _vanished(device: adbutils.AdbDevice, doing: str, exc: BaseException) -> DeviceError:
    """The error for a failed device request: refused (the device said why) or no answer at all."""
    if isinstance(exc, Refused):
        return DeviceError(f"device {device.serial} refused {doing}: {exc}",
                           "free space on the device, or check the folder's permissions")
    return DeviceError(f"device {device.serial} stopped answering while {doing} ({exc or type(exc).__name__})",
                       "reconnect it (`adb devices -l`) and run again: what was already sent is kept")


def device_shell(device: adbutils.AdbDevice, command: str, doing: str, *, binary: bool = False) -> Any:
    """One shell v2 call (exit code, stdout and stderr apart); a vanished device is a DeviceError."""
    try:
        return device.shell2(command, timeout=SHELL_TIMEOUT, v2=True, encoding=None if binary else "utf-8")
    except DEVICE_FAILURES as exc:
        raise _vanished(device, doing, exc) from None


def remote_exists(device: adbutils.AdbDevice, path: PurePosixPath | str) -> bool:
    """sync STAT answers mode 0 for a missing path (adbutils would pull it as an empty folder)."""
    try:
        return device.sync.stat(str(path)).mode != 0
    except DEVICE_FAILURES as exc:
        raise _vanished(device, f"looking at {path}", exc) from None


def _remote_manifest(device: adbutils.AdbDevice, folder: PurePosixPath) -> dict[str, dict[str, Any]]:
    """What the device says it holds: path -> entry; an unreadable manifest counts as nothing held."""
    path = folder / MANIFEST
    if not remote_exists(device, path):
        return {}
    try:
        entries = json.loads(device.sync.read_bytes(str(path)))
    except DEVICE_FAILURES as exc:
        raise _vanished(device, f"reading {path}", exc) from None
    except ValueError:
        return {}
    items = entries.get("files", entries) if isinstance(entries, dict) else entries
    return {e["path"]: e for e in items if isinstance(e, dict) and "path" in e} if isinstance(items, list) else {}


def _remote_files(device: adbutils.AdbDevice, folder: PurePosixPath) -> set[str]:
    """Relative paths of the regular files under `folder`, in one shell call (a sync LIST per folder
    would cost a round trip each)."""
    result = device_shell(device, f"cd {shell_quote(str(folder))} && find . -type f", f"listing {folder}")
    return {line.strip().removeprefix("./") for line in result.stdout.splitlines() if line.strip()}


def _remote_hashes(device: adbutils.AdbDevice, folder: PurePosixPath, paths: list[str]) -> dict[str, str]:
    """sha256 of files on the device (toybox and the emulated shell both have sha256sum), batched."""
    hashes: dict[str, str] = {}
    for batch in batches(paths):
        quoted = " ".join(shell_quote(p) for p in batch)
        command = f"cd {shell_quote(str(folder))} && sha256sum {quoted}"
        result = device_shell(device, command, f"hashing files in {folder}")
        for line in result.stdout.splitlines():
            digest, _, name = line.strip().partition(" ")
            hashes[name.strip().lstrip("*").removeprefix("./")] = digest
    return hashes


def batches(paths: list[str], budget: int = COMMAND_BUDGET) -> list[list[str]]:
    """Split paths into groups whose quoted, space-separated length stays within `budget` (a path
    longer than the budget gets a group of its own)."""
    groups: list[list[str]] = []
    used = budget
    for path in paths:
        cost = len(shell_quote(path)) + 1
        if used + cost > budget:
            groups.append([])
            used = 0
        groups[-1].append(path)
        used += cost
    return groups


@dataclass(frozen=True)
class PushResult:
    remote_dir: PurePosixPath
    files_sent: int
    bytes_sent: int
    files_kept: int


def push_bundle(device: adbutils.AdbDevice, local_dir: Path, bundle_id: str, manifest: list[dict[str, Any]],
                progress: Progress | None = None) -> PushResult:
    """Send the files of `manifest` that the device lacks or holds in another version, then the manifest."""
    remote = bundle_dir(bundle_id)
    held = _remote_manifest(device, remote)
    present = _remote_files(device, remote)
    if held:
        # The manifest is written last and a bundle id names one content, so a listed file that is
        # still there is complete; a file someone deleted on the device is sent again.
        todo = [e for e in manifest if held.get(e["path"], {}).get("sha256") != e["sha256"] or e["path"] not in present]
    else:
        # No manifest: a first push, or one that was cut off. Keep what already arrived intact.
        hashes = _remote_hashes(device, remote, sorted(p for p in present if p in {e["path"] for e in manifest}))
        todo = [e for e in manifest if hashes.get(e["path"]) != e["sha256"]]
    sent = 0
    for entry in todo:
        sent += _push_file(device, local_dir / entry["path"], remote / entry["path"], _mode(entry), progress)
    if todo or not held:
        sent += _push_file(device, local_dir / MANIFEST, remote / MANIFEST, 0o644, progress)
    return PushResult(remote, len(todo), sent, len(manifest) - len(todo))


def _mode(entry: dict[str, Any]) -> int:
    """The manifest writes modes as octal strings ("0755"); accept integers too."""
    mode = entry.get("mode", 0o644)
    return int(mode, 8) if isinstance(mode, str) else int(mode)


def _push_file(device: adbutils.AdbDevice, local: Path, remote: PurePosixPath, mode: int,
               progress: Progress | None) -> int:
    try:
        with local.open("rb") as source:
            sent = send_file(device, source, remote, mode & 0o777)
    except DEVICE_FAILURES as exc:
        raise _vanished(device, f"pushing {local.name} to {remote}", exc) from None
    if progress:
        progress(sent)
    return sent


def send_file(device: adbutils.AdbDevice, source: BinaryIO, remote: PurePosixPath, mode: int = 0o644) -> int:
    """sync SEND over adbutils' transport, each DATA header and its 64 KiB chunk in one write.

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
        conn.conn.sendall(b"DONE" + struct.pack("<I", int(time.time())))
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
        raise _vanished(device, f"pulling {remote}", exc) from None
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
        raise _vanished(device, f"pulling {remote}", exc) from None
    return True


def _relative_name(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") for p in rel.parts) or "\0" in name:
        raise ValueError(f"not a safe relative path: {name!r}")
    return rel


def pull_files(device: adbutils.AdbDevice, remote_dir: PurePosixPath, names: list[str], local_dir: Path) -> list[str]:
    """Copy the named files (relative paths) from `remote_dir` into `local_dir`; return the missing ones.

    Each batch is one shell call (`stat -c %s` of every file, then `cat` of them all): per-file
    sync calls cost two round trips each, which dominated a warm deploy. Any surprise in a batch
    (a missing file, output that does not add up) falls back to exact per-file pulls."""
    missing: list[str] = []
    rels = [_relative_name(n) for n in names]
    for names_batch in batches([r.as_posix() for r in rels]):
        batch = [PurePosixPath(n) for n in names_batch]
        if not _pull_batch(device, remote_dir, batch, local_dir):
            missing += [r.as_posix() for r in batch if not pull_file(device, remote_dir / r, local_dir / r)]
    return missing


def _pull_batch(device: adbutils.AdbDevice, remote_dir: PurePosixPath, batch: list[PurePosixPath],
                local_dir: Path) -> bool:
    quoted = " ".join(shell_quote(r.as_posix()) for r in batch)
    command = f"cd {shell_quote(str(remote_dir))} && stat -c %s {quoted} && cat {quoted}"
    result = device_shell(device, command, f"pulling from {remote_dir}", binary=True)
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


def remove_remote(device: adbutils.AdbDevice, path: PurePosixPath) -> None:
    """Best effort: a leftover folder is only disk space, never a wrong result."""
    if not path.is_relative_to(DEVICE_ROOT) or path == DEVICE_ROOT:
        raise ValueError(f"refusing to remove {path} outside {DEVICE_ROOT}")
    with contextlib.suppress(*DEVICE_FAILURES):
        device.shell2(f"rm -rf {shell_quote(str(path))}", timeout=SHELL_TIMEOUT, v2=True)


def mark_used(device: adbutils.AdbDevice, bundle_id: str, when: float | None = None) -> None:
    """Record when a bundle was last used, as the file's content (sync mtimes have 1 s resolution)."""
    stamp = f"{time.time() if when is None else when:.6f}\n".encode()
    try:
        send_file(device, io.BytesIO(stamp), bundle_dir(bundle_id) / LAST_USED)
    except DEVICE_FAILURES as exc:
        raise _vanished(device, "marking the bundle as used", exc) from None


def _last_used(device: adbutils.AdbDevice, name: str) -> float:
    path = posixpath.join(str(DEVICE_ROOT), name, LAST_USED)
    if not remote_exists(device, path):
        return 0.0  # never marked: the oldest
    try:
        return float(device.sync.read_bytes(path).decode(errors="replace").strip() or 0.0)
    except ValueError:
        return 0.0
    except DEVICE_FAILURES as exc:
        raise _vanished(device, f"reading {path}", exc) from None


def cleanup_bundles(device: adbutils.AdbDevice, keep: int = KEEP_BUNDLES, protect: tuple[str, ...] = ()) -> list[str]:
    """Cleanup policy: keep the `keep` most recently used bundle folders under DEVICE_ROOT, delete the
    others (never one in `protect`). Returns the deleted bundle ids."""
    try:
        names = [i.path for i in device.sync.iter_directory(str(DEVICE_ROOT))
                 if stat.S_ISDIR(i.mode) and _safe_name(i.path)]
    except DEVICE_FAILURES as exc:
        raise _vanished(device, "listing old bundles", exc) from None
    if len(names) <= keep:
        return []
    used = {name: _last_used(device, name) for name in names}
    order = sorted(names, key=lambda n: used[n], reverse=True)
    doomed = [n for n in order[keep:] if n not in protect]
    for name in doomed:
        remove_remote(device, DEVICE_ROOT / name)
    return doomed
