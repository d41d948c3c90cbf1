"""The next step after an accuracy check failed, in a line or two: a verdict alone (`cosine 0.953 < 0.98`)
leaves the user to find out what the tools can do about it."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from deploy.profiles import QUANTIZED_RUNTIMES
from harness.report.results import FAILED, JobResult, OutputResult


def _round_up(value: float, digits: int) -> float:
    """`value` (> 0) rounded up to `digits` significant digits: _round_up(0.0731, 2) == 0.074."""
    unit = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return math.ceil(round(value / unit, 6)) * unit


# The limits a run can be said to have reached (each named after its metric, less `min_`), and how the
# figure reached is rounded to a limit that it meets: a cosine by its distance from 1 (0.9537 -> 0.95,
# 0.999938 -> 0.99993), an SQNR down to whole dB, a max abs error up to two significant digits. Each
# figure missed a limit, so a distance from 1 or an error is > 0.
_REACHED = {"min_cosine": lambda v: 1 - _round_up(1 - v, 1), "min_sqnr_db": math.floor,
            "max_abs": lambda v: _round_up(v, 2)}


def _limit_reached(runtime: str, model: str, failing: list[OutputResult]) -> str | None:
    """The runtime's limits set to what the run reached, as deployment-file text; only when every
    failing output still agrees with the reference on the top-1 class (then the class may be what counts)."""
    if not all(o.metrics.top1_agreement == 1.0 for o in failing):
        return None
    reached: dict[str, float] = {}
    for name, rounded in _REACHED.items():
        values = [getattr(o.metrics, name.removeprefix("min_")) for o in failing if name in o.verdict.missed]
        values = [v for v in values if math.isfinite(v)]
        if values:
            reached[name] = rounded(max(values) if name == "max_abs" else min(values))
    if not reached:
        return None
    limits = ", ".join(f"{name}: {value:g}" for name, value in reached.items())
    return f"`{runtime}: {{{limits}}}` under models.{model}.thresholds"


def next_steps(result: JobResult, debug: tuple[Path, Path, Path]) -> list[str]:
    """What to try when `result` ran and missed a limit, for the runtimes where the tools offer something:
    dsp/aip (the quantization debugger, a quantizer option, a limit fit for the task) and gpu_fp16 (the
    fp32 gpu runtime, a limit fit for fp16). `debug` is the float container, the quantized container and
    the input list, for `invoke quantize.debug`."""
    failing = [o for o in result.outputs if not o.verdict.passed]
    if result.status != FAILED or not failing:
        return []
    limit = _limit_reached(result.runtime, result.model, failing)
    agreeing = f"; or, as top-1 agreement is 100 %, a limit that fits the task: {limit}" if limit else ""
    if result.runtime in QUANTIZED_RUNTIMES:
        container, quantized, inputs = debug
        command = shlex.join(["invoke", "quantize.debug", "--container", str(container), "--quantized",
                              str(quantized), "--input-list", str(inputs), "--device", result.profile,
                              "--runtime", result.runtime])
        per_channel = (result.encodings or {}).get("use_per_channel_quantization")
        option = "algorithms: [cle, bc]" if per_channel else "use_per_channel_quantization: true"
        return [f"find the layers at fault: `{command}`",
                f"then try `{option}` under models.{result.model}.quantization{agreeing}"]
    if result.runtime == "gpu_fp16":
        return [f"gpu_fp16 computes in half precision: the fp32 gpu runtime (`--runtime gpu`) keeps float32 "
                f"accuracy{agreeing}"]
    return []
