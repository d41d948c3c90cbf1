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

from deploy.errors import EdgeloopError
from deploy.yamlnode import did_you_mean, load_yaml_node, validate

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


ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64", "x86")
_TEXT = {"type": ["string", "number", "boolean", "null"]}  # a property's value: YAML may read `34` as a number
SCHEMA: dict = {  # a device profile (docs/emulator.md, "What is emulated"; deploy/device_profiles/*.yaml)
    "type": "object",
    "required": ["name", "abi", "units", "match", "props"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": f"^{NAME.pattern}$",
                 "description": "letters, digits, '.', '_' and '-', starting with a letter or digit: it names folders"},
        "description": {"type": "string"},
        "abi": {"enum": list(ABIS)},
        "units": {"type": "array", "minItems": 1, "items": {"enum": sorted(_UNITS)}},
        "hexagon": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["arch"], "additionalProperties": False,
            "properties": {"arch": {"type": "string", "pattern": "^v[0-9]+$"}, "kind": {"enum": ["dsp", "htp"]}}}]},
        "match": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "property name -> regular expression its value must match"},
        "props": {"type": "object", "additionalProperties": _TEXT},
        # bounded as a phone's are: a number past any device is a typo, and too large for the emulator's sums
        "storage_mb": {"type": "integer", "minimum": 1, "maximum": 16 << 20,
                       "description": "the emulated device's storage, in MiB (at most 16 TiB)"},
        "ram_mb": {"type": "integer", "minimum": 64, "maximum": 1 << 20, "description": "what net-run may use, in MiB "
                   "(at most 1 TiB)"},
        "run_limit_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400,
                        "description": "how long one run may take, in seconds (at most a day)"},
        "packages": {"type": "array", "items": {"type": "string"}},
    },
}


def load_profile_file(path: Path) -> Profile:
    """A device profile, checked against SCHEMA: every problem is one line naming the file and the line."""
    root = load_yaml_node(path, "device profile")
    data = root.data()
    validate(root, data, SCHEMA)
    for key, pattern in data["match"].items():
        try:
            re.compile(pattern)
        except re.error as exc:
            root.at(["match", key]).fail(f"not a regular expression ({exc})")
    units = tuple(data["units"])
    hexagon = Hexagon(data["hexagon"]["arch"], data["hexagon"].get("kind", "dsp")) if data.get("hexagon") else None
    if ("dsp" in units or "aip" in units) and hexagon is None:
        root.at(["units"]).fail("a profile with a dsp or aip unit needs 'hexagon'")
    return Profile(
        name=data["name"],
        description=data.get("description", ""),
        abi=data["abi"],
        units=units,
        hexagon=hexagon,
        match=dict(data["match"]),
        props={str(k): "" if v is None else str(v) for k, v in data["props"].items()},
        storage_mb=data.get("storage_mb", 4096),
        ram_mb=data.get("ram_mb", 4096),
        run_limit_s=float(data.get("run_limit_s", 3600)),
        path=path,
        packages=tuple(data.get("packages", ())),
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
