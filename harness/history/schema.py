"""The history's tables, as migrations: the database keeps the number of those applied (`edgeloop_schema`),
and opening it applies the rest, so an older history is brought up to date and a newer one is refused.

SQL both SQLite and PostgreSQL run as written: `{id}` is the one column type they spell differently.
Times are TEXT in ISO 8601 UTC (`2025-01-31T12:00:00+00:00`), which sorts as time does; lists and the
report's own result entry are JSON text; `git_dirty` is 0/1. docs/farm.md ("History") lists the columns.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1
        """CREATE TABLE runs (
            id {id},
            created TEXT NOT NULL,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            git_commit TEXT,
            git_dirty INTEGER,
            host TEXT NOT NULL,
            report TEXT NOT NULL,
            devices TEXT NOT NULL)""",
        """CREATE TABLE jobs (
            id {id},
            run_id BIGINT NOT NULL REFERENCES runs (id),
            model TEXT NOT NULL,
            profile TEXT NOT NULL,
            runtime TEXT NOT NULL,
            device TEXT NOT NULL,
            device_model TEXT,
            status TEXT NOT NULL,
            failure TEXT,
            timing_source TEXT,
            container_kind TEXT NOT NULL,
            model_sha256 TEXT NOT NULL,
            container_sha256 TEXT NOT NULL,
            runs INTEGER NOT NULL,
            samples INTEGER NOT NULL,
            samples_ms TEXT NOT NULL,
            median_ms DOUBLE PRECISION,
            p90_ms DOUBLE PRECISION,
            init_ms DOUBLE PRECISION,
            cosine DOUBLE PRECISION,
            sqnr_db DOUBLE PRECISION,
            top1_agreement DOUBLE PRECISION,
            top1_accuracy DOUBLE PRECISION,
            peak_memory_kb DOUBLE PRECISION,
            bytes_pushed BIGINT NOT NULL,
            result TEXT NOT NULL)""",
        "CREATE INDEX runs_created ON runs (created)",
        "CREATE INDEX jobs_series ON jobs (model, profile, runtime, status)",
        "CREATE INDEX jobs_run ON jobs (run_id)",
    ),
    (  # 2: a run's identity (record.run_identity), so importing a report it already holds records nothing
        "ALTER TABLE runs ADD COLUMN identity TEXT",
        "CREATE UNIQUE INDEX runs_identity ON runs (identity)",
    ),
)
LATEST = len(MIGRATIONS)
