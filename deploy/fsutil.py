"""Atomic writes and hashing: no half-written artifact is ever taken for a good one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from deploy.errors import EdgeloopError

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    if target.is_dir():
        raise EdgeloopError(f"{target}: is a folder, not a file name", "give the path of the file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file stands where a folder should be, or no permission
        raise EdgeloopError(f"{target}: cannot create its folder ({exc.strerror})") from None
    tmp_path = _new_temp_file(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
