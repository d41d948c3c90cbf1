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
from typing import Any, BinaryIO, TypeVar

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
T = TypeVar("T")


class Refused(adbutils.AdbError):
    """The device answered a sync request with FAIL (no space, permission denied...): it is still there."""


def bundle_dir(bundle_id: str) -> PurePosixPath:
    return DEVICE_ROOT / bundle_id


def _vanished(device: adbutils.AdbDevice, doing: str, exc: BaseException, *, resumable: bool = False) -> DeviceError:
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


@dataclass(frozen=True)
class PushResult:
    remote_dir: PurePosixPath
    files_sent: int
    bytes_sent: int  # what went over adb, the manifest included: the deploy report's "pushed"
    files_kept: int  # already in this bundle's folder
    files_reused: int = 0  # copied on the device from another bundle's folder instead of sent
    bytes_reused: int = 0


class PushInterrupted(DeviceError):
    """A push that failed partway: `bytes_sent` says how much did go over adb (the report counts it)."""

    def __init__(self, error: DeviceError, bytes_sent: int) -> None:
        super().__init__(error.message, error.hint)
        self.bytes_sent = bytes_sent


@dataclass
class _Tally:
    """Counts the bytes sent and passes them on to the caller's progress."""

    progress: Progress | None
    sent: int = 0

    def __call__(self, n: int) -> None:
        self.sent += n
        if self.progress:
            self.progress(n)


def push_bundle(device: adbutils.AdbDevice, local_dir: Path, bundle_id: str, manifest: list[dict[str, Any]],
                progress: Progress | None = None) -> PushResult:
    """Bring the files of `manifest` that the device lacks or holds in another version: copied on the
    device from another bundle folder that holds them, else sent; then the manifest. A push that
    fails is a PushInterrupted that counts the bytes sent so far."""
    tally = _Tally(progress)
    try:
        return _push(device, local_dir, bundle_dir(bundle_id), manifest, tally)
    except DeviceError as exc:
        raise PushInterrupted(exc, tally.sent) from None


def _push(device: adbutils.AdbDevice, local_dir: Path, remote: PurePosixPath, manifest: list[dict[str, Any]],
          tally: _Tally) -> PushResult:
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
    reused = _reuse(device, remote.name, todo) if todo else set()
    for entry in todo:
        if entry["path"] not in reused:
            _push_file(device, local_dir / entry["path"], remote / entry["path"], _mode(entry), tally)
    if todo or not held:
        _push_file(device, local_dir / MANIFEST, remote / MANIFEST, 0o644, tally)
    return PushResult(remote, len(todo) - len(reused), tally.sent, len(manifest) - len(todo), len(reused),
                      sum(e["size"] for e in todo if e["path"] in reused))


def _reuse(device: adbutils.AdbDevice, bundle_id: str, todo: list[dict[str, Any]]) -> set[str]:
    """Copy on the device, from other bundle folders, the files of `todo` that their manifests list with
    the same sha256 and size (a changed input gives a new bundle id, yet the model is the same).
    Returns the paths whose copy has the right size; anything else is sent as usual."""
    sources = _held_elsewhere(device, bundle_id)
    plan = [(entry, sources[entry["sha256"], entry["size"]]) for entry in todo
            if (entry["sha256"], entry["size"]) in sources]
    copied: set[str] = set()
    for batch in batches(plan, cost=lambda item: len(_copy_command(bundle_id, [item]))):
        result = device_shell(device, _copy_command(bundle_id, batch), "copying files between bundles")
        sizes = {path: size for size, _, path in (line.partition(" ") for line in result.stdout.splitlines())}
        copied |= {entry["path"] for entry, _ in batch
                   if sizes.get(f"{bundle_id}/{entry['path']}") == str(entry["size"])}
    return copied


def _held_elsewhere(device: adbutils.AdbDevice, bundle_id: str) -> dict[tuple[str, int], str]:
    """(sha256, size) -> the file's path relative to DEVICE_ROOT, by the manifests of the other bundle
    folders (written last, so what they list arrived whole). Unsafe names are ignored."""
    sources: dict[tuple[str, int], str] = {}
    for name in _bundle_names(device):
        if name == bundle_id:
            continue
        for path, entry in _remote_manifest(device, DEVICE_ROOT / name).items():
            with contextlib.suppress(KeyError, ValueError, TypeError):
                key = (str(entry["sha256"]), int(entry["size"]))
                sources.setdefault(key, f"{name}/{_relative_name(path)}")
    return sources


def _copy_command(bundle_id: str, batch: list[tuple[dict[str, Any], str]]) -> str:
    """One shell command copying each (entry, source) into the bundle: the target removed first (a copy
    that fails leaves nothing that looks right), then copied and given its mode; the size of each copy
    made whole is printed (`<size> <path>`) to judge it."""
    steps = []
    for entry, source in batch:
        target = shell_quote(f"{bundle_id}/{entry['path']}")
        folder = shell_quote(posixpath.dirname(f"{bundle_id}/{entry['path']}"))
        steps.append(f"rm -f {target}; mkdir -p {folder} && cp {shell_quote(source)} {target} && "
                     f"chmod {_mode(entry):o} {target} && stat -c '%s %n' {target}")
    return f"cd {shell_quote(str(DEVICE_ROOT))} && {{ " + "; ".join(steps) + "; }"


def _mode(entry: dict[str, Any]) -> int:
    """The manifest writes modes as octal strings ("0755"); accept integers too."""
    mode = entry.get("mode", 0o644)
    return int(mode, 8) if isinstance(mode, str) else int(mode)


def _push_file(device: adbutils.AdbDevice, local: Path, remote: PurePosixPath, mode: int, progress: Progress) -> None:
    try:
        with local.open("rb") as source:
            send_file(device, source, remote, mode & 0o777, progress)
    except DEVICE_FAILURES as exc:
        raise _vanished(device, f"pushing {local.name} to {remote}", exc, resumable=True) from None


def send_file(device: adbutils.AdbDevice, source: BinaryIO, remote: PurePosixPath, mode: int = 0o644,
              progress: Progress | None = None) -> int:
    """sync SEND over adbutils' transport, each DATA header and its 64 KiB chunk in one write;
    `progress` hears of each chunk as it goes (a push cut off midway still counts what went).

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


def _bundle_names(device: adbutils.AdbDevice) -> list[str]:
    """The bundle folders under DEVICE_ROOT (none when it does not exist yet)."""
    try:
        return [i.path for i in device.sync.iter_directory(str(DEVICE_ROOT))
                if stat.S_ISDIR(i.mode) and _safe_name(i.path)]
    except DEVICE_FAILURES as exc:
        raise _vanished(device, "listing the bundles", exc) from None


def cleanup_bundles(device: adbutils.AdbDevice, keep: int = KEEP_BUNDLES, protect: tuple[str, ...] = ()) -> list[str]:
    """Cleanup policy, run after each push and before its run: keep the `keep` most recently used
    bundle folders under DEVICE_ROOT, delete the others (never one in `protect`), and delete the
    `runs/` folders of those kept: a run's outputs go once pulled, so any still there belong to a
    run whose device or host died. Returns the deleted bundle ids."""
    names = _bundle_names(device)
    doomed: list[str] = []
    if len(names) > keep:
        used = {name: _last_used(device, name) for name in names}
        order = sorted(names, key=lambda n: used[n], reverse=True)
        doomed = [n for n in order[keep:] if n not in protect]
    remove_remote(device, *(DEVICE_ROOT / name for name in doomed),
                  *(DEVICE_ROOT / name / "runs" for name in names if name not in doomed))
    return doomed
