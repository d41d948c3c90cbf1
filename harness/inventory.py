"""The farm inventory (`farm.yaml`): which adb servers to ask for devices, and labels per device.

The distributed unit is the adb server: one per farm host, each with its phones attached. The
inventory lists servers; devices are discovered through each one and matched to device profiles
by their own `getprop` answers, so adding a phone to a host needs no edit here.

    servers:
      - 127.0.0.1:5037                 # host:port
      - address: farm-b.lan:5037       # or a mapping
        connect: [10.0.0.7:5555]       # network devices to `adb connect` through that server
    devices:                           # optional, per serial
      28011FDH2000EL: {labels: [rack-a], profile: pixel}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adbutils

from deploy.errors import DeviceError, EdgeloopError
from deploy.profiles import Profile, available_profiles, load_profile
from deploy.yamlnode import did_you_mean, load_yaml
from harness.devices import DEVICE_FAILURES, AdbServer, connect, device_props
from harness.lease import lease_key

ADB_TIMEOUT_S = 10.0
_ADDRESS = re.compile(r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})")
HINT = "see docs/farm.md for the farm.yaml format"


@dataclass(frozen=True)
class ServerEntry:
    server: AdbServer
    connect: tuple[str, ...] = ()  # network devices to `adb connect` through this server


@dataclass(frozen=True)
class DeviceSpec:
    labels: tuple[str, ...] = ()
    profile: str | None = None  # skip property matching for this serial


@dataclass(frozen=True)
class Inventory:
    path: Path
    servers: tuple[ServerEntry, ...]
    devices: dict[str, DeviceSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class FarmDevice:
    """A device as one adb server sees it, with the profiles it matches."""

    server: AdbServer
    serial: str
    profiles: tuple[str, ...]
    labels: tuple[str, ...] = ()
    model: str = ""

    @property
    def key(self) -> str:
        return lease_key(self.server.address, self.serial)

    @property
    def name(self) -> str:
        return f"{self.serial}@{self.server.address}"

    def adb(self) -> adbutils.AdbDevice:
        return self.server.client(ADB_TIMEOUT_S).device(self.serial)


@dataclass
class Discovery:
    devices: list[FarmDevice]
    unreachable: dict[str, str]  # server address -> why
    unmatched: list[str]  # devices that match no profile (name and model), or not ready (state)


def parse_address(text: str, where: str) -> tuple[str, int]:
    found = _ADDRESS.fullmatch(text.strip())
    if not found or not 0 < int(found["port"]) < 65536:
        raise EdgeloopError(f"{where}: '{text}' is not host:port", HINT)
    return found["host"], int(found["port"])


def _server(item: Any, where: str) -> ServerEntry:
    if isinstance(item, str):
        return ServerEntry(AdbServer(*parse_address(item, where)))
    if not isinstance(item, dict) or not isinstance(item.get("address"), str):
        raise EdgeloopError(f"{where}: a server is 'host:port' or {{address: host:port, connect: [...]}}", HINT)
    _refuse_unknown_keys(item, {"address", "connect"}, where)
    connect = item.get("connect") or []
    if not isinstance(connect, list):
        raise EdgeloopError(f"{where}: 'connect' must be a list of host:port", HINT)
    for address in connect:
        parse_address(str(address), f"{where}.connect")
    return ServerEntry(AdbServer(*parse_address(item["address"], where)), tuple(str(a) for a in connect))


def _device_spec(serial: str, item: Any, where: str) -> DeviceSpec:
    if not isinstance(item, dict) or set(item) - {"labels", "profile"}:
        raise EdgeloopError(f"{where}: device '{serial}' takes only 'labels' (list) and 'profile' (name)", HINT)
    labels = item.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise EdgeloopError(f"{where}: labels of '{serial}' must be a list of strings", HINT)
    profile = item.get("profile")
    if profile is not None:
        try:
            load_profile(str(profile))
        except EdgeloopError as exc:
            raise EdgeloopError(f"{where}: device '{serial}': {exc.message}", exc.hint) from None
    return DeviceSpec(labels=tuple(labels), profile=None if profile is None else str(profile))


def read_yaml_mapping(path: Path, what: str, keys: set[str], required: str, hint: str) -> dict[str, Any]:
    """A farm file (inventory or matrix): a YAML mapping of known keys; every problem names the file."""
    try:
        data = load_yaml(Path(path), what)
    except EdgeloopError as exc:
        raise EdgeloopError(exc.message, exc.hint or hint) from None
    if not isinstance(data, dict):
        raise EdgeloopError(f"{path}: the {what} must be a mapping with '{required}'", hint)
    _refuse_unknown_keys(data, keys, str(path))
    return data


def _refuse_unknown_keys(mapping: dict[str, Any], keys: set[str], where: str) -> None:
    """A misspelt key is an error naming the key meant (a misspelt optional key would be ignored)."""
    unknown = sorted(set(mapping) - keys, key=str)
    if unknown:
        raise EdgeloopError(f"{where}: unknown key '{unknown[0]}'", did_you_mean(str(unknown[0]), keys))


def load_inventory(path: Path) -> Inventory:
    """Read and validate `farm.yaml`; every problem names the file and the key."""
    data = read_yaml_mapping(path, "inventory", {"servers", "devices"}, "servers", HINT)
    servers = data.get("servers")
    if not isinstance(servers, list) or not servers:
        raise EdgeloopError(f"{path}: 'servers' must list at least one adb server as host:port", HINT)
    parsed = tuple(_server(item, f"{path}: servers[{i}]") for i, item in enumerate(servers))
    devices = data.get("devices") or {}
    if not isinstance(devices, dict):
        raise EdgeloopError(f"{path}: 'devices' must map serials to {{labels, profile}}", HINT)
    specs = {str(serial): _device_spec(str(serial), item, f"{path}: devices") for serial, item in devices.items()}
    return Inventory(path=Path(path), servers=parsed, devices=specs)


def _profiles(names: list[str] | None) -> list[Profile]:
    """Most specific first (most match keys), so a device's first profile is what it most precisely is."""
    profiles = [load_profile(name) for name in (names if names is not None else sorted(available_profiles()))]
    return sorted(profiles, key=lambda p: -len(p.match))


