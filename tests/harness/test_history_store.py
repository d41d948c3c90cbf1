"""The history's database, in SQLite and in a real PostgreSQL server: recording, queries, atomic runs,
concurrent writers, schema migrations, and where the history is."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.history import location
from harness.history.query import Filters, parse_since, select_jobs
from harness.history.record import record_document, record_report
from harness.history.schema import LATEST
from harness.history.store import open_store
from harness.report.results import FAILED, PASSED
from tests.harness.history_fixtures import (  # noqa: F401  (fixtures)
    at,
    history_fixture,
    job,
    postgres_history_fixture,
    postgres_server_fixture,
    report,
)


def _runs(where: str) -> int:
    with open_store(where) as store:
        return int(store.execute("SELECT COUNT(*) AS n FROM runs")[0]["n"])


def test_a_run_is_recorded_with_its_jobs_and_found_by_filters(history: str, tmp_path: Path) -> None:
    for day, slow in ((1, 1.0), (2, 2.0), (3, 3.0)):
        path = report(tmp_path / f"r{day}", [job("digits", "cpu", [slow, slow + 0.2, slow - 0.1, slow]),
                                             job("digits", "gpu", status=FAILED, noise=2.0),
                                             job("other", "cpu", profile="galaxy-s23", device="R5CT")],
                      at(day), memory_kb=[2048.0 * day])
        assert record_report(history, path, kind="deploy", project=Path(__file__).parent) >= 1

    everything = select_jobs(history)
    assert len(everything) == 9 and [r.created for r in everything] == sorted(r.created for r in everything)
    cpu = select_jobs(history, Filters(model="digits", runtime="cpu"))
    assert [r.median_ms for r in cpu] == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]
    newest = cpu[-1]
    assert newest.samples_ms == [3.0, 3.2, 2.9, 3.0] and newest.p90_ms == pytest.approx(3.14)
    assert newest.peak_memory_mib == pytest.approx(6.0) and newest.device_model == "Pixel 7"
    assert newest.top1_accuracy == 1.0 and newest.cosine == pytest.approx(1.0)
    assert newest.created == "2025-01-03T12:00:00+00:00" and newest.kind == "deploy"
    assert newest.git_commit and len(newest.git_commit) == 40  # this checkout's HEAD
    assert newest.report == str((tmp_path / "r3").resolve()) and newest.result["model"] == "digits"
    assert select_jobs(history, Filters(runtime="gpu"))[0].cosine < 0.5  # the worst output, as recorded

    assert [r.created[:10] for r in select_jobs(history, Filters(model="digits", runtime="cpu", last=2))] == [
        "2025-01-02", "2025-01-03"]
    assert {r.model for r in select_jobs(history, Filters(device="R5CT"))} == {"other"}  # a serial
    assert {r.model for r in select_jobs(history, Filters(device="galaxy-s23"))} == {"other"}  # or a profile
    assert len(select_jobs(history, Filters(since=parse_since("2025-01-02T12:00")))) == 6
    assert len(select_jobs(history, Filters(before="2025-01-02T12:00:00+00:00"))) == 3
    assert {r.status for r in select_jobs(history, Filters(status=PASSED))} == {PASSED}


def test_a_run_that_cannot_be_written_whole_leaves_nothing(history: str, tmp_path: Path) -> None:
    """One transaction per run: a job row the database refuses (NOT NULL) takes its run with it. (The
    report reader refuses such a file first; the document goes straight to the recorder here.)"""
    path = report(tmp_path / "r", [job("digits", "cpu"), job("digits", "gpu")], at(1))
    document = json.loads(path.read_text())
    document["results"][1]["status"] = None  # only the second job is broken
    with pytest.raises(EdgeloopError, match=r"^history .*(NOT NULL|not-null|null value)"):
        record_document(history, document, kind="deploy", report=path.parent, project=tmp_path)
    assert _runs(history) == 0


def _record_many(where: str, folder: str, worker: int, count: int) -> list[int]:
    """In a process of its own: record `count` runs one after the other."""
    ids = []
    for i in range(count):
        made = at(1 + i, 8 + worker)  # a run of its own: the same report twice is one run (record.run_identity)
        path = report(Path(folder) / f"w{worker}-{i}", [job("digits", "cpu"), job("digits", "gpu")], made)
        ids.append(record_report(where, path, kind="farm", project=Path(folder)))
    return ids


def test_concurrent_writers_on_a_new_history_all_land(history: str, tmp_path: Path) -> None:
    """Four processes create the same new history at once and write into it: no 'database is locked',
    no second schema, every run once."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=spawn) as pool:
        futures = [pool.submit(_record_many, history, str(tmp_path), w, 6) for w in range(4)]
        ids = [i for f in futures for i in f.result(timeout=240)]
    assert len(ids) == len(set(ids)) == 24
    assert _runs(history) == 24 and len(select_jobs(history)) == 48
    with open_store(history) as store:
        assert store.execute("SELECT version FROM edgeloop_schema") == [{"version": LATEST}]


