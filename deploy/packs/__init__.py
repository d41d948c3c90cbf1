"""Runtime packs: data (a pack.yaml and jinja2 templates) saying how a bundle runs on a device.

A pack names the files to copy from an SDK for an ABI, Hexagon arch and runtime, the run
script's environment and net-run command line, the containers it accepts and where timings
land. Adding a runtime (SNPE, QNN, TFLite's benchmark_model) is a new pack folder, not code.
`schema` reads and validates pack.yaml, `resolve` turns a pack into a PackPlan for one bundle.
The schema is documented in docs/runtime-packs.md ("Pack schema").
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from deploy.errors import EdgeloopError
from deploy.packs.resolve import PackPlan, plan
from deploy.packs.schema import Pack, parse_pack
from deploy.yamlnode import did_you_mean

__all__ = ["PACKS_DIR", "Pack", "PackPlan", "available_packs", "load_pack", "parse_pack", "plan"]

PACKS_DIR = Path(__file__).resolve().parent


def available_packs() -> dict[str, Path]:
    """Pack folders by name: the shipped ones, then $EDGELOOP_PACKS (colon separated) overriding them."""
    found: dict[str, Path] = {}
    extra = [Path(p) for p in os.environ.get("EDGELOOP_PACKS", "").split(os.pathsep) if p]
    for folder in [PACKS_DIR, *extra]:
        for pack_yaml in sorted(folder.glob("*/pack.yaml")):
            found[pack_yaml.parent.name] = pack_yaml.parent
    return found


def load_pack(name: str) -> Pack:
    """Load a pack by name, or from a folder holding a pack.yaml."""
    folder = Path(name)
    if not (folder / "pack.yaml").is_file():
        known = available_packs()
        if name not in known:
            raise EdgeloopError(f"unknown runtime pack '{name}'", did_you_mean(name, known))
        folder = known[name]
    return _parsed(folder.resolve() / "pack.yaml", _stamp(folder))


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What the pack's own files are now (name, mtime, size): an edited pack is read again."""
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file())


@functools.lru_cache(maxsize=32)
def _parsed(path: Path, _stamp: tuple[tuple[str, int, int], ...]) -> Pack:
    """A pack is parsed once per process while its files stay the same (a deploy asks for it per job)."""
    return parse_pack(path)
