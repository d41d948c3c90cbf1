"""What one model × runtime × device job produced: the unit every report format is made of.

Lives apart from the pipeline so the report writers, the farm and the pytest plugin can build
and read results without importing the device code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.compare import Limits, Metrics, Verdict

if TYPE_CHECKING:  # the timings readers import the SDK tools: not needed to build or read results
    from harness.timings import Timings

PASSED, FAILED, ERROR = "passed", "failed", "error"  # failed = ran and missed a threshold; error = did not run
# Where a job's latencies were measured (`timing_source`): net-run on the device itself, or the emulated
# device, whose net-run is onnxruntime on the host's CPU: its figures say nothing of a phone's speed.
DEVICE, HOST = "device", "host"
HOST_TIMING = "latencies measured on the host CPU by the emulated device, not a phone"
SLOWEST_LAYERS = 10
RUN_OPTIONS = ("cpu_mask", "perf_profile", "cooldown_c")  # report.json's run_options, each null when not used


@dataclass
class OutputResult:
    name: str
    shape: tuple[int, ...]
    metrics: Metrics
    limits: Limits
    verdict: Verdict
    error_histogram: dict[str, list] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "passed": self.verdict.passed,
                "reasons": list(self.verdict.reasons), "metrics": self.metrics.to_json(),
                "limits": self.limits.to_json(), "error_histogram": self.error_histogram}


@dataclass
class LatencyStats:
    """Latency of the measured runs (the warm-up run is not in them), kept run by run: a verdict takes each
    run as one sample, since the inferences of one run share the state of its device (or host) then."""

    init_ms: float | None
    inference_ms: list[float]
    layers_ms: dict[str, float]  # per-layer median over inferences
    run_inferences: list[int] = field(default_factory=list)  # how many of inference_ms each run gave, in order
    # the emulated device only: its host's fixed reference computation, timed after each inference
    host_reference_ms: list[float] = field(default_factory=list)

    @classmethod
    def from_timings(cls, init_ms: float | None, inference_ms: list[float],
                     layers: dict[str, list[float]] | None = None, *, run_inferences: list[int] | None = None,
                     host_reference_ms: list[float] | None = None) -> LatencyStats:
        """Without `run_inferences`, every inference is of one run."""
        medians = {name: float(np.median(times)) for name, times in (layers or {}).items() if times}
        return cls(init_ms=init_ms, inference_ms=list(inference_ms), layers_ms=medians,
                   run_inferences=list(run_inferences) if run_inferences is not None else [len(inference_ms)],
                   host_reference_ms=list(host_reference_ms or []))

    @classmethod
    def from_runs(cls, runs: Sequence[Timings]) -> LatencyStats:
        """The timings of each measured run, in order; host references only when every run has them."""
        references = [t for run in runs for t in run.host_reference_ms]
        inference = [t for run in runs for t in run.inference_ms]
        layers = {name: [t for run in runs for t in run.layers.get(name, [])] for name in runs[-1].layers}
        return cls.from_timings(runs[0].init_ms, inference, layers,
                                run_inferences=[len(run.inference_ms) for run in runs],
                                host_reference_ms=references if len(references) == len(inference) else None)

    def merged(self, again: LatencyStats) -> LatencyStats:
        """These runs and those of the same job run again (to settle a latency verdict), as one set of runs."""
        both = bool(self.host_reference_ms) and bool(again.host_reference_ms)
        return LatencyStats(self.init_ms, [*self.inference_ms, *again.inference_ms], dict(self.layers_ms),
                            [*self.run_inferences, *again.run_inferences],
                            [*self.host_reference_ms, *again.host_reference_ms] if both else [])

    def slowest_layers(self, n: int = SLOWEST_LAYERS) -> list[tuple[str, float]]:
        return sorted(self.layers_ms.items(), key=lambda kv: -kv[1])[:n]

    def to_json(self) -> dict[str, Any]:
        times = np.asarray(self.inference_ms, dtype=np.float64)
        stats: dict[str, float | None] = dict.fromkeys(("min_ms", "median_ms", "p90_ms", "max_ms"))
        if times.size:
            stats = {"min_ms": float(times.min()), "median_ms": float(np.median(times)),
                     "p90_ms": float(np.percentile(times, 90)), "max_ms": float(times.max())}
        return {"init_ms": self.init_ms, "inference_ms": list(self.inference_ms),
                "run_inferences": list(self.run_inferences),
                "host_reference_ms": list(self.host_reference_ms) if self.host_reference_ms else None, **stats,
                "slowest_layers": [{"name": n, "ms": ms} for n, ms in self.slowest_layers()]}


def _rounded(values: list[float | None], digits: int) -> list[float | None]:
    return [None if v is None else round(v, digits) for v in values]


@dataclass
class DeviceMeasures:
    """What the device showed around each measured run, in order (harness.measure): its temperature (°C,
    the hottest CPU zone) before and after, net-run's peak resident memory (VmHWM, kB) and how long the run
    waited for the device to cool first; every zone of the first run before and of the last run after."""

    before_c: list[float | None]
    after_c: list[float | None]
    peak_kb: list[int | None]
    samples: list[int]
    cooldown_s: list[float]
    zones_before: dict[str, float]
    zones_after: dict[str, float]
    sample_ms: float  # between VmHWM samples

    def merged(self, again: DeviceMeasures) -> DeviceMeasures:
        """These runs and those of the same job run again, as for LatencyStats.merged."""
        return DeviceMeasures([*self.before_c, *again.before_c], [*self.after_c, *again.after_c],
                              [*self.peak_kb, *again.peak_kb], [*self.samples, *again.samples],
                              [*self.cooldown_s, *again.cooldown_s], self.zones_before, again.zones_after,
                              self.sample_ms)

    def memory_json(self) -> dict[str, Any] | None:
        peaks = [kb for kb in self.peak_kb if kb is not None]
        if not peaks:
            return None
        return {"peak_kb": max(peaks), "run_peak_kb": list(self.peak_kb), "samples": sum(self.samples),
                "sample_interval_ms": self.sample_ms}

    def thermal_json(self) -> dict[str, Any] | None:
        if all(c is None for c in [*self.before_c, *self.after_c]):
            return None
        return {"before_c": self.before_c[0], "after_c": self.after_c[-1],
                "run_before_c": _rounded(self.before_c, 3), "run_after_c": _rounded(self.after_c, 3),
                "cooldown_s": round(sum(self.cooldown_s), 3), "run_cooldown_s": _rounded(list(self.cooldown_s), 3),
                "zones_before": dict(self.zones_before), "zones_after": dict(self.zones_after)}


@dataclass
class JobResult:
    """One entry of report.json's `results`; `failure` says why it did not pass, in one line."""

    model: str
    runtime: str
    profile: str
    device: str = ""  # adb serial, "" when no device was reached
    status: str = ERROR
    failure: str | None = None
    model_sha256: str = ""
    container_sha256: str = ""
    container_kind: str = ""
    bundle_id: str = ""
    container_bytes: int | None = None  # size of the container that ran; None when the job stopped before
    encodings: dict[str, Any] | None = None  # summary of a quantized container's encodings
    outputs: list[OutputResult] = field(default_factory=list)
    latency: LatencyStats | None = None
    measures: DeviceMeasures | None = None  # memory and temperatures of the measured runs
    run_options: dict[str, Any] = field(default_factory=dict)  # cpu_mask, perf_profile, cooldown_c: how it ran
    timing_source: str | None = None  # DEVICE or HOST once a device was reached
    runs: int = 0
    bytes_pushed: int = 0
    phases_s: dict[str, float] = field(default_factory=dict)  # wall time of each phase
    run_dir: str = ""
    warnings: list[str] = field(default_factory=list)  # what is missing from a job that did run (e.g. latency)
    hints: list[str] = field(default_factory=list)  # what to try next after a missed limit (report.hints)
    # the job ended on a DeviceError (the device dropped or refused a request), not on the model or
    # the input: a farm retries it on another device. Not part of report.json.
    device_fault: bool = False
    server_lost: bool = False  # ... because the adb server itself went away (exit 3, not the device's fault)
    # farm runs: every device the job was tried on, in order ({device, outcome, seconds, detail})
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def name(self) -> str:
        return f"{self.model}/{self.runtime}"

    def with_rerun(self, again: JobResult) -> JobResult:
        """This job with the runs of its rerun (to settle a latency verdict) added when that passed: the
        verdict then has the samples of both."""
        if again.status != PASSED or not (self.latency and again.latency):
            return self
        measures = self.measures.merged(again.measures) if self.measures and again.measures else self.measures
        return replace(self, runs=self.runs + again.runs, latency=self.latency.merged(again.latency),
                       measures=measures)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "runtime": self.runtime, "profile": self.profile, "device": self.device,
            "status": self.status, "passed": self.passed, "failure": self.failure,
            "model_sha256": self.model_sha256, "container_sha256": self.container_sha256,
            "container_kind": self.container_kind, "container_bytes": self.container_bytes,
            "bundle_id": self.bundle_id, "encodings": self.encodings,
            "outputs": [o.to_json() for o in self.outputs],
            "latency": self.latency.to_json() if self.latency else None, "timing_source": self.timing_source,
            "memory": self.measures.memory_json() if self.measures else None,
            "thermal": self.measures.thermal_json() if self.measures else None,
            "run_options": {key: self.run_options.get(key) for key in RUN_OPTIONS},
            "runs": self.runs, "bytes_pushed": self.bytes_pushed,
            "phases_s": dict(self.phases_s), "run_dir": self.run_dir, "warnings": list(self.warnings),
            "hints": list(self.hints),
            **({"attempts": list(self.attempts)} if self.attempts else {}),
        }


def summarize_encodings(encodings: dict[str, Any] | None, quantization: dict[str, Any] | None) -> dict[str, Any] | None:
    """A few numbers a reader needs from a quantized container, not its thousands of encodings."""
    if encodings is None and quantization is None:
        return None
    summary: dict[str, Any] = {}
    for key in ("activation_encodings", "param_encodings"):
        value = (encodings or {}).get(key)
        if isinstance(value, list | dict):
            summary[key.replace("_encodings", "_tensors")] = len(value)
    bitwidths = sorted({int(e["bw"]) for e in (encodings or {}).get("activation_encodings", [])
                        if isinstance(e, dict) and "bw" in e})
    if bitwidths:
        summary["activation_bitwidths"] = bitwidths
    for key, value in (quantization or {}).items():
        if isinstance(value, str | int | float | bool) or value is None:
            summary[key] = value
    return summary