def test_sqlite_history_is_in_wal_mode(tmp_path: Path) -> None:
    where = tmp_path / "deep" / "h.sqlite"
    record_report(str(where), report(tmp_path / "r", [job()], at(1)), kind="deploy", project=tmp_path)
    with sqlite3.connect(where) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_newer_schema_is_refused_and_an_older_one_migrated(history: str, tmp_path: Path) -> None:
    with open_store(history) as store:  # a history whose schema table was made by an older edgeloop: v0
        store.execute("DELETE FROM edgeloop_schema")
        store.execute("DROP TABLE jobs")
        store.execute("DROP TABLE runs")
        store.execute("INSERT INTO edgeloop_schema (version) VALUES (0)")
    record_report(history, report(tmp_path / "r", [job()], at(1)), kind="deploy", project=tmp_path)
    assert len(select_jobs(history)) == 1
    with open_store(history) as store:
        store.execute("UPDATE edgeloop_schema SET version = ?", [LATEST + 1])
    with pytest.raises(EdgeloopError, match=f"has schema version {LATEST + 1}; this edgeloop knows up to {LATEST}"):
        select_jobs(history)


def test_bad_histories_are_one_line(tmp_path: Path, postgres_server) -> None:
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello\n" * 100)
    with pytest.raises(EdgeloopError, match=r"history .*notes.txt: file is not a database"):
        select_jobs(str(not_db))
    with pytest.raises(EdgeloopError, match=r"no runs recorded in history .*missing.sqlite yet"):
        select_jobs(str(tmp_path / "missing.sqlite"))
    assert not (tmp_path / "missing.sqlite").exists()  # reading creates nothing
    with pytest.raises(EdgeloopError, match="is a folder"):
        select_jobs(str(tmp_path))
    refused = f"postgresql://{'nobody'}:s3cret@127.0.0.1:{postgres_server.port}/none"
    with pytest.raises(EdgeloopError, match=r"cannot reach history postgresql://nobody:\*\*\*@127") as info:
        select_jobs(refused)
    assert "s3cret" not in str(info.value) and "\n" not in str(info.value)


def test_a_postgres_history_through_the_unix_socket(postgres_server, tmp_path: Path) -> None:
    url = postgres_server.new_database().replace("@127.0.0.1:", "@:") + f"?host={postgres_server.socket_dir}"
    record_report(url, report(tmp_path / "r", [job()], at(1)), kind="deploy", project=tmp_path)
    assert [r.model for r in select_jobs(url)] == ["digits"]


def test_where_the_history_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(location.ENV, raising=False)
    assert location.resolve(None) == str(Path(".edgeloop") / "history.sqlite")
    monkeypatch.setenv(location.ENV, "postgresql://team@db/edgeloop")
    assert location.resolve(None) == "postgresql://team@db/edgeloop"
    assert location.resolve("mine.sqlite") == "mine.sqlite"  # the option wins
    assert location.resolve("OFF") is None
    monkeypatch.setenv(location.ENV, "off")
    assert location.resolve(None) is None
    with pytest.raises(EdgeloopError, match=r"the history is off \(\$EDGELOOP_HISTORY off\)"):
        location.required(None)
    assert location.describe("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
