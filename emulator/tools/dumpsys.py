"""`/system/bin/dumpsys`: the services a benchmark script asks about, in Android 14's layouts.

battery (what adbutils' `battery()` and ppadb's `get_battery_level` parse), thermalservice,
meminfo [NAME|PID] and cpuinfo, from the device image; `-l` lists them and no argument dumps them
all. Another name is
`Can't find service: NAME` on stderr, and dumpsys still exits 0, as Android's does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from emulator.image import thermal
from emulator.image.procfs import memory_rows
from emulator.image.sysfs import battery, zones
from emulator.programs import ProgramContext, register

if TYPE_CHECKING:
    from emulator.image import DeviceImage, ProcessView

BATTERY_STATUS = {"Charging": 2, "Discharging": 3, "Not charging": 4, "Full": 5}
THERMAL_TYPES = {"cpu": 0, "gpu": 1, "battery": 2, "skin": 3}


def dump_battery(image: DeviceImage, _args: list[str]) -> str:
    state = battery(image)
    rows = [
        ("AC powered", "false"), ("USB powered", "false"), ("Wireless powered", "false"),
        ("Dock powered", "false"), ("Max charging current", 0), ("Max charging voltage", 0),
        ("Charge counter", state["charge_counter"]), ("status", BATTERY_STATUS[str(state["status"])]),
        ("health", 2), ("present", "true"), ("level", state["capacity"]), ("scale", 100),
        ("voltage", int(state["voltage_now"]) // 1000), ("temperature", state["temp"]),
        ("technology", state["technology"]),
    ]
    return "Current Battery Service state:\n" + "".join(f"  {key}: {value}\n" for key, value in rows)


def dump_thermalservice(image: DeviceImage, _args: list[str]) -> str:
    die = image.activity.snapshot().temperature
    status = thermal.thermal_status(die)
    temperatures = "".join(
        f"\tTemperature{{mValue={thermal.zone_temperature(die, gain):.1f}, "
        f"mType={THERMAL_TYPES[kind.split('-')[0]]}, mName={kind}, mStatus={status}}}\n" for kind, gain in zones(image))
    return (f"IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 0\nThermalStatusListeners:\n"
            f"\tcallbacks: 0\nThermal Status: {status}\nCached temperatures:\n{temperatures}HAL Ready: true\n"
            f"HAL connection:\n\tThermalHAL AIDL 1  connected: yes\nCurrent temperatures from HAL:\n{temperatures}")


def _header(image: DeviceImage) -> str:
    uptime_ms = int(image.activity.snapshot().uptime * 1000)
    return f"Applications Memory Usage (in Kilobytes):\nUptime: {uptime_ms} Realtime: {uptime_ms}\n\n"


def _kb(value: int) -> str:
    return f"{value:,}K"


def dump_meminfo(image: DeviceImage, args: list[str]) -> str:
    processes = image.processes()
    names = [a for a in args if not a.startswith("-")]
    if names:
        chosen = [p for p in processes if names[0] in (p.name, str(p.pid), p.cmdline.split(" ", 1)[0])]
        if not chosen:
            return f"No process found for: {names[0]}\n"
        return _header(image) + "".join(_process_meminfo(p) for p in chosen)
    rows = memory_rows(image)
    lines = "".join(f"{_kb(p.memory['VmRSS']):>12}: {p.name} (pid {p.pid})\n"
                    for p in sorted(processes, key=lambda p: -p.memory["VmRSS"]))
    total, free = rows["MemTotal"], rows["MemAvailable"]
    return (_header(image) + f"Total PSS by process:\n{lines}\nTotal RAM: {_kb(total)} (status normal)\n"
            f" Free RAM: {_kb(free)}\n Used RAM: {_kb(total - free)}\n Lost RAM: {_kb(0)}\n")


def _process_meminfo(process: ProcessView) -> str:
    """One process's summary: its resident memory counts as native heap (it has no Java heap)."""
    rss = process.memory["VmRSS"]
    heap = process.memory["VmHWM"]
    head = (f"** MEMINFO in pid {process.pid} [{process.name}] **\n"
            f"{'':>15}{'Pss':>9}{'Private':>9}{'Private':>9}{'SwapPss':>9}{'Rss':>9}{'Heap':>9}{'Heap':>9}{'Heap':>9}\n"
            f"{'':>15}{'Total':>9}{'Dirty':>9}{'Clean':>9}{'Dirty':>9}{'Total':>9}{'Size':>9}{'Alloc':>9}{'Free':>9}\n")
    row = f"{rss:>9}{rss * 9 // 10:>9}{rss // 10:>9}{0:>9}{rss:>9}{heap:>9}{rss:>9}{heap - rss:>9}\n"
    return head + f"{'Native Heap':>15}" + row + f"{'TOTAL':>15}" + row + "\n"


def dump_cpuinfo(image: DeviceImage, _args: list[str]) -> str:
    """CPU use since boot: each running process's busy core-seconds against the device's time."""
    snapshot = image.activity.snapshot()
    span = max(snapshot.uptime * image.activity.cores, 1e-9)
    lines = []
    for process in image.processes():
        if process.work:
            share = 100 * process.work.busy_s / span
            lines.append(f"  {share:.1f}% {process.pid}/{process.name}: {share * 0.9:.1f}% user + "
                         f"{share * 0.1:.1f}% kernel\n")
    total = 100 * sum(snapshot.busy) / span
    one, five, fifteen = snapshot.loadavg
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(image.wall_time()))
    return (f"Load: {one:.2f} / {five:.2f} / {fifteen:.2f}\n"
            f"CPU usage from {int(snapshot.uptime * 1000)}ms to 0ms ago (boot to {now}):\n" + "".join(lines) +
            f"{total:.1f}% TOTAL: {total * 0.9:.1f}% user + {total * 0.1:.1f}% kernel + 0% iowait + 0% irq + "
            "0% softirq\n")


SERVICES: dict[str, Callable[[DeviceImage, list[str]], str]] = {
    "battery": dump_battery,
    "cpuinfo": dump_cpuinfo,
    "meminfo": dump_meminfo,
    "thermalservice": dump_thermalservice,
}


@register("/system/bin/dumpsys")
def main(ctx: ProgramContext) -> int:
    args = ctx.argv[1:]
    image = ctx.device.image
    if args == ["-l"]:
        ctx.stdout.write(("Currently running services:\n" + "".join(f"  {name}\n" for name in SERVICES)).encode())
        return 0
    if not args:  # every service, each under its banner
        ctx.stdout.write("".join(f"{'-' * 79}\nDUMP OF SERVICE {name}:\n{dump(image, [])}"
                                 for name, dump in SERVICES.items()).encode())
        return 0
    service = SERVICES.get(args[0])
    if service is None:
        ctx.stderr.write(f"Can't find service: {args[0]}\n".encode())
        return 0
    ctx.stdout.write(service(image, args[1:]).encode())
    return 0
