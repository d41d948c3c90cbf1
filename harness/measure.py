"""On-device measurements around each measured run: the device's temperature, net-run's peak memory,
CPU affinity, and waiting for the device to cool down first.

Everything is read by the run's own shell request, so measuring adds no round trip: the command reads
every thermal zone (`/sys/class/thermal/thermal_zone*/temp`, m°C) before and after the run, starts the
bundle in the background (under `taskset MASK` when a CPU mask is given) and, while it runs, samples
`VmHWM` from net-run's `/proc/<pid>/status` every SAMPLE_S seconds with the shell's own `read` (no
process started per sample). VmHWM is a high-water mark, so the last sample is the run's peak up to
then. The figures come back as MARK lines on stdout. The same files exist on a phone (toybox and
mksh) and on the emulated device, whose net-run shows its engine's own memory there.

The device's temperature is its hottest CPU zone (a zone whose type names `cpu`), or its hottest zone
when none does; readings outside PLAUSIBLE_C (sensors that are off, zones that report something else)
are left out.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import adbutils

from deploy.config import run_setting
from deploy.errors import EdgeloopError
from harness.report.results import DeviceMeasures
from harness.transfer import device_shell, shell_quote

MARK = "@@edgeloop@@"
SAMPLE_S = 0.02  # between VmHWM samples: the peak of a run's last SAMPLE_S may be missed
COOLDOWN_POLL_S = 1.0  # between temperature reads while waiting for the device to cool
COOLDOWN_TIMEOUT_S = 300.0  # how long a cool-down may take before the job ends as an error
PLAUSIBLE_C = (-40.0, 150.0)


@dataclass(frozen=True)
class RunOptions:
    """How measured runs are made: `cooldown_c` waits before each until the device is below it (°C);
    `cpu_mask` (hexadecimal, taskset's) pins net-run to those cores."""

    cooldown_c: float | None = None
    cpu_mask: str | None = None
    cooldown_timeout_s: float = COOLDOWN_TIMEOUT_S

    def __post_init__(self) -> None:
        """Checked by the rule of the flags, the deployment file's `run:` section and matrix.yaml (run_setting)."""
        for name, key in (("cooldown_c", "cooldown_temp"), ("cpu_mask", "cpu_mask")):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, run_setting(key, getattr(self, name)))
        if not self.cooldown_timeout_s > 0:
            raise EdgeloopError(f"the cool-down timeout must be a positive number of seconds, got "
                                f"{self.cooldown_timeout_s!r}")


def zones_script(label: str) -> str:
    """Prints `MARK label <zone type> <m°C>` per thermal zone, with shell builtins only."""
    return (f"for z in /sys/class/thermal/thermal_zone*; do zt=; zn=; read -r zt 2>/dev/null < $z/temp; "
            f"read -r zn 2>/dev/null < $z/type; echo \"{MARK} {label} $zn $zt\"; done")


def probed_command(run: str, output_dir: str, program: str, cpu_mask: str | None) -> str:
    """`run` (`sh run.sh OUT ...`, in the job's folder) measured: zones before, VmHWM sampled while net-run
    (the process named `program` whose command line names `output_dir`) runs, zones after, the run's exit
    status kept; nothing on stderr, whose last line says why a run failed. A `sleep` without fractions
    (before toybox) samples every second. One line: the emulated device's adbd takes no newline in a command."""
    pinned = f"taskset {cpu_mask} {run}" if cpu_mask else run
    out = shell_quote(output_dir)
    find = (f"if [ -z \"$p\" ]; then for q in $(pidof {shell_quote(program)} 2>/dev/null); do "
            f"grep -qF -- {out} /proc/$q/cmdline 2>/dev/null && p=$q; done; fi")
    sample = ("if [ -n \"$p\" ]; then while read -r k v u; do if [ \"$k\" = VmHWM: ]; then s=$((s+1)); "
              "[ \"$v\" -gt \"$h\" ] && h=$v; fi; done 2>/dev/null < /proc/$p/status; fi")
    pause = f"sleep {SAMPLE_S:g} 2>/dev/null || sleep 1"
    return "; ".join([zones_script("before"), f"{pinned} & r=$!", "p=; h=0; s=0",
                      f"while kill -0 $r 2>/dev/null; do {find}; {sample}; {pause}; done",
                      "wait $r; c=$?", zones_script("after"), f"echo \"{MARK} vmhwm $h $s\"", "exit $c"])