def discover(inventory: Inventory, profiles: list[str] | None = None) -> Discovery:
    """Ask every server for its ready devices and match each to the given profiles (default: all known)."""
    candidates = _profiles(profiles)
    found = Discovery(devices=[], unreachable={}, unmatched=[])
    for entry in inventory.servers:
        server, adb = entry.server, entry.server.client(ADB_TIMEOUT_S)
        try:
            adb.server_version()  # the host first: a network phone that is off must not hide the others
            for address in entry.connect:
                try:
                    connect(adb, address, timeout=ADB_TIMEOUT_S)
                except DeviceError as exc:
                    found.unmatched.append(f"{address}@{server.address} (not connected: {exc.message})")
            infos = adb.list()
        except (adbutils.AdbError, OSError) as exc:
            found.unreachable[server.address] = str(exc) or type(exc).__name__
            continue
        for info in infos:
            name = f"{info.serial}@{server.address}"
            if info.state != "device":
                found.unmatched.append(f"{name} ({info.state})")
                continue
            spec = inventory.devices.get(info.serial, DeviceSpec())
            try:
                props = device_props(adb.device(info.serial))
            except DeviceError as exc:
                found.unmatched.append(f"{name} (getprop failed: {exc})")
                continue
            model = props.get("ro.product.model", "?")
            names = (spec.profile,) if spec.profile else tuple(p.name for p in candidates if p.matches(props))
            if not names:
                found.unmatched.append(f"{name} ({model})")
                continue
            found.devices.append(FarmDevice(server, info.serial, names, spec.labels, model))
    return found


def device_state(device: FarmDevice) -> str:
    """'device' when ready and answering a shell round trip; otherwise 'offline', 'missing',
    'unresponsive' (listed but not answering) or 'server-down', which tell a lost device from a lost host."""
    adb = device.server.client(ADB_TIMEOUT_S)
    try:
        infos = adb.list()
    except DEVICE_FAILURES:
        return "server-down"
    state = next((str(info.state) for info in infos if info.serial == device.serial), "missing")
    if state != "device":
        return state
    try:
        answer = adb.device(device.serial).shell2("echo ok", timeout=ADB_TIMEOUT_S).output.strip()
    except DEVICE_FAILURES:
        return "unresponsive"
    return "device" if answer == "ok" else "unresponsive"
