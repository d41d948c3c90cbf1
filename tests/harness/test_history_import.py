"""`edgeloop history import`: report.json and farm.json files of every schema recorded into the history,
each run once however often it is imported, and a file that is not a report refused in one line."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from harness.history.record import import_reports, record_report
from harness.history.store import open_store
from harness.report.results import DEVICE
from tests.harness.conftest import config_with
from tests.harness.history_fixtures import (  # noqa: F401  (fixtures)
    at,
    history_fixture,
    job,
    postgres_history_fixture,
    postgres_server_fixture,
    report,
)
from tests.harness.test_history_cli import edgeloop

# what each report.json schema added to a result, taken away again to make an older report
_ADDED_IN = {3: ("host_reference_ms", "run_inferences"), 4: ("memory", "thermal", "run_options")}


def _schema(path: Path, version: int) -> Path:
    """The report at `path` rewritten as schema `version` wrote it (fields of later schemas removed)."""
    document = json.loads(path.read_text())
    document["schema_version"] = version
    if version < 4:
        document.pop("baseline", None)
    for result in document["results"]:
        for later, fields in _ADDED_IN.items():
            for name in fields if version < later else ():
                result.pop(name, None)
                (result.get("latency") or {}).pop(name, None)
        if version < 2:
            result.pop("timing_source", None)
    path.write_text(json.dumps(document, indent=2))
    return path


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, Path]:
    """A schema-2 report of digits on gpu (a report folder) and a schema-4 one of digits on cpu (its file)."""
    old = _schema(report(tmp_path / "reports" / "old", [job(runtime="gpu", samples=[2.0, 2.2, 1.8])], at(3)), 2)
    new = report(tmp_path / "reports" / "new", [job(samples=[1.0, 1.1, 0.9], timing_source=DEVICE)], at(5),
                 memory_kb=[2048.0])
    return old.parent, new


def test_imported_reports_of_schema_2_and_4_show_in_the_history_once(tmp_path: Path, reports) -> None:
    old, new = reports
    for _ in range(2):
        done = edgeloop("history", "import", str(old), str(new), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert "already recorded" in done.stdout and done.stdout.count("\n") == 2
    shown = edgeloop("history", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [(r["runtime"], r["created"][:10], r["median_ms"], r["peak_memory_kb"]) for r in records] == [
        ("gpu", "2025-01-03", pytest.approx(2.0), None), ("cpu", "2025-01-05", pytest.approx(1.0), 2048.0)]


def test_a_report_recorded_by_its_run_is_not_recorded_again_by_import(history: str, reports) -> None:
    _, new = reports
    first = record_report(history, new, kind="deploy", project=new.parent)
    [again] = import_reports(history, [new])
    assert (again.run_id, again.new) == (first, False)
    with open_store(history) as store:
        assert store.execute("SELECT COUNT(*) AS n FROM runs")[0]["n"] == 1


def test_a_farm_folder_is_one_farm_run_whether_given_as_folder_farm_json_or_report_json(history: str,
                                                                                       tmp_path: Path) -> None:
    folder = tmp_path / "farm"
    path = report(folder, [job(), job(runtime="gpu")], at(7))
    document = json.loads(path.read_text())
    (folder / "farm.json").write_text(json.dumps({"kind": "edgeloop-farm", "schema_version": 1,
                                                  "created": document["created"], "results": document["results"],
                                                  "devices": []}))
    imported = import_reports(history, [folder, folder / "farm.json", path])
    assert [(i.run_id, i.new, i.kind) for i in imported] == [(1, True, "farm"), (1, False, "farm"),
                                                             (1, False, "farm")]
    with open_store(history) as store:
        assert store.execute("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 2


def test_a_farm_json_alone_is_recorded_from_its_own_results(history: str, tmp_path: Path) -> None:
    path = report(tmp_path / "r", [job()], at(8))
    document = json.loads(path.read_text())
    farm = tmp_path / "farm.json"
    farm.write_text(json.dumps({"kind": "edgeloop-farm", "schema_version": 1, "created": document["created"],
                                "title": "farm run matrix.yaml", "results": document["results"],
                                "devices": [{"serial": "127.0.0.1:40001", "model": "Pixel 7"}]}))
    [imported] = import_reports(history, [farm])
    with open_store(history) as store:
        run = store.execute("SELECT kind, title, devices FROM runs")[0]
        device_model = store.execute("SELECT device_model FROM jobs")[0]["device_model"]
    assert (imported.new, run["kind"], run["title"], device_model) == (True, "farm", "farm run matrix.yaml", "Pixel 7")


@pytest.mark.parametrize("content, said", [
    ("not json", ":1: not valid JSON"),
    ('{"results": 3}', ":1: results: must be a list, got 3"),
    ('{"created": "2025-01-01T00:00:00+00:00", "results": [{"model": "m"}]}',
     ":1: results[0]: missing required key 'profile'"),
    ('{"results": [], "schema_version": 4}', " is not an edgeloop report (no 'created' time)"),
])
def test_a_file_that_is_not_a_report_is_one_line_and_nothing_is_recorded(tmp_path: Path, reports, content,
                                                                         said) -> None:
    _, new = reports
    bad = tmp_path / "notes.json"
    bad.write_text(content)
    done = edgeloop("history", "import", str(new), str(bad), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {bad}{said}") and done.stderr.count("\n") == 1
    assert not (tmp_path / ".edgeloop").exists()  # checked before anything is recorded


def test_a_folder_without_a_report_is_one_line(tmp_path: Path) -> None:
    done = edgeloop("history", "import", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path}: no report.json or farm.json in this folder or below it\n"


def test_import_and_history_use_the_deployment_files_history_key(tmp_path: Path, reports) -> None:
    config_with(tmp_path, run="{history: shared/runs.sqlite}")
    done = edgeloop("history", "import", str(reports[1]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"in {tmp_path / 'shared' / 'runs.sqlite'}" in done.stdout and not (tmp_path / ".edgeloop").exists()
    shown = edgeloop("history", "--json", cwd=tmp_path)
    assert [r["runtime"] for r in json.loads(shown.stdout)] == ["cpu"]


def _import_in_process(where: str, path: str) -> list[int]:
    return [i.run_id for i in import_reports(where, [Path(path)] * 3)]


def test_writers_importing_one_report_at_once_record_it_once(history: str, reports) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=spawn) as pool:
        ids = [i for f in [pool.submit(_import_in_process, history, str(reports[1])) for _ in range(4)]
               for i in f.result(timeout=240)]
    assert len(ids) == 12 and len(set(ids)) == 1
    with open_store(history) as store:
        assert store.execute("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 1


def test_reports_are_words_among_the_options(tmp_path: Path, reports) -> None:
    old, new = reports
    done = edgeloop("history", "import", str(old), "--history", "elsewhere.sqlite", str(new), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("recorded as run") == 2 and "in elsewhere.sqlite" in done.stdout
    assert (tmp_path / "elsewhere.sqlite").is_file() and not (tmp_path / ".edgeloop").exists()
