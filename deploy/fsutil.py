"""Atomic writes and hashing: no half-written artifact is ever taken for a good one, and no file is
hashed twice while it stays the same."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from deploy.errors import EdgeloopError, disk_full

CHUNK = 1 << 20
DIGESTS = "digests.json"  # under <build>/cache: the digest of each file hashed, by its stat
RACY_S = 2.0  # a file changed this recently may change again within its mtime's resolution: not recorded


def build_root(root: Path | None = None) -> Path:
    """Where every build artifact goes: `root`, else $EDGELOOP_BUILD, else ./build."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("EDGELOOP_BUILD") or "build")


SHOWN = 80, 40  # characters of a long path or word a message keeps from its start and its end


def shortened(text: object) -> str:
    """`text` as a message shows it: a 100000-character name would drown the line it is in, so a long
    one keeps its start and its end (a path's file name) around an ellipsis."""
    text, (head, tail) = str(text), SHOWN
    return text if len(text) <= head + tail else f"{text[:head]}…{text[-tail:]}"


def unwritable(target: Path, exc: OSError) -> EdgeloopError:
    """Why the file `target` could not be written, as one line naming it (never the temporary it was
    written as); a full disk in the command line's words for it (deploy.errors.disk_full)."""
    full = disk_full(exc, target.parent)
    if full is not None:
        return full
    return EdgeloopError(f"cannot write {shortened(target)}: {write_reason(target, exc)}", "write it somewhere else")


def write_reason(target: Path, exc: OSError, *, folder: bool = False) -> str:
    """Why `target` (a file, or with `folder` a folder to write in) could not be written, for a line of
    the caller's: a full disk names the folder, a regular file in the way is named, a folder that
    takes no files too, otherwise the system's reason."""
    full = disk_full(exc, target if folder else target.parent)
    if full is not None:
        return full.message
    blocker = next((p for p in ((target, *target.parents) if folder else target.parents) if _present(p)), None)
    if blocker is not None and not blocker.is_dir():
        return f"{shortened(blocker)} is a file, not a folder"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long"
    if blocker is not None and exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder {shortened(blocker)} cannot take new files ({exc.strerror})"
    return exc.strerror or str(exc)


def _present(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:  # a name too long to look up
        return False


@contextlib.contextmanager
def writing(target: Path, scratch: Path | None = None) -> Iterator[None]:
    """Turn the OSError of writing `target` into one EdgeloopError line (unwritable). Within the block,
    only errors of writing are: a full disk or read-only file system, or any error about `scratch`
    (the temporary being written) or a path in it; reading a missing source stays its own error."""
    try:
        yield
    except OSError as exc:
        named = Path(exc.filename) if exc.filename else None
        ours = scratch is None or (named is not None and (named == scratch or named.is_relative_to(scratch)))
        if ours or exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise unwritable(target, exc) from None
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds.
    The parent folder is created as needed; failing to write is one line (unwritable)."""
    target = Path(target)
    tmp_path = _temp_beside(target)
    try:
        with writing(target, tmp_path):
            yield tmp_path
        with writing(target):
            os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_writable(target: str | os.PathLike[str]) -> None:
    """Fail now, as atomic_path would, where a file is to be written after minutes of work."""
    _temp_beside(Path(target)).unlink()


def _temp_beside(target: Path) -> Path:
    """A new temporary file beside `target`, its folder created as needed; failing is one line."""
    with writing(target):
        if target.is_dir():
            raise EdgeloopError(f"{shortened(target)}: is a folder, not a file name",
                                "give the path of the file to write")
        target.parent.mkdir(parents=True, exist_ok=True)
        return _new_temp_file(target)


def refuse_overwriting(output: str | os.PathLike[str], source: str | os.PathLike[str],
                       option: str = "--output") -> None:
    """An artifact written over the file it is made from (`convert -m m.onnx -o m.onnx`) would silently
    replace the user's source: refuse before any work."""
    if Path(output).exists() and Path(source).exists() and os.path.samefile(output, source):
        raise EdgeloopError(f"{option} {output} is the input file itself", "write the result to another file")


def _new_temp_file(target: Path) -> Path:
    """An empty, unique file beside `target` with the usual permissions (0666 less the umask), unlike
    mkstemp's 0600, so the renamed artifact is as readable as any file the user writes."""
    while True:
        candidate = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(target, text.encode())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _DigestBook:
    """sha256 per file, keyed by what stat says of it (device, inode, size, mtime in ns), as git's index
    keeps them: a file that has not changed is not read again, in this process or (through
    `<build>/cache/digests.json`, written by flush(): deploy and farm.run call it once they have
    built) the next one, so a warm deploy costs the same whatever the size of its model and inputs.
    A file changed within RACY_S of being hashed is not recorded on disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[Path, dict[str, list]] = {}  # digests.json path -> entries
        self._dirty: set[Path] = set()

    def _book(self, record: Path) -> dict[str, list]:
        if record not in self._books:
            try:
                data = json.loads(record.read_text())
                self._books[record] = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._books[record] = {}
        return self._books[record]

    def sha256(self, path: str | os.PathLike[str]) -> str:
        real = os.path.realpath(path)
        st = os.stat(real)
        stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        record = (build_root() / "cache" / DIGESTS).resolve()
        with self._lock:
            entry = self._book(record).get(real)
        if isinstance(entry, list) and entry[:4] == stamp:
            return str(entry[4])
        digest = _hash_file(real)
        with self._lock:
            if st.st_mtime_ns < (time.time() - RACY_S) * 1e9:
                self._book(record)[real] = [*stamp, digest]
            else:  # changed just now: it may change again within the mtime's resolution
                self._book(record).pop(real, None)
            self._dirty.add(record)
        return digest

    def flush(self) -> None:
        """Write the books that learnt something (best effort: a lost book only costs hashing again)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            for record in dirty:
                with contextlib.suppress(OSError, EdgeloopError):
                    live = {k: v for k, v in self._books[record].items() if os.path.exists(k)}
                    atomic_write_text(record, json.dumps(live, separators=(",", ":")))


_DIGESTS = _DigestBook()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The file's sha256, computed once while the file stays unchanged (_DigestBook)."""
    return _DIGESTS.sha256(path)


def flush_digests() -> None:
    _DIGESTS.flush()
