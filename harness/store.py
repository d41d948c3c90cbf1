"""The device store: one content-addressed folder per device, shared by every bundle, runtime and run.

    /data/local/tmp/edgeloop/
      blobs/<sha256>          each file any bundle needs, once, whatever bundles share it
      jobs/<bundle id>/...    a bundle's tree (manifest.json, run.sh, model, inputs): hard links into blobs/
      runs/<session>/<run>/   one run's outputs; only the session that made them removes them
      lease/owner             the device lease (harness.lease.DeviceLease)
      index.json              when each job was last used, and each blob's stat when it was last verified

Trust: a blob is pushed under a temporary name with the mtime STORE_MTIME, then renamed into place,
so a half-sent file never carries a blob's name. A blob is trusted while its size and mtime are
those recorded when it was last verified (pushed, or hashed on the device); any other blob of the
right size is hashed on the device again, and a wrong size or digest is pushed again. A job file is
trusted while it has its blob's size and mtime (it is the same file); otherwise it is linked again.

Garbage collection (at the end of each session): the least recently used jobs go, oldest first, until
the blobs the remaining jobs use fit the budget; blobs no job uses, temporary files, other sessions'
run folders older than RUNS_MAX_AGE_S and anything else at the top (bundle folders of older
edgeloop versions) go too. The jobs of the session itself are never removed.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import adbutils

from deploy.bundle import MANIFEST, Bundle
from deploy.errors import DeviceError
from harness.transfer import (
    DEVICE_FAILURES,
    DEVICE_ROOT,
    Progress,
    Tally,
    batches,
    device_shell,
    send_file,
    shell_quote,
    vanished,
)

BLOBS, JOBS, RUNS, INDEX = "blobs", "jobs", "runs", "index.json"
LEASE = "lease"
KNOWN = {BLOBS, JOBS, RUNS, INDEX, LEASE}
STORE_MTIME = 1262304000  # 2010-01-01 UTC: the mtime of every blob edgeloop pushes; any change to it shows
TMP_PREFIX = ".tmp-"
RUNS_MAX_AGE_S = 3600  # another session's run folder older than this is a leftover of a dead host
BUDGET_ENV = "EDGELOOP_STORE_BUDGET_MB"
DEFAULT_BUDGET_MB = 1024
SEPARATOR = "@@edgeloop-store@@"
# One listing of the store: the device clock, every file's inode, size, mtime and mode, the run
# folders' ages, the top-level names and the index. Run from the store's folder.
SNAPSHOT = (f"date +%s; echo {SEPARATOR}; find {BLOBS} {JOBS} -type f 2>/dev/null | xargs stat -c '%i %s %Y %a %n' "
            f"2>/dev/null; echo {SEPARATOR}; stat -c '%Y %n' {RUNS}/* 2>/dev/null; echo {SEPARATOR}; ls -a; "
            f"echo {SEPARATOR}; cat {INDEX} 2>/dev/null; true")


def budget_bytes() -> int:
    """The store's storage budget: $EDGELOOP_STORE_BUDGET_MB, else DEFAULT_BUDGET_MB."""
    text = os.environ.get(BUDGET_ENV, "")
    try:
        return int(float(text) * 1024 * 1024) if text else DEFAULT_BUDGET_MB * 1024 * 1024
    except ValueError:
        return DEFAULT_BUDGET_MB * 1024 * 1024


@dataclass(frozen=True)
class FileStat:
    inode: int
    size: int
    mtime: int
    mode: int


@dataclass(frozen=True)
class Wanted:
    """One file of a job: where it goes in the job's tree and what it is."""

    path: str
    sha256: str
    size: int
    mode: int
    local: Path


@dataclass(frozen=True)
class Installed:
    remote_dir: PurePosixPath  # the job's folder on the device
    files_sent: int
    bytes_sent: int  # what went over adb: the report's "pushed"
    files_kept: int  # already on the device, verified
    files_rehashed: int = 0  # hashed on the device because their stat changed


class PushInterrupted(DeviceError):
    """An install that failed partway: `bytes_sent` says how much did go over adb (the report counts it)."""

    def __init__(self, error: DeviceError, bytes_sent: int) -> None:
        super().__init__(error.message, error.hint)
        self.bytes_sent = bytes_sent


