"""Device profiles: what a kind of phone is (identity, ABI, compute units), loaded from YAML.

Profiles describe real hardware: the harness matches real phones against `match`, and the
emulated device answers `getprop` from `props`. The shipped ones are package data
(`deploy/device_profiles/`, so a wheel carries them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError
from deploy.yamlnode import did_you_mean, load_yaml

PROFILES_DIR = Path(__file__).resolve().parent / "device_profiles"  # package data: ships in the wheel

# Each runtime name (SNPE's) and the compute unit it needs on the device.
RUNTIME_UNITS: dict[str, str] = {"cpu": "cpu", "gpu": "gpu", "gpu_fp16": "gpu", "dsp": "dsp", "aip": "aip"}
QUANTIZED_RUNTIMES = frozenset({"dsp", "aip"})
_UNITS = frozenset(RUNTIME_UNITS.values())
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a profile's name, also a file name


@dataclass(frozen=True)
class Hexagon:
    arch: str  # "v66", "v73", ...
    kind: str  # "dsp" (HVX) or "htp" (tensor processor)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    abi: str
    units: tuple[str, ...]
    hexagon: Hexagon | None
    match: dict[str, str]
    props: dict[str, str]
    storage_mb: int
    ram_mb: int  # the emulated device's net-run may use this much memory (emulator.engine)
    run_limit_s: float  # ... and run this long
    path: Path = field(compare=False)
    packages: tuple[str, ...] = ()  # what the emulated device's `pm list packages` shows (optional key)

    @property
    def runtimes(self) -> tuple[str, ...]:
        """Every runtime name this device can run, in canonical order."""
        return tuple(r for r, unit in RUNTIME_UNITS.items() if unit in self.units)

    def supports(self, runtime: str) -> bool:
        return runtime in self.runtimes

    def require_runtime(self, runtime: str) -> None:
        if runtime not in RUNTIME_UNITS:
            raise EdgeloopError(f"unknown runtime '{runtime}'", f"choose one of {', '.join(RUNTIME_UNITS)}")
        if not self.supports(runtime):
            raise EdgeloopError(
                f"profile '{self.name}' has no {runtime} runtime",
                f"it has {', '.join(self.runtimes)}",
            )

    def matches(self, props: dict[str, str]) -> bool:
        """True when every `match` pattern fully matches the device's property of that name."""
        return all(re.fullmatch(pattern, props.get(key, "")) for key, pattern in self.match.items())


def profile_dirs() -> list[Path]:
    """Where profiles are looked up: $EDGELOOP_PROFILES (colon separated) first, then the shipped ones."""
    extra = [Path(p) for p in os.environ.get("EDGELOOP_PROFILES", "").split(os.pathsep) if p]
    return [*extra, PROFILES_DIR]


def _require(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise EdgeloopError(f"{path}: key '{key}' must be a {kind.__name__}", "see docs/emulator.md")
    return value


def load_profile_file(path: Path) -> Profile:
    data = load_yaml(path, "device profile")
    if not isinstance(data, dict):
        raise EdgeloopError(f"{path}: a device profile must be a mapping")
    units = tuple(_require(data, "units", list, path))
    unknown = sorted(set(units) - _UNITS)
    if unknown:
        raise EdgeloopError(f"{path}: unknown compute unit(s) {unknown}", f"known: {sorted(_UNITS)}")
    hexagon_data = data.get("hexagon")
    hexagon = None
    if hexagon_data is not None:
        if not isinstance(hexagon_data, dict) or not re.fullmatch(r"v\d+", str(hexagon_data.get("arch", ""))):
            raise EdgeloopError(f"{path}: 'hexagon' must be {{arch: vNN, kind: dsp|htp}} or null")
        hexagon = Hexagon(arch=hexagon_data["arch"], kind=str(hexagon_data.get("kind", "dsp")))
    if ("dsp" in units or "aip" in units) and hexagon is None:
        raise EdgeloopError(f"{path}: a profile with a dsp or aip unit needs 'hexagon'")
    props = {str(k): "" if v is None else str(v) for k, v in _require(data, "props", dict, path).items()}
    name = _require(data, "name", str, path)
    if not NAME.fullmatch(name):  # it names folders: an emulated device's state, report folders
        raise EdgeloopError(f"{path}: profile name {name!r} is not a plain name",
                            "use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        abi=_require(data, "abi", str, path),
        units=units,
        hexagon=hexagon,
        match={str(k): str(v) for k, v in _require(data, "match", dict, path).items()},
        props=props,
        storage_mb=int(data.get("storage_mb", 4096)),
        ram_mb=int(data.get("ram_mb", 4096)),
        run_limit_s=float(data.get("run_limit_s", 3600)),
        path=path,
        packages=tuple(map(str, _require(data, "packages", list, path) if "packages" in data else [])),
    )


def available_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(profile_dirs()):
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = path
    return found


def load_profile(name: str) -> Profile:
    """Load a profile by name (or by path to a YAML file)."""
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise EdgeloopError(f"{name}: no such device profile file", "give the path of a profile YAML, or the "
                                f"name of one: {', '.join(sorted(available_profiles()))}")
        return load_profile_file(Path(name))
    known = available_profiles()
    if not known:  # only when the shipped folder was removed and EDGELOOP_PROFILES names no profiles
        raise EdgeloopError(f"unknown device profile '{name}': no profiles in {', '.join(map(str, profile_dirs()))}",
                            "set EDGELOOP_PROFILES to a folder of profile YAMLs")
    if name not in known:
        raise EdgeloopError(f"unknown device profile '{name}'", did_you_mean(name, known))
    return load_profile_file(known[name])
