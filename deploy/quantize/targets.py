"""Which precisions a quantized layer may be promoted to on a device: the debugger proposes nothing else.

Facts (Qualcomm's SNPE and QNN documentation): the Hexagon DSP runtime on HVX (v65, v66) runs
8-bit activations and weights only; the tensor processor (HTP, v68 and later) and the HTA (aip)
also run 16-bit activations with 8-bit weights; the HTP computes float layers in fp16 from v69 on.
The CPU and GPU runtimes compute in float, so every promotion runs there.
"""

from __future__ import annotations

from deploy.errors import EdgeloopError
from deploy.profiles import QUANTIZED_RUNTIMES, Profile

ALL = ("16", "float")


def promotions(profile: Profile, runtime: str) -> tuple[str, ...]:
    """What `--promote` may be for a container run with `runtime` on `profile`'s device."""
    profile.require_runtime(runtime)
    if runtime not in QUANTIZED_RUNTIMES:
        return ALL
    if runtime == "aip":
        return ("16",)
    hexagon = profile.hexagon
    assert hexagon is not None  # a profile with a dsp unit has one (deploy.profiles.SCHEMA)
    if hexagon.kind == "dsp":
        return ()
    return ALL if int(hexagon.arch[1:]) >= 69 else ("16",)


def default_runtime(profile: Profile) -> str:
    """The runtime a quantized container is meant for on this device: its DSP when it has one."""
    return next((r for r in ("dsp", "aip") if profile.supports(r)), "cpu")


def promotion_refusal(profile: Profile, runtime: str, promote: str) -> EdgeloopError | None:
    """Why the device's `runtime` cannot run layers promoted to `promote`, naming what it can; None if it can."""
    allowed = promotions(profile, runtime)
    if promote in allowed:
        return None
    where = f"{profile.name}'s {runtime}"
    if profile.hexagon is not None and runtime in QUANTIZED_RUNTIMES:
        where += f" (Hexagon {profile.hexagon.arch}, {profile.hexagon.kind.upper()})"
    if allowed:
        return EdgeloopError(f"{where} cannot run layers promoted to {promote}", f"use --promote {allowed[0]}")
    return EdgeloopError(f"{where} runs 8-bit activations and weights only: no layer can be promoted there",
                         "try --use-per-channel-quantization, --act-quantizer enhanced or --algorithms cle,bc; "
                         "or run the model on cpu or gpu")
