"""The thermal and battery model: how hot the SoC runs for a given load, what that does to its clocks.

One first-order node, the die: its temperature T approaches T_inf = AMBIENT_C + RISE_C * heat with
time constant TAU_S, where heat = IDLE_HEAT + (busy cores / cores) + the extra heat of the compute
unit a run drives (UNIT_HEAT: the GPU's, the DSP's). For a heat that stays constant over dt:

    T(t + dt) = T_inf + (T(t) - T_inf) * exp(-dt / TAU_S)

which is exact for the piecewise-constant heat the device's activity produces. Above TRIP_C the
cores' allowed clock falls linearly, down to MIN_CAP of their maximum at TRIP_C + THROTTLE_SPAN_C
(a throttled core is reported slower; net-run itself does not slow down). Zones other than the die
follow it with a gain: zone = AMBIENT_C + gain * (T - AMBIENT_C).

The battery drains at IDLE_DRAIN_PCT_H per hour plus LOAD_DRAIN_PCT_H per hour of full-load heat,
from START_LEVEL; its voltage follows its charge and sags under load.
"""

from __future__ import annotations

import math

AMBIENT_C = 25.0
IDLE_HEAT = 0.1  # the background of a phone at rest: an idle die sits at 29.5 °C
RISE_C = 45.0  # degrees above ambient at a heat of 1 (every core busy): 74.5 °C at full CPU load
TAU_S = 8.0  # the die's time constant
TRIP_C = 65.0  # first trip point: clocks are capped above it
THROTTLE_SPAN_C = 15.0
MIN_CAP = 0.5
UNIT_HEAT = {"gpu": 0.5, "dsp": 0.2, "aip": 0.2}  # by compute unit, on top of the cores a run keeps busy

# thermal zone name suffix -> gain relative to the die (cpu zones are named after their cluster)
ZONE_GAINS = {"gpu": 0.9, "battery": 0.3, "skin": 0.45}
CPU_ZONE_GAIN = 1.0

START_LEVEL = 80.0  # % at boot
IDLE_DRAIN_PCT_H = 1.5
LOAD_DRAIN_PCT_H = 30.0
DESIGN_CAPACITY_UAH = 4_500_000
EMPTY_UV, FULL_UV, SAG_UV = 3_500_000, 4_350_000, 150_000  # voltage at 0 % and 100 %, and its drop at heat 1


def approach(temp: float, heat: float, dt: float) -> float:
    """The die's temperature after `dt` seconds at a constant `heat` (IDLE_HEAT included)."""
    target = AMBIENT_C + RISE_C * heat
    return target + (temp - target) * math.exp(-dt / TAU_S)


def idle_temperature() -> float:
    return AMBIENT_C + RISE_C * IDLE_HEAT


def zone_temperature(die: float, gain: float) -> float:
    return AMBIENT_C + gain * (die - AMBIENT_C)


def clock_cap(die: float) -> float:
    """The fraction of their maximum clock the cores may run at, at this die temperature."""
    over = max(0.0, die - TRIP_C)
    return max(MIN_CAP, 1.0 - (1.0 - MIN_CAP) * over / THROTTLE_SPAN_C)


def thermal_status(die: float) -> int:
    """Android's thermal status (0 none, 1 light, 2 moderate, 3 severe) for this die temperature."""
    over = die - TRIP_C
    return 0 if over <= 0 else min(3, 1 + int(over // (THROTTLE_SPAN_C / 3)))


def battery_level(uptime_s: float, load_heat_s: float) -> float:
    """Charge in % after `uptime_s` seconds with `load_heat_s` heat-seconds of work (idle heat excluded)."""
    used = IDLE_DRAIN_PCT_H * uptime_s / 3600 + LOAD_DRAIN_PCT_H * load_heat_s / 3600
    return max(0.0, START_LEVEL - used)


def battery_voltage_uv(level: float, load_heat: float) -> int:
    return int(EMPTY_UV + (FULL_UV - EMPTY_UV) * level / 100 - SAG_UV * min(1.0, load_heat))
