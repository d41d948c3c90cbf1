"""The recorded jobs, filtered: what `edgeloop history` shows and what a baseline is taken from.

A series is one model × device profile × runtime; `last` keeps the newest N jobs of each series (a
window function, which SQLite and PostgreSQL both run), so a long history is never read whole.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from deploy.errors import EdgeloopError
from harness.history.record import utc
from harness.history.store import open_store

_AGO = re.compile(r"(\d+)([dh])")
SINCE_HINT = "give a UTC date or time such as 2025-01-31 or 2025-01-31T12:00, or an age such as 7d or 12h"


@dataclass(frozen=True)
class Filters:
    model: str | None = None
    profile: str | None = None
    runtime: str | None = None
    device: str | None = None  # a device profile's name or an adb serial
    status: str | None = None
    since: str | None = None  # runs at or after this time (as `utc` writes it)
    before: str | None = None  # runs strictly before this time
    last: int | None = None  # the newest N jobs of each series


def parse_since(text: str, now: dt.datetime | None = None) -> str:
    """`--since`: an ISO 8601 date or time (UTC unless it says otherwise) or an age such as 7d or 12h."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        hours = int(ago[1]) * (24 if ago[2] == "d" else 1)
        try:
            return ((now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=hours)).isoformat(timespec="seconds")
        except OverflowError:  # before year 1: every run is younger
            raise EdgeloopError(f"--since {text!r} reaches back before the year 1", SINCE_HINT) from None
    try:
        return utc(text.strip())
    except ValueError:
        raise EdgeloopError(f"--since {text!r} is neither a date nor an age", SINCE_HINT) from None


@dataclass(frozen=True)
class JobRecord:
    """One recorded job with its run's time, commit and host."""

    run_id: int
    created: str
    kind: str
    git_commit: str | None
    git_dirty: int | None
    host: str
    tool_version: str
    report: str
    model: str
    profile: str
    runtime: str
    device: str
    device_model: str | None
    status: str
    failure: str | None
    timing_source: str | None
    container_kind: str
    median_ms: float | None
    p90_ms: float | None
    samples_ms: list[float]
    cosine: float | None
    sqnr_db: float | None
    top1_agreement: float | None
    top1_accuracy: float | None
    peak_memory_kb: float | None
    bytes_pushed: int
    result: dict[str, Any]  # the report's own result entry

    @property
    def peak_memory_mib(self) -> float | None:
        return None if self.peak_memory_kb is None else self.peak_memory_kb / 1024

    @property
    def series(self) -> tuple[str, str, str]:
        return self.model, self.profile, self.runtime

    def to_json(self) -> dict[str, Any]:
        """For `history --json`: everything but the report's result entry, which the report holds."""
        return {k: v for k, v in asdict(self).items() if k != "result"}


_RUN_COLUMNS = {"created", "kind", "git_commit", "git_dirty", "host", "tool_version", "report"}
_COLUMNS = ", ".join(f"{'r' if f.name in _RUN_COLUMNS else 'j'}.{f.name}" for f in fields(JobRecord))


def _where(filters: Filters) -> tuple[str, list[Any]]:
    conditions, params = [], []
    for column in ("model", "profile", "runtime", "status"):
        value = getattr(filters, column)
        if value is not None:
            conditions.append(f"j.{column} = ?")
            params.append(value)
    if filters.device is not None:
        conditions.append("(j.profile = ? OR j.device = ?)")
        params += [filters.device, filters.device]
    for bound, operator in (("since", ">="), ("before", "<")):
        if getattr(filters, bound) is not None:
            conditions.append(f"r.created {operator} ?")
            params.append(getattr(filters, bound))
    return " AND ".join(conditions) or "1 = 1", params


def select_jobs(location: str, filters: Filters = Filters()) -> list[JobRecord]:
    """The matching jobs, oldest first."""
    where, params = _where(filters)
    newest = "" if filters.last is None else "WHERE newest <= ?"
    sql = (f"SELECT * FROM (SELECT {_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY j.model, j.profile, j.runtime "
           f"ORDER BY r.created DESC, j.id DESC) AS newest FROM jobs j JOIN runs r ON r.id = j.run_id "
           f"WHERE {where}) AS matching {newest} ORDER BY created, run_id, model, profile, runtime")
    with open_store(location, create=False) as store:
        rows = store.execute(sql, params + ([] if filters.last is None else [filters.last]))
    for row in rows:
        del row["newest"]
        row["samples_ms"], row["result"] = json.loads(row["samples_ms"]), json.loads(row["result"])
    return [JobRecord(**row) for row in rows]