@dataclass
class Store:
    """The store as one session sees it: read once when the lease is taken, kept up to date by what the
    session itself does (it alone writes while it holds the lease)."""

    device: adbutils.AdbDevice
    now: int  # the device's clock when the snapshot was taken
    files: dict[str, FileStat]  # store-relative path -> stat
    runs: dict[str, int]  # run folder name -> mtime
    top: set[str]
    last_used: dict[str, int] = field(default_factory=dict)  # job id -> device time
    verified: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha256 -> (size, mtime)
    used: set[str] = field(default_factory=set)  # jobs this session installed: never collected
    racy: set[str] = field(default_factory=set)  # verified, but changed within the snapshot's second: not recorded

    @property
    def root(self) -> PurePosixPath:
        return DEVICE_ROOT

    @classmethod
    def parse(cls, device: adbutils.AdbDevice, text: str) -> Store:
        """Read the output of SNAPSHOT; anything malformed counts as not held."""
        parts = (text.split(SEPARATOR + "\n") + [""] * 5)[:5]
        clock, listing, runs, top, index = parts
        files: dict[str, FileStat] = {}
        for line in listing.splitlines():
            fields = line.split(" ", 4)
            if len(fields) == 5 and all(f.isdigit() for f in fields[:3]):
                files[fields[4]] = FileStat(int(fields[0]), int(fields[1]), int(fields[2]), _octal(fields[3]))
        ages = {}
        for line in runs.splitlines():
            when, _, name = line.partition(" ")
            if when.isdigit() and name.startswith(RUNS + "/"):
                ages[name.removeprefix(RUNS + "/")] = int(when)
        store = cls(device, int(clock.strip()) if clock.strip().isdigit() else 0, files, ages,
                    {n for n in top.split() if n not in (".", "..")})
        store._read_index(index)
        return store

    def _read_index(self, text: str) -> None:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        jobs, verified = data.get("last_used", {}), data.get("verified", {})
        if isinstance(jobs, dict):
            self.last_used = {str(k): int(v) for k, v in jobs.items() if isinstance(v, int)}
        if isinstance(verified, dict):
            self.verified = {str(k): (int(v[0]), int(v[1])) for k, v in verified.items()
                             if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v)}

    # -- installing a job ------------------------------------------------------------------------

    def install(self, bundle: Bundle, progress: Progress | None = None) -> Installed:
        """Make the job folder of `bundle` whole and verified, sending only the blobs the device lacks
        or holds damaged. The digests come from the bundle's manifest: nothing is hashed on the host."""
        tally = Tally(progress)
        try:
            return self._install(bundle, tally)
        except DeviceError as exc:
            raise PushInterrupted(exc, tally.sent) from None

    def _install(self, bundle: Bundle, tally: Tally) -> Installed:
        wanted = [Wanted(e["path"], e["sha256"], int(e["size"]), _mode(e), bundle.path / e["path"])
                  for e in bundle.manifest]
        wanted.append(Wanted(MANIFEST, bundle.manifest_sha256, bundle.manifest_size, 0o644, bundle.path / MANIFEST))
        blobs = {w.sha256: w for w in wanted}
        need: dict[str, int] = {}  # the mode bits each blob needs, for every job file linked to it
        for want in wanted:
            need[want.sha256] = need.get(want.sha256, 0) | want.mode
        suspects = [(w, _blob(w.sha256)) for w in blobs.values() if self._blob_state(w) == "suspect"]
        partial = [(w, _tmp(w.sha256)) for w in blobs.values() if self._blob_state(w) == "missing"
                   and getattr(self.files.get(_tmp(w.sha256)), "size", -1) == w.size]
        arrived = self._rehash(suspects + partial)  # what an interrupted install sent whole is kept
        send = [w for w in blobs.values() if self._blob_state(w) != "trusted" and w.sha256 not in arrived]
        for blob in send:
            self._send(blob, tally)
        job = posixpath.join(JOBS, bundle.id)
        relink = [w for w in wanted if self._job_file_stale(job, w)]
        sent = {w.sha256 for w in send} | arrived
        chmod = {sha: mode for sha, mode in need.items()
                 if sha in sent or self.files[_blob(sha)].mode & mode != mode}
        self._finish(sent, relink, job, chmod)
        self.used.add(bundle.id)
        self.last_used[bundle.id] = self.now
        return Installed(DEVICE_ROOT / job, len(send), tally.sent, sum(w.sha256 not in sent for w in wanted),
                         len(suspects) + len(partial))

    def _blob_state(self, want: Wanted) -> str:
        """'trusted' (stat as when last verified), 'suspect' (right size, changed since), else 'missing'."""
        held = self.files.get(_blob(want.sha256))
        if held is None or held.size != want.size:
            return "missing"
        return "trusted" if self.verified.get(want.sha256) == (held.size, held.mtime) else "suspect"

    def _rehash(self, candidates: list[tuple[Wanted, str]]) -> set[str]:
        """sha256 on the device of blobs whose stat changed since they were verified, and of temporary
        files an interrupted install left at the right size. Intact blobs are trusted again (recorded
        unless changed within the snapshot's own second, as a 1 s mtime would hide a later change);
        the others are dropped from the view, so they are sent again. Returns the digests of the intact
        temporary files: they only need renaming into place."""
        if not candidates:
            return set()
        digests = hashes_on_device(self.device, DEVICE_ROOT, [name for _, name in candidates])
        arrived: set[str] = set()
        for want, name in candidates:
            held = self.files.pop(name)
            if digests.get(name) != want.sha256:
                continue
            if name != _blob(want.sha256):
                arrived.add(want.sha256)
                continue
            self.files[name] = held
            self.verified[want.sha256] = (held.size, held.mtime)
            if held.mtime >= self.now:
                self.racy.add(want.sha256)
        return arrived

    def _send(self, blob: Wanted, tally: Tally) -> None:
        """Push under a temporary name with STORE_MTIME; _finish renames it into place."""
        try:
            source = blob.local.open("rb")
        except OSError as exc:
            raise DeviceError(f"cannot read {blob.local} to push it ({exc.strerror})",
                              "rebuild the bundle (invoke clean, then deploy again)") from None
        try:
            with source:
                send_file(self.device, source, DEVICE_ROOT / _tmp(blob.sha256), blob.mode, tally, mtime=STORE_MTIME)
        except DEVICE_FAILURES as exc:
            raise vanished(self.device, f"pushing {blob.path}", exc, resumable=True) from None

    def _job_file_stale(self, job: str, want: Wanted) -> bool:
        """A job file is its blob (a hard link: same inode, size and mtime) or it is linked again."""
        held = self.files.get(posixpath.join(job, want.path))
        blob = self.files.get(_blob(want.sha256))
        if held is None or blob is None or self._blob_state(want) != "trusted":
            return True
        return (held.inode, held.size, held.mtime) != (blob.inode, blob.size, blob.mtime)

    def _finish(self, sent: set[str], relink: list[Wanted], job: str, chmod: dict[str, int]) -> None:
        """Rename the sent blobs into place, give blobs the modes their job files need and link the job's
        tree, in as few shell calls as the command budget allows; then read back what was made."""
        targets = [posixpath.join(job, w.path) for w in relink]
        folders = sorted({posixpath.dirname(t) for t in targets})
        steps = [f"mv -f {shell_quote(_tmp(sha))} {shell_quote(_blob(sha))}" for sha in sorted(sent)]
        steps += [f"chmod {mode:o} {shell_quote(_blob(sha))}" for sha, mode in sorted(chmod.items())]
        steps += [f"mkdir -p {' '.join(map(shell_quote, batch))}" for batch in batches(folders)]
        steps += [f"ln -f {shell_quote(_blob(w.sha256))} {shell_quote(t)}"
                  for w, t in zip(relink, targets, strict=True)]
        if not steps:
            return
        for batch in batches(steps, cost=lambda step: len(step) + 4):
            result = device_shell(self.device, f"cd {shell_quote(str(DEVICE_ROOT))} && " + " && ".join(batch),
                                  "installing the job's files")
            if result.returncode != 0:
                raise DeviceError(f"device {self.device.serial} could not install the job's files: "
                                  f"{(result.stderr or result.stdout).strip()[-200:] or 'no message'}",
                                  "check the device's free space (`adb shell df /data`)")
        self.files.update(stat_on_device(self.device, DEVICE_ROOT, [_blob(sha) for sha in sorted(sent | set(chmod))]
                                         + targets))
        for sha in sent:
            self.verified[sha] = (self.files[_blob(sha)].size, STORE_MTIME) if _blob(sha) in self.files else (0, 0)
        wrong = [t for w, t in zip(relink, targets, strict=True)
                 if self.files.get(t) is None or self.files[t].size != w.size]
        if wrong:
            raise DeviceError(f"device {self.device.serial}: {wrong[0]} did not arrive whole",
                              "check the device's free space (`adb shell df /data`) and deploy again")

    # -- runs and garbage collection ---------------------------------------------------------------

    def collect(self, budget: int, session: str) -> list[str]:
        """What to remove at the end of `session` (store-relative paths); see the module's docstring."""
        jobs: dict[str, set[str]] = {}
        by_inode = {held.inode: name.removeprefix(BLOBS + "/") for name, held in self.files.items()
                    if name.startswith(BLOBS + "/") and "/" not in name.removeprefix(BLOBS + "/")}
        for name, held in self.files.items():
            parts = name.split("/")
            if parts[0] == JOBS and len(parts) > 2:
                jobs.setdefault(parts[1], set()).update([by_inode[held.inode]] if held.inode in by_inode else [])
        sizes = {sha: self.files[_blob(sha)].size for sha in by_inode.values()}
        doomed: list[str] = []
        order = sorted((j for j in jobs if j not in self.used), key=lambda j: self.last_used.get(j, 0))
        while order and sum(sizes[s] for s in set().union(*jobs.values())) > budget:
            victim = order.pop(0)
            doomed.append(posixpath.join(JOBS, victim))
            del jobs[victim]
        live = set().union(*jobs.values()) if jobs else set()
        doomed += [_blob(sha) for sha in sizes if sha not in live]
        doomed += [n for n in self.files if n.startswith(f"{BLOBS}/{TMP_PREFIX}")]
        doomed += [posixpath.join(RUNS, name) for name, when in self.runs.items()
                   if name != session and self.now - when > RUNS_MAX_AGE_S]
        doomed += sorted(self.top - KNOWN - {f"{TMP_PREFIX}{INDEX}"})
        for name in doomed:
            self.last_used.pop(name.removeprefix(JOBS + "/"), None)
        return doomed

    def index_bytes(self) -> bytes:
        known = {n.removeprefix(BLOBS + "/") for n in self.files if n.startswith(BLOBS + "/")}
        return json.dumps({"last_used": self.last_used,
                           "verified": {k: list(v) for k, v in self.verified.items()
                                        if k in known and k not in self.racy}},
                          sort_keys=True).encode()

    def write_index(self) -> None:
        """Written under a temporary name and renamed by the session's last command."""
        try:
            send_file(self.device, io.BytesIO(self.index_bytes()), DEVICE_ROOT / f"{TMP_PREFIX}{INDEX}")
        except DEVICE_FAILURES as exc:
            raise vanished(self.device, "writing the store's index", exc) from None


