"""A run's report.json becomes one `runs` row and a `jobs` row per result, in one transaction: a history
never holds half a run. Recorded from the report file itself, so a deploy and a farm run (whose
report.json holds every job) are recorded the same way, with exactly what their reports say.

A run is recorded once: its identity (run_identity) is a column with a unique index, so `edgeloop history
import` of a report the history already holds, by its run or an earlier import, records nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.errors import EdgeloopError
from harness.history.location import describe
from harness.history.store import Store, open_store
from harness.report import reading

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


def run_identity(document: dict[str, Any]) -> str:
    """What makes a run itself: the sha256 of its time and its results as the report lists them (every job's
    device, run folder and figures), the same for its report.json and a farm.json beside it."""
    canonical = json.dumps({"created": utc(document["created"]), "results": document["results"]}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_row(document: dict[str, Any], *, kind: str, report: Path, project: Path | None) -> dict[str, Any]:
    """The `runs` columns of a report.json: when, what tool, which commit of the project, which host (an
    imported report, `project` None, says neither)."""
    commit, dirty = git_state(project) if project is not None else (None, None)
    return {"created": utc(document["created"]), "kind": kind, "title": document.get("title", ""),
            "tool_version": document.get("tool_version", ""), "git_commit": commit,
            "git_dirty": None if dirty is None else int(dirty), "host": socket.gethostname() if project else "",
            "report": str(report.resolve()), "devices": json.dumps(_devices(document)),
            "identity": run_identity(document)}


def _devices(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """serial -> properties: report.json's mapping, or farm.json's list of devices."""
    devices = document.get("devices") or {}
    if isinstance(devices, list):
        return {d["serial"]: {"ro.product.model": d.get("model")} for d in devices if isinstance(d, dict)
                and "serial" in d}
    return devices


def read_report(path: Path) -> dict[str, Any]:
    """A report.json or farm.json of any schema version (harness.report.reading), with the time it was made."""
    document = reading.read_report(path)
    try:
        utc(document["created"])
    except (KeyError, TypeError, ValueError):
        raise EdgeloopError(f"{path} is not an edgeloop report (no 'created' time)", reading.HINT) from None
    return document


def _insert(store: Store, run: dict[str, Any], jobs: list[dict[str, Any]]) -> tuple[int, bool]:
    """Insert a run and its jobs unless the history holds it: (its id, whether it is new). A run recorded
    before identities were kept is recognised by its time and report folder, and given its identity. Two
    writers importing one report at once: the unique index lets one in, the other finds its row."""
    legacy = store.execute("SELECT id FROM runs WHERE identity IS NULL AND created = ? AND report = ?",
                           [run["created"], run["report"]])
    if legacy:
        store.execute("UPDATE runs SET identity = ? WHERE id = ?", [run["identity"], legacy[0]["id"]])
        return int(legacy[0]["id"]), False
    inserted = store.execute(f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))}) "
                             "ON CONFLICT (identity) DO NOTHING RETURNING id", list(run.values()))
    if not inserted:
        return int(store.execute("SELECT id FROM runs WHERE identity = ?", [run["identity"]])[0]["id"]), False
    run_id = int(inserted[0]["id"])
    for job in jobs:
        store.insert("jobs", {"run_id": run_id, **job})
    return run_id, True


def record_document(location: str, document: dict[str, Any], *, kind: str, report: Path,
                    project: Path | None) -> tuple[int, bool]:
    """Record a report read by read_report (`report`: its folder), in one transaction: (run id, new)."""
    run = run_row(document, kind=kind, report=report, project=project)
    jobs = [job_row(result, _devices(document)) for result in document["results"]]
    with open_store(location) as store, store.transaction():
        return _insert(store, run, jobs)


def record_report(location: str, report_json: Path, *, kind: str, project: Path) -> int:
    """Record a written report.json (kind `deploy` or `farm`; `project` is the checkout whose commit is
    noted); the run's id."""
    document = read_report(report_json)
    return record_document(location, document, kind=kind, report=Path(report_json).parent, project=project)[0]


@dataclass(frozen=True)
class Imported:
    path: Path  # the file recorded from
    kind: str  # deploy or farm
    run_id: int
    new: bool  # False: the history already held this run


def _in_folder(folder: Path) -> tuple[Path, str] | None:
    """The report of a report folder: its report.json (a farm run's when farm.json is beside it), else a
    farm.json alone."""
    if (folder / "report.json").is_file():
        return folder / "report.json", "farm" if (folder / "farm.json").is_file() else "deploy"
    return (folder / "farm.json", "farm") if (folder / "farm.json").is_file() else None


def report_files(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """The report files named by `paths` (files, or folders searched below), each with its run's kind."""
    found: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if path.is_dir():
            folders = sorted({p.parent for name in ("report.json", "farm.json") for p in path.rglob(name)})
            reports = [r for r in map(_in_folder, folders) if r is not None]
            if not reports:
                raise EdgeloopError(f"{path}: no report.json or farm.json in this folder or below it")
            found += reports
        elif not path.exists():
            raise EdgeloopError(f"{path}: no such file or folder")
        else:
            beside = _in_folder(path.parent)
            # a farm.json stands for the report.json beside it, the one farm.run records
            found.append(beside if beside and path.name in ("report.json", "farm.json") else (path, "deploy"))
    return found


def import_reports(location: str, paths: Iterable[Path]) -> list[Imported]:
    """Record existing reports (any schema version); every file is read and checked before any is recorded,
    and a run the history holds is not recorded again."""
    documents = [(path, kind, read_report(path)) for path, kind in report_files(paths)]
    imported = []
    for path, kind, document in documents:
        kind = "farm" if document.get("kind") == "edgeloop-farm" else kind
        run_id, new = record_document(location, document, kind=kind, report=path.parent, project=None)
        imported.append(Imported(path, kind, run_id, new))
    return imported
def record_run(location: str, report_json: Path, *, kind: str, project: Path) -> str:
    """Record a finished run; the line that says where, or why not. A history that cannot be written at
    the end (a server gone, a full disk) does not change the run's verdict, which its reports hold."""
    try:
        run_id = record_report(location, report_json, kind=kind, project=project)
    except EdgeloopError as exc:
        return f"warning: not recorded in the history: {exc}"
    return f"history: run {run_id} recorded in {describe(location)}"
