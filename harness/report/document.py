"""report.json: the machine-readable report and its versioned JSON Schema (docs/report-schema.md)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from deploy import TOOL_VERSION
from harness.report.diff import DiffReport
from harness.report.results import ERROR, FAILED, PASSED, JobResult

SCHEMA_VERSION = 4  # 2: results say where their latencies were measured (timing_source); 3: latency per run
# (run_inferences) and the emulated device's host reference times (host_reference_ms); 4: on-device memory,
# temperatures and run options per result, and the baseline comparison
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def build_document(results: list[JobResult], *, devices: dict[str, dict[str, str]], title: str,
                   created: dt.datetime | None = None, baseline: DiffReport | None = None) -> dict[str, Any]:
    created = created or dt.datetime.now(dt.UTC)
    statuses = [r.status for r in results]
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": TOOL_VERSION,
        "created": created.isoformat(timespec="seconds"),
        "title": title,
        "devices": {serial: dict(props) for serial, props in devices.items()},
        "summary": {"total": len(results), "passed": statuses.count(PASSED), "failed": statuses.count(FAILED),
                    "errors": statuses.count(ERROR)},
        "results": [r.to_json() for r in results],
        "baseline": baseline.to_json() if baseline else None,
    }


def validate_document(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the document does not follow the schema."""
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(document)