def _blob(sha256: str) -> str:
    return f"{BLOBS}/{sha256}"


def _tmp(sha256: str) -> str:
    """Where a blob is sent before it is renamed into place."""
    return f"{BLOBS}/{TMP_PREFIX}{sha256}"


def _octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        return 0


def _mode(entry: dict[str, Any]) -> int:
    """The manifest writes modes as octal strings ("0755"); accept integers too. Never special bits."""
    mode = entry.get("mode", 0o644)
    return (int(mode, 8) if isinstance(mode, str) else int(mode)) & 0o777


def stat_on_device(device: adbutils.AdbDevice, folder: PurePosixPath, paths: Iterable[str]) -> dict[str, FileStat]:
    """inode, size, mtime and mode of files under `folder`, batched; missing files are left out."""
    found: dict[str, FileStat] = {}
    for batch in batches(list(paths)):
        command = f"cd {shell_quote(str(folder))} && stat -c '%i %s %Y %a %n' {' '.join(map(shell_quote, batch))}"
        result = device_shell(device, command, f"looking at files in {folder}")
        for line in result.stdout.splitlines():
            fields = line.split(" ", 4)
            if len(fields) == 5 and all(f.isdigit() for f in fields[:3]):
                found[fields[4]] = FileStat(int(fields[0]), int(fields[1]), int(fields[2]), _octal(fields[3]))
    return found


def hashes_on_device(device: adbutils.AdbDevice, folder: PurePosixPath, paths: list[str]) -> dict[str, str]:
    """sha256 of files under `folder` (toybox and the emulated shell both have sha256sum), batched."""
    hashes: dict[str, str] = {}
    for batch in batches(paths):
        command = f"cd {shell_quote(str(folder))} && sha256sum {' '.join(map(shell_quote, batch))}"
        result = device_shell(device, command, f"hashing files in {folder}")
        for line in result.stdout.splitlines():
            digest, _, name = line.strip().partition(" ")
            hashes[name.strip().lstrip("*").removeprefix("./")] = digest
    return hashes


def new_session_id() -> str:
    return secrets.token_hex(6)
