"""Reading a report.json or farm.json (report.diff, deploy --baseline, history import): depth-limited,
checked against the report schema before use, a newer schema refused; each a line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.report import write_reports
from harness.report.reading import read_report
from tests.harness.test_report import sample_results

EDGELOOP = str(Path(sys.executable).with_name("edgeloop"))


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_reports(sample_results(), tmp_path / "r", devices={}, title="t").json


def _edited(good: Path, tmp_path: Path, change) -> Path:
    document = json.loads(good.read_text())
    change(document)
    bad = tmp_path / "bad1.json"
    bad.write_text(json.dumps(document))
    return bad


def test_a_written_report_is_read(good: Path) -> None:
    assert read_report(good)["results"][0]["model"] == "digits"


def test_a_field_of_the_wrong_type_is_named(good: Path, tmp_path: Path) -> None:
    bad = _edited(good, tmp_path, lambda d: d["results"][0].update(latency="fast"))
    with pytest.raises(EdgeloopError, match=r"bad1.json:1: .*results\[0\]\.latency"):
        read_report(bad)


def test_a_newer_schema_is_refused(good: Path, tmp_path: Path) -> None:
    bad = _edited(good, tmp_path, lambda d: d.update(schema_version=99))
    with pytest.raises(EdgeloopError, match="written by a newer edgeloop"):
        read_report(bad)


def test_an_older_report_with_fewer_fields_is_still_read(good: Path, tmp_path: Path) -> None:
    def version_1(d: dict) -> None:
        d["schema_version"] = 1
        for r in d["results"]:
            for key in ("memory", "thermal", "run_options", "timing_source", "container_bytes"):
                r.pop(key, None)

    assert len(read_report(_edited(good, tmp_path, version_1))["results"]) == 4


@pytest.mark.parametrize("argv", [["report.diff", "--base", "{bad}", "--new", "{good}"],
                                  ["report.diff", "--base", "{good}", "--new", "{bad}"],
                                  ["history.import", "--history", "{tmp}/h.sqlite", "--reports", "{bad}"]])
@pytest.mark.parametrize("case", ["type", "deep", "newer"])
def test_the_command_line_says_what_is_wrong_in_one_line(argv: list[str], case: str, good: Path,
                                                         tmp_path: Path) -> None:
    if case == "deep":
        bad = tmp_path / "bad1.json"
        bad.write_text("[" * 100_000 + "]" * 100_000)
    else:
        bad = _edited(good, tmp_path, {"type": lambda d: d["results"][0].update(latency="x"),
                                       "newer": lambda d: d.update(schema_version=99)}[case])
    words = [a.format(bad=bad, good=good, tmp=tmp_path) for a in argv]
    done = subprocess.run([EDGELOOP, *words], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "internal error" not in done.stderr
    assert str(bad) in done.stderr


def test_an_age_older_than_the_calendar_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([EDGELOOP, "history", "--history", str(tmp_path / "h.sqlite"), "--since", "1000000d"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "--since '1000000d'" in done.stderr and "internal error" not in done.stderr
