"""The combined farm report: farm.json and farm.html (devices × models × runtimes grid, every
attempt and retry, farm events, baseline findings) beside the deploy reports of every job
(report.json, report.html, junit.xml, written by harness.report.write_reports)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
import jsonschema

from deploy import TOOL_VERSION
from harness.inventory import Discovery
from harness.report import ReportPaths, write_files, write_reports
from harness.report.diff import DiffReport
from harness.report.reading import FARM_KIND, FARM_SCHEMA_VERSION
from harness.report.results import ERROR, JobResult
from harness.scheduler import Event, Outcome

FARM_SCHEMA_PATH = Path(__file__).with_name("farm.schema.json")
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "."), autoescape=True,
                          undefined=jinja2.StrictUndefined)
_ENV.filters["clock"] = lambda epoch: dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


@dataclass(frozen=True)
class FarmPaths:
    folder: Path
    json: Path
    html: Path
    deploy: ReportPaths  # report.json / report.html / junit.xml of every job

    @classmethod
    def of(cls, folder: Path) -> FarmPaths:
        return cls(folder, folder / "farm.json", folder / "farm.html", ReportPaths.of(folder))


def job_result(outcome: Outcome) -> JobResult:
    """The deploy result of a job; a job that never produced one (lost, hung, no device) becomes an error
    result that says why, so nothing is reported as passed that did not run."""
    result = outcome.result
    device = outcome.device.serial if outcome.device else ""
    if not isinstance(result, JobResult):
        task = outcome.task
        result = JobResult(model=task.model or task.id, runtime=task.runtime, profile=task.profile, device=device,
                           status=ERROR if outcome.status != "passed" else outcome.status,
                           failure=outcome.detail or outcome.status)
    result.device = result.device or device
    result.attempts = [{"device": a.device, "outcome": a.outcome, "seconds": round(a.seconds, 3), "detail": a.detail}
                       for a in outcome.attempts]
    return result


def _job(outcome: Outcome) -> dict[str, Any]:
    task = outcome.task
    return {"id": task.id, "model": task.model, "profile": task.profile, "runtime": task.runtime,
            "status": outcome.status, "device": outcome.device.name if outcome.device else None,
            "detail": outcome.detail, "retried": outcome.retried, "attempts": [asdict(a) for a in outcome.attempts]}


def build_farm_document(outcomes: list[Outcome], events: list[Event], discovery: Discovery, *, title: str,
                        created: dt.datetime, wall_s: float, baseline: DiffReport | None = None) -> dict[str, Any]:
    statuses = [o.status for o in outcomes]
    passed = statuses.count("passed") == len(statuses) and not (baseline and baseline.regressed)
    return {
        "kind": FARM_KIND,
        "schema_version": FARM_SCHEMA_VERSION,
        "tool_version": TOOL_VERSION,
        "created": created.isoformat(timespec="seconds"),
        "title": title,
        "verdict": "passed" if passed else "failed",
        "summary": {"total": len(outcomes), **{s: statuses.count(s) for s in sorted(set(statuses))},
                    "retried": sum(o.retried for o in outcomes), "wall_s": round(wall_s, 3)},
        "devices": [{"name": d.name, "serial": d.serial, "server": d.server.address, "profiles": list(d.profiles),
                     "labels": list(d.labels), "model": d.model} for d in discovery.devices],
        "unreachable_servers": discovery.unreachable,
        "unmatched_devices": discovery.unmatched,
        "jobs": [_job(o) for o in outcomes],
        "events": events,
        "baseline": baseline.to_json() if baseline else None,
        "results": [job_result(o).to_json() for o in outcomes],
    }


def _grid(document: dict[str, Any]) -> dict[str, Any]:
    """Rows: devices (and '-' for jobs that ended on none); columns: model × runtime; cells: the jobs."""
    columns = sorted({(j["model"], j["runtime"]) for j in document["jobs"]})
    rows = [d["name"] for d in document["devices"]]
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for job in document["jobs"]:
        # earlier attempts (lost devices) show in their device's row too, pointing on to the final one
        last = len(job["attempts"]) - 1
        marks = [(a["device"], {"status": a["outcome"], "note": "retried elsewhere" if i < last else "",
                                "attempts": []}) for i, a in enumerate(job["attempts"]) if a["device"] != job["device"]]
        final = (job["device"] or "-", {"status": job["status"], "note": "", "attempts": job["attempts"]})
        for device, mark in [*marks, final]:
            if device not in rows:
                rows.append(device)
            cells.setdefault((device, job["model"], job["runtime"]), []).append(mark)
    models = sorted({m for m, _ in columns})
    return {"rows": rows, "columns": columns, "models": [(m, sum(1 for c in columns if c[0] == m)) for m in models],
            "cells": {"|".join(k): v for k, v in cells.items()}}


def validate_farm_document(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when farm.json would not follow farm.schema.json."""
    schema = json.loads(FARM_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


def render_farm_html(document: dict[str, Any]) -> str:
    return _ENV.get_template("farm.html.j2").render(doc=document, grid=_grid(document))


def write_farm_reports(outcomes: list[Outcome], events: list[Event], discovery: Discovery, out_dir: Path, *,
                       title: str, created: dt.datetime, wall_s: float,
                       baseline: DiffReport | None = None) -> FarmPaths:
    """Write the per-job deploy reports, then farm.json and farm.html, each set all or none (write_files)."""
    document = build_farm_document(outcomes, events, discovery, title=title, created=created, wall_s=wall_s,
                                   baseline=baseline)
    validate_farm_document(document)
    devices = {d.serial: {"ro.product.model": d.model, "edgeloop.adb_server": d.server.address,
                          "edgeloop.profiles": ",".join(d.profiles), "edgeloop.labels": ",".join(d.labels)}
               for d in discovery.devices}
    write_reports([job_result(o) for o in outcomes], out_dir, devices=devices, title=title, baseline=baseline)
    paths = FarmPaths.of(out_dir)
    write_files(out_dir, {paths.json.name: (json.dumps(document, indent=2) + "\n").encode(),
                          paths.html.name: render_farm_html(document).encode()})
    return paths
