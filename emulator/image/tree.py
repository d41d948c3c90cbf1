"""Virtual files: folders whose entries and files whose text are made up when they are looked at.

The Sandbox serves them (`Sandbox(virtual=...)`) for the folders in `roots`, and never looks for
them on the host, so every view of the tree (the shell's `cat`/`ls`/`test`, sync's STAT/LIST/RECV)
agrees. They are read-only: the Sandbox refuses writes outside its writable areas, so writing one
is `Permission denied`, as for the shell user on a phone.
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from emulator.sandbox import ISDIR, NOENT, NOTDIR, DeviceOSError

ROOT, SHELL = 0, 2000


@dataclass(frozen=True)
class File:
    """Text made when the file is opened. `size` is what stat says: 0 in /proc, 4096 in /sys, as on Linux."""

    render: Callable[[], str]
    size: int = 0
    mode: int = 0o444
    owner: int = ROOT


@dataclass(frozen=True)
class Dir:
    entries: Callable[[], Mapping[str, Node]]
    mode: int = 0o555
    owner: int = ROOT


Node = File | Dir


def fixed(entries: Mapping[str, Node], mode: int = 0o555) -> Dir:
    """A folder whose entries never change."""
    return Dir(lambda: entries, mode)


class VirtualTree:
    """Folders mounted at device paths (`/proc`, `/sys`); times are the device's boot (Unix time)."""

    def __init__(self, mounts: Mapping[str, Dir], boot_time: Callable[[], float]) -> None:
        self.mounts = dict(mounts)
        self.roots = tuple(mounts)
        self._boot_time = boot_time

    def _node(self, path: str) -> Node:
        root = next(r for r in self.roots if path == r or path.startswith(r + "/"))
        node: Node = self.mounts[root]
        for part in path[len(root):].split("/")[1:]:
            if not isinstance(node, Dir):
                raise DeviceOSError(path, NOTDIR)
            child = node.entries().get(part)
            if child is None:
                raise DeviceOSError(path, NOENT)
            node = child
        return node

    def stat(self, path: str) -> os.stat_result:
        node = self._node(path)
        kind, size = (statmod.S_IFDIR, 0) if isinstance(node, Dir) else (statmod.S_IFREG, node.size)
        when = int(self._boot_time())
        return os.stat_result((kind | node.mode, 0, 0, 1, node.owner, node.owner, size, when, when, when))

    def listdir(self, path: str) -> list[str]:
        node = self._node(path)
        if not isinstance(node, Dir):
            raise DeviceOSError(path, NOTDIR)
        return sorted(node.entries())

    def read(self, path: str) -> bytes:
        """The file's text as of now."""
        node = self._node(path)
        if not isinstance(node, File):
            raise DeviceOSError(path, ISDIR)
        return node.render().encode()
