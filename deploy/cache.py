"""Content-addressed build cache: an artifact is rebuilt only when what it is made from changes.

The key hashes the artifact kind, the caller's key parts (content hashes and options, never
paths or mtimes) and the tool version, so a new edgeloop never reuses an old artifact. Each
entry is a folder `build/cache/<kind>/<key>/` that appears whole (built in a temporary folder
beside it, then renamed) or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import TOOL_VERSION
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_path, build_root, unwritable, writing


@dataclass(frozen=True)
class CacheResult:
    path: Path  # the cached artifact (`<entry>/<filename>`)
    hit: bool  # True when it already existed and nothing was built


def cache_key(kind: str, key_parts: dict[str, Any]) -> str:
    payload = json.dumps({"kind": kind, "parts": key_parts, "tool_version": TOOL_VERSION},
                         sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@contextlib.contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside `target`; it becomes `target` if the block succeeds and
    `target` does not exist yet (another process may have won the race: its result is kept). Failing
    to write there is one line naming `target` (fsutil.writing), not the temporary folder."""
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with writing(target, tmp):
            yield tmp
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if not target.is_dir():
                raise unwritable(target, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached(kind: str, key_parts: dict[str, Any], build: Callable[[Path], None], filename: str,
           root: Path | None = None) -> CacheResult:
    """Return `build/cache/<kind>/<key>/<filename>`, calling `build(tmpdir)` only on a miss;
    `build` must write `tmpdir/filename` (and may write more files beside it)."""
    entry = build_root(root) / "cache" / kind / cache_key(kind, key_parts)
    artifact = entry / filename
    if artifact.exists():
        return CacheResult(artifact, hit=True)
    if entry.exists():  # emptied by hand: entries are only ever created whole, so rebuild it
        shutil.rmtree(entry)
    with staging_dir(entry) as tmp:
        build(tmp)
        if not (tmp / filename).exists():
            raise RuntimeError(f"cache build for '{kind}' did not write {filename}")
    return CacheResult(artifact, hit=False)


def cached_copy(kind: str, key_parts: dict[str, Any], build: Callable[[Path], None], filename: str,
                output: Path | None, root: Path | None = None) -> CacheResult:
    """`cached`, then the artifact copied atomically to `output` when one is given (its path returned):
    the cache keeps its own copy, so a later identical build still hits."""
    result = cached(kind, key_parts, build, filename, root)
    if output is None:
        return result
    with atomic_path(output) as tmp:
        shutil.copyfile(result.path, tmp)
    return CacheResult(Path(output), result.hit)


BUILD_OUTPUTS = ("cache", "bundles", "containers", "quantized")  # what edgeloop writes under the build root


def build_outputs(root: Path | None = None) -> list[Path]:
    """The folders edgeloop itself writes in the build root: `clean` deletes these and nothing else
    there (docs suggest `inputs --output build/inputs`: the user's own files stay)."""
    return [build_root(root) / name for name in BUILD_OUTPUTS]


def clean(folders: list[Path]) -> list[Path]:
    """Delete build output folders (cache, bundles, runs); returns those that existed. Refuses a
    folder that holds the working directory, so a stray $EDGELOOP_BUILD=. cannot wipe a project.
    A symbolic link in a folder's place is removed itself: what it leads to is not edgeloop's."""
    removed = []
    cwd = Path.cwd().resolve()
    for folder in folders:
        if folder.is_symlink():
            folder.unlink()
            removed.append(folder)
            continue
        resolved = folder.resolve()
        if cwd.is_relative_to(resolved):
            raise EdgeloopError(f"refusing to delete {resolved}: it holds the working directory",
                                "point EDGELOOP_BUILD at a build folder")
        if resolved.exists():
            shutil.rmtree(resolved)
            removed.append(folder)
    return removed
