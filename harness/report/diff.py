"""Compare a new report with a baseline and flag regressions (`invoke report.diff`, `farm.run --baseline`).

Jobs are matched by model/profile/runtime (not by device: a farm may run a job on any matching
phone). A job regresses when it no longer passes, when an output misses its threshold, when an
accuracy metric is worse than the baseline by more than a margin, or when its median latency
grew by more than a percentage *beyond the noise the runs themselves show* (their IQR), so an
unchanged rerun on a noisy device passes. Latencies measured on the host (the emulated device) are
not compared with a phone's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.errors import EdgeloopError


@dataclass(frozen=True)
class DiffOptions:
    latency_pct: float = 10.0  # allowed growth of the median latency, beyond the noise
    noise_iqr: float = 1.0  # how many IQRs of the noisier run count as noise
    cosine_margin: float = 0.001  # allowed drop of an output's worst-inference cosine
    sqnr_margin_db: float = 1.0  # allowed drop of an output's SQNR
    top1_margin: float = 0.01  # allowed drop of top-1 agreement / accuracy (fractions)


# metric -> the DiffOptions field holding its allowed drop (all are "higher is better")
_MARGINS = {"cosine": "cosine_margin", "sqnr_db": "sqnr_margin_db", "top1_agreement": "top1_margin",
            "top1_accuracy": "top1_margin"}


@dataclass(frozen=True)
class Finding:
    job: str  # model/profile/runtime
    kind: str  # status | threshold | accuracy | latency | missing | new
    message: str
    regression: bool


@dataclass
class DiffReport:
    base: str
    new: str
    compared: int
    findings: list[Finding]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "new": self.new, "compared": self.compared, "regressed": self.regressed,
                "findings": [asdict(f) for f in self.findings]}


def job_key(result: dict[str, Any]) -> str:
    return f"{result['model']}/{result['profile']}/{result['runtime']}"


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """The `results` of a deploy report.json or a farm.json, keyed by model/profile/runtime."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise EdgeloopError(f"cannot read report {path}: {exc.strerror}", "pass a report.json or farm.json") from None
    except ValueError as exc:
        raise EdgeloopError(f"{path} is not JSON: {exc}", "pass a report.json or farm.json") from None
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list) or not all(isinstance(r, dict) and {"model", "profile", "runtime"} <= set(r)
                                                for r in results):
        raise EdgeloopError(f"{path} has no edgeloop 'results' list", "pass a report.json or farm.json")
    return {job_key(r): r for r in results}


def _iqr(samples: np.ndarray) -> float:
    return float(np.subtract(*np.percentile(samples, [75, 25]))) if samples.size > 1 else 0.0


def latency_finding(key: str, base: list[float], new: list[float], options: DiffOptions) -> Finding | None:
    """Median growth beyond `latency_pct`% plus `noise_iqr` × the larger IQR of the two runs."""
    b, n = np.asarray(base, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if not b.size or not n.size:
        return None
    mb, mn = float(np.median(b)), float(np.median(n))
    noise = options.noise_iqr * max(_iqr(b), _iqr(n))
    allowed = mb * (1 + options.latency_pct / 100) + noise
    if mn <= allowed:
        return None
    growth = (mn / mb - 1) * 100 if mb > 0 else float("inf")
    return Finding(key, "latency", f"median latency {mb:.3f} → {mn:.3f} ms (+{growth:.1f}%, allowed up to "
                   f"{allowed:.3f} ms: {options.latency_pct:g}% + noise {noise:.3f} ms)", True)


def _accuracy_findings(key: str, base: dict[str, Any], new: dict[str, Any], options: DiffOptions) -> list[Finding]:
    found = []
    base_outputs = {o["name"]: o for o in base.get("outputs", [])}
    for output in new.get("outputs", []):
        name = output["name"]
        if not output.get("passed", True):
            reasons = "; ".join(output.get("reasons", [])) or "below its threshold"
            found.append(Finding(key, "threshold", f"output {name}: {reasons}", True))
        old = base_outputs.get(name)
        if old is None:
            continue
        for metric, field_name in _MARGINS.items():
            was, now = old["metrics"].get(metric), output["metrics"].get(metric)
            if was is None or now is None:  # not measured, or infinite/NaN (JSON null): nothing to compare
                continue
            margin = getattr(options, field_name)
            if was - now > margin:
                found.append(Finding(key, "accuracy", f"output {name}: {metric} {was:.6g} → {now:.6g} "
                                     f"(worse by {was - now:.3g}, margin {margin:g})", True))
    return found


_WHERE = {"host": "on the host (emulated device)", "device": "on the device"}


def _timed_elsewhere(base: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why two latencies cannot be compared: one was measured on the host (the emulated device), the other
    on a phone. Reports of schema 1 do not say (`timing_source` is absent): their latencies are compared."""
    was, now = base.get("timing_source"), new.get("timing_source")
    if was in _WHERE and now in _WHERE and was != now:
        return f"the baseline's latency was measured {_WHERE[was]}, the new one's {_WHERE[now]}"
    return None


def diff_results(base: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], options: DiffOptions,
                 *, base_name: str = "base", new_name: str = "new") -> DiffReport:
    findings: list[Finding] = []
    for key, old in base.items():
        result = new.get(key)
        if result is None:
            findings.append(Finding(key, "missing", "in the baseline but not in the new report", True))
            continue
        if not result.get("passed"):
            was = "passed" if old.get("passed") else "also failed in the baseline"
            findings.append(Finding(key, "status", f"{result.get('status')}: {result.get('failure')} ({was})", True))
        findings.extend(_accuracy_findings(key, old, result, options))
        old_latency, new_latency = old.get("latency") or {}, result.get("latency") or {}
        elsewhere = _timed_elsewhere(old, result)
        latency = None if elsewhere else latency_finding(key, old_latency.get("inference_ms", []),
                                                         new_latency.get("inference_ms", []), options)
        if elsewhere and old_latency and new_latency:
            findings.append(Finding(key, "latency", f"not compared: {elsewhere}", False))
        elif latency:
            findings.append(latency)
        elif old_latency.get("inference_ms") and not new_latency.get("inference_ms") and result.get("passed"):
            # it ran and passed, but its timings could not be read: say that latency was not compared
            why = "; ".join(result.get("warnings", [])) or "no latency figures"
            findings.append(Finding(key, "latency", f"not compared: {why}", False))
    for key in sorted(set(new) - set(base)):
        findings.append(Finding(key, "new", "not in the baseline (nothing to compare)", not new[key].get("passed")))
    return DiffReport(base_name, new_name, len(set(base) & set(new)), findings)


def diff_reports(base: Path, new: Path, options: DiffOptions = DiffOptions()) -> DiffReport:
    """Compare two report files (deploy report.json or farm.json, in any combination)."""
    return diff_results(load_results(base), load_results(new), options, base_name=str(base), new_name=str(new))
