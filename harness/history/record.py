"""A run's report.json becomes one `runs` row and a `jobs` row per result, in one transaction: a history
never holds half a run. Recorded from the report file itself, so a deploy and a farm run (whose
report.json holds every job) are recorded the same way, with exactly what their reports say."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError
from harness.history.location import describe
from harness.history.store import open_store

GIT_TIMEOUT_S = 10.0
# report.json's figures of a job that are columns of their own (for queries and the trend page); the
# whole result entry is kept as well. Accuracy figures are the worst over a job's outputs.
_WORST = ("cosine", "sqnr_db", "top1_agreement", "top1_accuracy")


def utc(text: str) -> str:
    """A report's ISO 8601 time as the history keeps times: UTC, to the second (it then sorts as time)."""
    moment = dt.datetime.fromisoformat(text)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def git_state(folder: Path) -> tuple[str | None, bool | None]:
    """The commit checked out in `folder` and whether tracked files differ from it; (None, None) outside
    a git checkout or without git."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


def _worst(outputs: list[dict[str, Any]], metric: str) -> float | None:
    values = [o["metrics"][metric] for o in outputs if o.get("metrics", {}).get(metric) is not None]
    return min(values) if values else None


def _peak_memory_kb(result: dict[str, Any]) -> float | None:
    """The net-run process's peak resident memory, when the report measured it (`memory.peak_kb`)."""
    memory = result.get("memory")
    return memory.get("peak_kb") if isinstance(memory, dict) else None


def job_row(result: dict[str, Any], devices: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The `jobs` columns of one report.json result."""
    latency = result.get("latency") or {}
    samples = latency.get("inference_ms") or []
    outputs = result.get("outputs") or []
    device = result.get("device") or ""
    return {
        "model": result["model"], "profile": result["profile"], "runtime": result["runtime"],
        "device": device, "device_model": devices.get(device, {}).get("ro.product.model"),
        "status": result["status"], "failure": result.get("failure"),
        "timing_source": result.get("timing_source"), "container_kind": result.get("container_kind") or "",
        "model_sha256": result.get("model_sha256") or "", "container_sha256": result.get("container_sha256") or "",
        "runs": result.get("runs") or 0, "samples": len(samples), "samples_ms": json.dumps(samples),
        "median_ms": latency.get("median_ms"), "p90_ms": latency.get("p90_ms"), "init_ms": latency.get("init_ms"),
        **{metric: _worst(outputs, metric) for metric in _WORST},
        "peak_memory_kb": _peak_memory_kb(result), "bytes_pushed": result.get("bytes_pushed") or 0,
        "result": json.dumps(result),
    }


def run_row(document: dict[str, Any], *, kind: str, report: Path, project: Path) -> dict[str, Any]:
    """The `runs` columns of a report.json: when, what tool, which commit of the project, which host."""
    commit, dirty = git_state(project)
    return {"created": utc(document["created"]), "kind": kind, "title": document.get("title", ""),
            "tool_version": document.get("tool_version", ""), "git_commit": commit,
            "git_dirty": None if dirty is None else int(dirty), "host": socket.gethostname(),
            "report": str(report.resolve()), "devices": json.dumps(document.get("devices") or {})}


def record_report(location: str, report_json: Path, *, kind: str, project: Path) -> int:
    """Record a written report.json (kind `deploy` or `farm`; `project` is the checkout whose commit is
    noted); the new run's id."""
    try:
        document = json.loads(Path(report_json).read_text())
    except (OSError, ValueError) as exc:
        raise EdgeloopError(f"cannot read {report_json}: {exc}") from None
    run = run_row(document, kind=kind, report=Path(report_json).parent, project=project)
    jobs = [job_row(result, document.get("devices") or {}) for result in document["results"]]
    with open_store(location) as store, store.transaction():
        run_id = store.insert("runs", run)
        for job in jobs:
            store.insert("jobs", {"run_id": run_id, **job})
    return run_id


def record_run(location: str, report_json: Path, *, kind: str, project: Path) -> str:
    """Record a finished run; the line that says where, or why not. A history that cannot be written at
    the end (a server gone, a full disk) does not change the run's verdict, which its reports hold."""
    try:
        run_id = record_report(location, report_json, kind=kind, project=project)
    except EdgeloopError as exc:
        return f"warning: not recorded in the history: {exc}"
    return f"history: run {run_id} recorded in {describe(location)}"
