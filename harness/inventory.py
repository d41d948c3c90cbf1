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
from deploy.yamlnode import load_yaml_node, validate
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


_HOST_PORT = {"type": "string", "description": "host:port, e.g. 127.0.0.1:5037"}  # its form: parse_address
SCHEMA: dict[str, Any] = {  # farm.yaml (docs/farm.md)
    "type": "object", "required": ["servers"], "additionalProperties": False, "properties": {
        "servers": {"type": "array", "minItems": 1, "description": "at least one adb server as host:port",
                    "items": {"oneOf": [_HOST_PORT, {
                        "type": "object", "required": ["address"], "additionalProperties": False, "properties": {
                            "address": _HOST_PORT, "connect": {"type": "array", "items": _HOST_PORT}}}]}},
        "devices": {"type": ["object", "null"], "additionalProperties": {
            "type": "object", "additionalProperties": False, "properties": {
                "labels": {"type": "array", "items": {"type": "string"}}, "profile": {"type": "string"}}}}}}


def load_inventory(path: Path) -> Inventory:
    """Read `farm.yaml` and check it against SCHEMA: every problem names the file, the line and the key."""
    root = load_yaml_node(Path(path), "inventory")
    data = root.data()
    validate(root, data, SCHEMA)
    servers = []
    for i, item in enumerate(data["servers"]):
        entry = item if isinstance(item, dict) else {"address": item}
        where = f"{path}:{root.at(['servers', i]).line}: servers[{i}]"
        connect = tuple(entry.get("connect", ()))
        for address in (entry["address"], *connect):
            parse_address(address, where)
        servers.append(ServerEntry(AdbServer(*parse_address(entry["address"], where)), connect))
    devices = {}
    for serial, spec in (data.get("devices") or {}).items():
        if "profile" in spec:
            try:
                load_profile(spec["profile"])
            except EdgeloopError as exc:
                root.at(["devices", serial, "profile"]).fail(exc.message, exc.hint)
        devices[str(serial)] = DeviceSpec(labels=tuple(spec.get("labels", ())), profile=spec.get("profile"))
    return Inventory(path=Path(path), servers=tuple(servers), devices=devices)


def _profiles(names: list[str] | None) -> list[Profile]:
    """Most specific first (most match keys), so a device's first profile is what it most precisely is."""
    profiles = [load_profile(name) for name in (names if names is not None else sorted(available_profiles()))]
    return sorted(profiles, key=lambda p: -len(p.match))


def discover(inventory: Inventory, profiles: list[str] | None = None) -> Discovery:
    """Ask every server for its ready devices and match each to the given profiles (default: all known).
    No server answering at all is bad input (a wrong farm.yaml, or servers not started): one line, exit 2."""
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
    if inventory.servers and len(found.unreachable) == len(inventory.servers):
        raise EdgeloopError(f"no adb server of {inventory.path} answered: "
                            + "; ".join(f"{s}: {why}" for s, why in found.unreachable.items()),
                            "start them with `adb -a -P PORT nodaemon server` (docs/farm.md)")
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
