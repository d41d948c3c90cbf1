"""/sys as the shell user reads it: CPUs and their clocks, thermal zones and the battery.

A busy core runs at its maximum clock (schedutil), capped when the die is past its trip point
(emulator.image.thermal); an idle one at its minimum. Clocks are steps of each cluster's table
(STEPS from min to max). Every file is 4096 bytes to stat, as sysfs attributes are; the governor
files are 0644 root-owned, so the shell user's writes are refused (no root on this device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from emulator.image import thermal
from emulator.image.hardware import Core
from emulator.image.tree import Dir, File, Node, fixed

if TYPE_CHECKING:
    from emulator.image import DeviceImage

STEPS = 12
PAGE = 4096
GOVERNOR = "schedutil"
BATTERY_FILES = ("status", "health", "present", "technology", "capacity", "voltage_now", "temp", "charge_counter",
                 "charge_full_design", "type")
ROLES = {1: ("cpu",), 2: ("little", "big"), 3: ("little", "mid", "big"), 4: ("little", "mid", "big", "prime")}


def _attr(value: object, mode: int = 0o444) -> File:
    """An attribute that never changes."""
    return File(lambda: f"{value}\n", size=PAGE, mode=mode)


def _live(value: Callable[[], object]) -> File:
    """An attribute read from the image when it is opened."""
    return File(lambda: f"{value()}\n", size=PAGE)


def frequencies(core: Core) -> list[int]:
    """The core's clock table in kHz, min to max."""
    span = core.max_khz - core.min_khz
    return [core.min_khz + span * k // (STEPS - 1) for k in range(STEPS)]


def max_allowed(core: Core, die: float) -> int:
    """The fastest step at or below the thermal cap."""
    limit = core.max_khz * thermal.clock_cap(die)
    return max(f for f in frequencies(core) if f <= limit or f == core.min_khz)


def current(image: DeviceImage, core: Core) -> int:
    snapshot = image.activity.snapshot()
    return max_allowed(core, snapshot.temperature) if snapshot.is_busy(core.index) else core.min_khz


def _cpufreq(image: DeviceImage, core: Core, cluster: tuple[Core, ...]) -> Dir:
    siblings = " ".join(str(c.index) for c in cluster)
    return fixed({
        "scaling_cur_freq": _live(lambda: current(image, core)),
        "scaling_max_freq": _live(lambda: max_allowed(core, image.activity.snapshot().temperature)),
        "scaling_min_freq": _attr(core.min_khz),
        "cpuinfo_max_freq": _attr(core.max_khz),
        "cpuinfo_min_freq": _attr(core.min_khz),
        "scaling_governor": _attr(GOVERNOR, 0o644),
        "scaling_available_governors": _attr(f"{GOVERNOR} performance powersave"),
        "scaling_available_frequencies": _attr(" ".join(map(str, frequencies(core)))),
        "affected_cpus": _attr(siblings),
        "related_cpus": _attr(siblings),
    }, mode=0o755)


def _cpus(image: DeviceImage) -> Dir:
    soc = image.soc
    last = f"0-{len(soc.cores) - 1}"
    entries: dict[str, Node] = {"online": _attr(last), "present": _attr(last), "possible": _attr(last),
                                "offline": _attr("")}
    policies: dict[str, Node] = {}
    for cluster in soc.clusters:
        for core in cluster:
            freq = _cpufreq(image, core, cluster)
            entries[f"cpu{core.index}"] = fixed({"online": _attr(1), "cpufreq": freq}, mode=0o755)
            policies.setdefault(f"policy{cluster[0].index}", freq)  # a cluster's cores share one policy
    entries["cpufreq"] = fixed(policies, mode=0o755)
    return fixed(entries, mode=0o755)


def zones(image: DeviceImage) -> list[tuple[str, float]]:
    """(type, gain over the die) of each thermal zone: one per CPU cluster, then gpu, battery, skin."""
    roles = ROLES.get(len(image.soc.clusters)) or tuple(f"cluster{k}" for k in range(len(image.soc.clusters)))
    cpu = [(f"cpu-{role}" if len(roles) > 1 else role, thermal.CPU_ZONE_GAIN) for role in roles]
    return cpu + list(thermal.ZONE_GAINS.items())


def zone_millicelsius(image: DeviceImage, gain: float) -> int:
    return round(thermal.zone_temperature(image.activity.snapshot().temperature, gain) * 1000)


def _thermal(image: DeviceImage) -> Dir:
    entries: dict[str, Node] = {}
    for k, (kind, gain) in enumerate(zones(image)):
        entries[f"thermal_zone{k}"] = fixed({
            "type": _attr(kind),
            "temp": _live(lambda g=gain: zone_millicelsius(image, g)),
            "mode": _attr("enabled"),
        }, mode=0o755)
    return fixed(entries, mode=0o755)


def battery(image: DeviceImage) -> dict[str, str | int]:
    """The battery's state now, by its power_supply names (also what `dumpsys battery` reports)."""
    snapshot = image.activity.snapshot()
    level = thermal.battery_level(snapshot.uptime, snapshot.load_heat_s)
    return {
        "status": "Discharging",  # adb over TCP, as over Wi-Fi: nothing charges it
        "health": "Good",
        "present": 1,
        "technology": "Li-ion",
        "capacity": round(level),
        "voltage_now": thermal.battery_voltage_uv(level, snapshot.load_heat),
        "temp": round(thermal.zone_temperature(snapshot.temperature, thermal.ZONE_GAINS["battery"]) * 10),
        "charge_counter": int(thermal.DESIGN_CAPACITY_UAH * level / 100),
        "charge_full_design": thermal.DESIGN_CAPACITY_UAH,
        "type": "Battery",
    }


def _power_supply(image: DeviceImage) -> Dir:
    files = {name: _live(lambda n=name: battery(image)[n]) for name in BATTERY_FILES}
    return fixed({"battery": fixed(files, mode=0o755)}, mode=0o755)


def tree(image: DeviceImage) -> Dir:
    return fixed({
        "devices": fixed({"system": fixed({"cpu": _cpus(image)}, mode=0o755)}, mode=0o755),
        "class": fixed({"thermal": _thermal(image), "power_supply": _power_supply(image)}, mode=0o755),
    }, mode=0o755)