def parse_zones(text: str, label: str) -> dict[str, float]:
    """Zone type -> °C from the MARK lines of `label` (the hottest of zones sharing a type)."""
    zones: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[:2] != [MARK, label]:
            continue
        try:
            celsius = int(parts[-1]) / 1000
        except ValueError:
            continue
        name = " ".join(parts[2:-1])
        if PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1]:
            zones[name] = max(celsius, zones.get(name, -math.inf))
    return zones


def device_temperature(zones: dict[str, float]) -> float | None:
    """The hottest CPU zone, else the hottest zone; None without any reading."""
    cpu = [c for name, c in zones.items() if "cpu" in name.lower()]
    return max(cpu or zones.values(), default=None)


@dataclass(frozen=True)
class RunMeasure:
    """What one measured run's command reported."""

    before: dict[str, float]  # zone type -> °C
    after: dict[str, float]
    peak_kb: int | None  # net-run's VmHWM at its last sample; None when no sample was read
    samples: int
    cooldown_s: float = 0.0  # waited before the run for the device to cool


def parse_measure(stdout: str, cooldown_s: float = 0.0) -> RunMeasure:
    found = re.search(rf"^{re.escape(MARK)} vmhwm (\d+) (\d+)$", stdout, re.M)
    peak, samples = (int(found[1]), int(found[2])) if found else (0, 0)
    return RunMeasure(parse_zones(stdout, "before"), parse_zones(stdout, "after"), peak if samples else None,
                      samples, cooldown_s)


def device_measures(runs: list[RunMeasure]) -> DeviceMeasures:
    """A job's measured runs, for its report."""
    return DeviceMeasures([device_temperature(r.before) for r in runs], [device_temperature(r.after) for r in runs],
                          [r.peak_kb for r in runs], [r.samples for r in runs], [r.cooldown_s for r in runs],
                          dict(runs[0].before), dict(runs[-1].after), SAMPLE_S * 1000)


def read_temperature(device: adbutils.AdbDevice) -> float | None:
    out = device_shell(device, zones_script("now"), "reading its temperature").output
    return device_temperature(parse_zones(out, "now"))


@dataclass(frozen=True)
class Cooled:
    start_c: float  # the first reading
    waited_s: float


def cool_down(device: adbutils.AdbDevice, below_c: float, *, timeout_s: float = COOLDOWN_TIMEOUT_S,
              poll_s: float = COOLDOWN_POLL_S, clock: Callable[[], float] = time.monotonic,
              pause: Callable[[float], None] = time.sleep) -> Cooled:
    """Wait until the device's temperature is below `below_c`, reading it every `poll_s`. Raises a one-line
    EdgeloopError when it stays at or above for `timeout_s`, or when the device has no thermal zone."""
    started = clock()
    first = now = read_temperature(device)
    if now is None:
        raise EdgeloopError(f"device {device.serial} shows no temperature in /sys/class/thermal, so "
                            "--cooldown-temp cannot wait for it", "run without --cooldown-temp")
    while now >= below_c:
        if clock() - started >= timeout_s:
            raise EdgeloopError(f"device {device.serial} stayed at {now:.1f} °C, not below --cooldown-temp "
                                f"{below_c:g} °C, for {timeout_s:g} s",
                                "let it cool (off the charger, out of the sun) or give a higher --cooldown-temp")
        pause(poll_s)
        now = read_temperature(device)
        if now is None:
            raise EdgeloopError(f"device {device.serial} stopped showing its temperature while cooling down")
    return Cooled(first, clock() - started if first >= below_c else 0.0)  # reading once is no wait
