"""Fixtures of the history's tests: a real PostgreSQL server from Debian's package, a fresh history in
SQLite or PostgreSQL per test, and synthetic report.json files to record. A test module imports the
fixtures it uses (`history_fixture` is the fixture `history`, and so on).

The server is started by the tests themselves (initdb and pg_ctl from /usr/lib/postgresql/*/bin, which
`scripts/setup --test` installs) on a temporary folder, listening on 127.0.0.1 at a free port and on a
unix socket in that folder. It is never skipped: without PostgreSQL the tests fail and say what to
install. initdb and postgres refuse to run as root, so as root (a CI container) they run as `nobody`,
through util-linux's setpriv, in a folder of /tmp that user owns.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.compare import default_limits, judge, measure
from harness.report.document import build_document, validate_document
from harness.report.results import HOST, PASSED, JobResult, LatencyStats, OutputResult
from tests.conftest import free_port

SERVER_USER = "edgeloop"  # the server's superuser (trust authentication: it is the tests' own server)
PG_HINT = "install Debian's postgresql package (scripts/setup --test does): the history is tested against a real server"


def _bin_dir() -> Path:
    """The newest installed PostgreSQL's programs."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parent.parent.name)])
    if not found:
        pytest.fail(f"no /usr/lib/postgresql/*/bin/initdb: {PG_HINT}", pytrace=False)
    return Path(found[-1]).parent


def _unprivileged() -> tuple[list[str], int | None, int | None]:
    """How to run PostgreSQL's programs: as root, as `nobody` (setpriv), otherwise as ourselves."""
    if os.geteuid() != 0:
        return [], None, None
    if shutil.which("setpriv") is None:
        pytest.fail("running as root, and util-linux's setpriv is missing to run PostgreSQL as nobody",
                    pytrace=False)
    nobody = pwd.getpwnam("nobody")
    return (["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"],
            nobody.pw_uid, nobody.pw_gid)


@dataclass(frozen=True)
class PostgresServer:
    port: int
    socket_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"h_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test session (each xdist worker has its own), stopped at its end."""
    bin_dir = _bin_dir()
    prefix, uid, gid = _unprivileged()
    root = Path(tempfile.mkdtemp(prefix="edgeloop-pg-", dir="/tmp" if uid is not None else None))
    if uid is not None:
        os.chown(root, uid, gid)
    data, log = root / "data", root / "server.log"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], cwd=root, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    made = run(str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8",
               "--locale=C", "--no-sync")
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {(made.stderr or made.stdout).strip()[-1500:]}", pytrace=False)
    port = free_port()
    started = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                  f"-k {root} -p {port} -h 127.0.0.1 -c fsync=off -c full_page_writes=off", "start")
    if started.returncode != 0:
        told = log.read_text()[-1500:] if log.exists() else started.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {told}", pytrace=False)
    try:
        yield PostgresServer(port, root)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(name="postgres_history")
def postgres_history_fixture(postgres_server: PostgresServer) -> str:
    """A fresh history database on the session's server (its URL)."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"], name="history")
def history_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh history, once in an SQLite file and once in PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "history" / "history.sqlite")
    return request.getfixturevalue("postgres_history")


def _output(noise: float) -> OutputResult:
    rng = np.random.default_rng(7)
    reference = [rng.normal(size=(1, 10)) for _ in range(4)]
    device = [r + rng.normal(scale=noise, size=r.shape) for r in reference]
    metrics = measure(reference, device, labels=[int(np.argmax(r)) for r in reference])
    limits = default_limits("cpu")
    return OutputResult("logits", (1, 10), metrics, limits, judge(metrics, limits))


def job(model: str = "digits", runtime: str = "cpu", samples: list[float] | None = None, *, profile: str = "pixel",
        status: str = PASSED, noise: float = 1e-6, timing_source: str = HOST,
        device: str = "127.0.0.1:40001") -> JobResult:
    """A job as deploy reports it: its latency samples, one classifier output (`noise` off the reference)."""
    return JobResult(model, runtime, profile, device, status, None if status == PASSED else "missed a limit",
                     "ab" * 32, "cd" * 32, "float", "b1", outputs=[_output(noise)], runs=1,
                     latency=LatencyStats.from_timings(3.0, samples or [1.0, 1.1, 0.9]), timing_source=timing_source)


def report(folder: Path, jobs: list[JobResult], created: dt.datetime, *,
           memory_kb: Sequence[float | None] = ()) -> Path:
    """A valid report.json of these jobs made at `created` (its path); `memory_kb[i]` is job i's peak memory."""
    document = build_document(jobs, devices={"127.0.0.1:40001": {"ro.product.model": "Pixel 7"}},
                              title="synthetic", created=created)
    validate_document(document)
    for entry, peak in zip(document["results"], memory_kb, strict=False):
        if peak is not None:
            entry["memory"] = {"peak_kb": peak}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.json"
    path.write_text(json.dumps(document))
    return path


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, 1, day, hour, tzinfo=dt.UTC)
