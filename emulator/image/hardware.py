"""The silicon behind a profile: CPU cores and build ids, read from hardware.yaml (data, not code).

Profiles describe phones by their properties; the SoC they name (`ro.soc.model`) decides what the
kernel reports of its cores, so adding a phone with a known SoC needs no entry here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.profiles import Profile
from deploy.yamlnode import load_yaml

DATA = Path(__file__).resolve().parent / "hardware.yaml"  # package data: ships in the wheel

_CLUSTER = {
    "type": "object", "additionalProperties": False,
    "required": ["cores", "name", "implementer", "part", "variant", "min_mhz", "max_mhz"],
    "properties": {
        "cores": {"type": "integer", "minimum": 1, "maximum": 32},
        "name": {"type": "string"},
        "implementer": {"type": "string", "pattern": "^0x[0-9a-f]+$"},
        "part": {"type": "string", "pattern": "^0x[0-9a-f]+$"},
        "variant": {"type": "string", "pattern": "^0x[0-9a-f]+$"},
        "min_mhz": {"type": "integer", "minimum": 1},
        "max_mhz": {"type": "integer", "minimum": 1},
    },
}
_SOC = {
    "type": "object", "additionalProperties": False, "required": ["bogomips", "features", "clusters"],
    "properties": {"bogomips": {"type": "string"}, "features": {"type": "string"},
                   "clusters": {"type": "array", "minItems": 1, "items": _CLUSTER}},
}
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["socs", "default", "builds"],
    "properties": {
        "socs": {"type": "object", "additionalProperties": _SOC},
        "default": _SOC,
        "builds": {"type": "object", "required": ["default"],
                   "additionalProperties": {"type": "string", "pattern": r"^[A-Z0-9]+\.\d{6}\.\d{3}$"}},
    },
}


@dataclass(frozen=True)
class Core:
    """One CPU as /proc/cpuinfo and cpufreq show it; `cluster` is its index among the SoC's clusters,
    little first (clusters share a cpufreq policy and a thermal zone)."""

    index: int
    cluster: int
    name: str
    implementer: str
    part: str
    variant: str
    min_khz: int
    max_khz: int


@dataclass(frozen=True)
class Soc:
    bogomips: str
    features: str
    cores: tuple[Core, ...]

    @property
    def clusters(self) -> list[tuple[Core, ...]]:
        """The cores of each cluster, in order."""
        return [tuple(c for c in self.cores if c.cluster == k) for k in range(self.cores[-1].cluster + 1)]


@functools.cache
def _data() -> dict[str, Any]:
    return load_yaml(DATA, "hardware table", SCHEMA)


def soc_for(profile: Profile) -> Soc:
    """The SoC the profile's `ro.soc.model` names, or the table's default."""
    data = _data()
    entry = data["socs"].get(profile.props.get("ro.soc.model", ""), data["default"])
    cores: list[Core] = []
    for k, cluster in enumerate(entry["clusters"]):
        for _ in range(cluster["cores"]):
            cores.append(Core(len(cores), k, cluster["name"], cluster["implementer"], cluster["part"],
                              cluster["variant"], cluster["min_mhz"] * 1000, cluster["max_mhz"] * 1000))
    return Soc(entry["bogomips"], " ".join(entry["features"].split()), tuple(cores))


def build_id(sdk: str) -> str:
    """ro.build.id of a release of that SDK level."""
    builds = _data()["builds"]
    return builds.get(sdk, builds["default"])
