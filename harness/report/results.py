"""What one model × runtime × device job produced: the unit every report format is made of.

Lives apart from the pipeline so the report writers, the farm and the pytest plugin can build
and read results without importing the device code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "runtime": self.runtime, "profile": self.profile, "device": self.device,
            "status": self.status, "passed": self.passed, "failure": self.failure,
            "model_sha256": self.model_sha256, "container_sha256": self.container_sha256,
            "container_kind": self.container_kind, "container_bytes": self.container_bytes,
            "bundle_id": self.bundle_id, "encodings": self.encodings,
            "outputs": [o.to_json() for o in self.outputs],
            "latency": self.latency.to_json() if self.latency else None, "timing_source": self.timing_source,
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
