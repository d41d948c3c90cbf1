"""Reports of a deploy or farm run: report.json (versioned schema), report.html, junit.xml.

`write_reports` is the one entry point; each format has its own module and reads only the
JSON document, so the three always agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import EdgeloopError, disk_full
from deploy.fsutil import atomic_path, write_reason
from harness.report.diff import DiffReport
from harness.report.document import build_document, validate_document
from harness.report.html import render_html
from harness.report.junit import junit_xml
from harness.report.results import JobResult

__all__ = ["JobResult", "ReportPaths", "ReportsNotWritten", "ensure_report_root", "new_report_dir",
           "remove_temporaries", "unwritable", "write_files", "write_reports"]
TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")  # deploy.fsutil.atomic_path's name for a file being written


@dataclass(frozen=True)
class ReportPaths:
    folder: Path
    json: Path
    html: Path
    junit: Path

    @classmethod
    def of(cls, folder: Path) -> ReportPaths:
        return cls(folder, folder / "report.json", folder / "report.html", folder / "junit.xml")


class ReportsNotWritten(EdgeloopError):
    """The report folder could not be written (a file in the way, read-only, no permission, a full disk):
    none of its reports were left there, and the one line names the folder and why."""

    def __init__(self, folder: Path, why: str, hint: str | None = None) -> None:
        super().__init__(f"no report was written to {folder}: {why}", hint or "choose a writable --report-dir")
        self.folder, self.why = folder, why


def ensure_report_root(root: Path, option: str) -> None:
    """Create `root` and make sure a folder can be made in it, before any device work: reports are
    written last, and a path that cannot hold them (a regular file, /proc) must fail first, in one line."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=".probe-", dir=root)).rmdir()
    except OSError as exc:
        raise EdgeloopError(f"{option} {root}: cannot write reports there ({write_reason(root, exc, folder=True)})",
                            "choose a writable folder") from None


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write every file into `folder` or none: each goes to a temporary name first, and all are renamed
    into place once all were written. Raises ReportsNotWritten, whatever the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            for name, data in files.items():
                stack.enter_context(atomic_path(folder / name)).write_bytes(data)
    except OSError as exc:
        full = disk_full(exc, folder)
        raise ReportsNotWritten(folder, write_reason(folder, exc, folder=True), full.hint if full else None) from None
    except EdgeloopError as exc:  # atomic_path's: a folder where a report goes
        raise ReportsNotWritten(folder, exc.message) from None


def remove_temporaries(folder: Path) -> None:
    """Delete the files under `folder` still being written under a temporary name (atomic_path's): after
    Ctrl-C, a job thread the process does not wait for leaves its half-written file so."""
    for path in folder.rglob(".*.tmp"):
        if TEMPORARY.fullmatch(path.name):
            path.unlink(missing_ok=True)


def new_report_dir(root: Path, device: str, now: dt.datetime | None = None) -> Path:
    """`<root>/<UTC timestamp>-<device>/`, the device name made safe for a folder name."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", device).strip("_") or "device"
    return root / f"{stamp}-{safe}"


def write_reports(results: list[JobResult], out_dir: Path, *, devices: dict[str, dict[str, str]],
                  title: str, baseline: DiffReport | None = None) -> ReportPaths:
    """Write the three reports into `out_dir`, all or none (write_files), with the comparison with a
    baseline when there is one; the JSON is validated first."""
    document = build_document(results, devices=devices, title=title, baseline=baseline)
    validate_document(document)
    paths = ReportPaths.of(out_dir)
    write_files(out_dir, {paths.json.name: (json.dumps(document, indent=2) + "\n").encode(),
                          paths.html.name: render_html(document).encode(), paths.junit.name: junit_xml(document)})
    return paths
