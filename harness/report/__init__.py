"""Reports of a deploy or farm run: report.json (versioned schema), report.html, junit.xml.

`write_reports` is the one entry point; each format has its own module and reads only the
JSON document, so the three always agree.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_write_bytes, atomic_write_text
from harness.report.document import build_document, validate_document
from harness.report.html import render_html
from harness.report.junit import junit_xml
from harness.report.results import JobResult

__all__ = ["JobResult", "ReportPaths", "ensure_report_root", "new_report_dir", "write_reports"]


@dataclass(frozen=True)
class ReportPaths:
    folder: Path
    json: Path
    html: Path
    junit: Path


def ensure_report_root(root: Path, option: str) -> None:
    """Create `root` and make sure a folder can be made in it, before any device work: reports are
    written last, and a path that cannot hold them (a regular file, /proc) must fail first, in one line."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=".probe-", dir=root)).rmdir()
    except OSError as exc:
        why = "it is a file, not a folder" if root.exists() and not root.is_dir() else exc.strerror or str(exc)
        raise EdgeloopError(f"{option} {root}: cannot write reports there ({why})",
                            "choose a writable folder") from None


def new_report_dir(root: Path, device: str, now: dt.datetime | None = None) -> Path:
    """`<root>/<UTC timestamp>-<device>/`, the device name made safe for a folder name."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", device).strip("_") or "device"
    return root / f"{stamp}-{safe}"


def write_reports(results: list[JobResult], out_dir: Path, *, devices: dict[str, dict[str, str]],
                  title: str) -> ReportPaths:
    """Write the three reports into `out_dir`, each atomically; the JSON is validated first."""
    document = build_document(results, devices=devices, title=title)
    validate_document(document)
    paths = ReportPaths(out_dir, out_dir / "report.json", out_dir / "report.html", out_dir / "junit.xml")
    atomic_write_text(paths.json, json.dumps(document, indent=2) + "\n")
    atomic_write_text(paths.html, render_html(document))
    atomic_write_bytes(paths.junit, junit_xml(document))
    return paths
