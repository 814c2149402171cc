"""Versioned schema migrations: numbered steps, each applied once, in one transaction, recorded in
`schema_version`.

Both databases run DDL inside transactions, so a step that fails leaves the previous version. Two
replicas starting at once serialise on a lock (PostgreSQL: a transaction-scoped advisory lock;
SQLite: BEGIN IMMEDIATE), and the loser sees the winner's version and applies nothing. A database
whose version is newer than this code knows is refused: running old code on a newer schema would
write rows the newer code misreads.

A new step is appended to MIGRATIONS with the next number and its SQL for both dialects; steps are
never edited once landed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: str
    postgres: str


_JOBS = """
CREATE TABLE jobs (
  id TEXT PRIMARY KEY, kind INTEGER NOT NULL, state INTEGER NOT NULL, dataset_id TEXT NOT NULL,
  done INTEGER NOT NULL, total INTEGER NOT NULL, eta_s {real} NOT NULL, message TEXT NOT NULL,
  error TEXT NOT NULL, failed_stage TEXT NOT NULL, created_at {real} NOT NULL, updated_at {real} NOT NULL,
  result_json TEXT NOT NULL,
  owner TEXT NOT NULL DEFAULT '', lease_until {real} NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0, sharded INTEGER NOT NULL DEFAULT 0,
  spec {blob} NOT NULL DEFAULT {empty_blob}, seq {serial} NOT NULL DEFAULT 0
);
CREATE INDEX jobs_created ON jobs(created_at);
CREATE INDEX jobs_state ON jobs(state);
CREATE TABLE job_events (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, seq {serial} NOT NULL, image TEXT NOT NULL,
  job {blob} NOT NULL, PRIMARY KEY (job_id, seq)
);
CREATE TABLE meta (
  meta_key TEXT PRIMARY KEY, glossary_text TEXT NOT NULL, glossary_hash TEXT NOT NULL,
  labelmap_json TEXT NOT NULL, labelmap_hash TEXT NOT NULL, config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL, versions_json TEXT NOT NULL, pipeline_version TEXT NOT NULL,
  created_at {real} NOT NULL
);
CREATE TABLE entries (
  key TEXT PRIMARY KEY, meta_key TEXT NOT NULL REFERENCES meta(meta_key), image_sha256 TEXT NOT NULL,
  image_name TEXT NOT NULL, dataset_id TEXT NOT NULL, created_at {real} NOT NULL, payload {blob} NOT NULL,
  writes INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX entries_meta ON entries(meta_key);
CREATE TABLE catalog (
  kind TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, updated_at {real} NOT NULL,
  PRIMARY KEY (kind, name)
);
"""

_UNITS = """
CREATE TABLE work_units (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, unit INTEGER NOT NULL,
  items TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '',
  lease_until {real} NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0, summary TEXT NOT NULL DEFAULT '', PRIMARY KEY (job_id, unit)
);
CREATE INDEX work_units_open ON work_units(state, lease_until);
"""

# Counters kept on the job so that a progress report and a unit's end cost the same whatever the job's
# size (no SUM or COUNT over its units), and an index that finds open units without a sort.
_COUNTERS = """
ALTER TABLE jobs ADD COLUMN units_left INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET units_left = (SELECT COUNT(*) FROM work_units u WHERE u.job_id = jobs.id AND u.state <> 2);
CREATE INDEX work_units_claim ON work_units(state, job_id, unit)
"""

# The reason a unit was given up (a poison unit), kept on the unit.
_UNIT_ERROR = "ALTER TABLE work_units ADD COLUMN error TEXT NOT NULL DEFAULT ''"

# Jobs whose old events were pruned (`Store.prune_events` visits each ended job once).
_PRUNED = "ALTER TABLE jobs ADD COLUMN events_pruned INTEGER NOT NULL DEFAULT 0"

# One row per computed prepass run, keyed by its run_id, for Replay: the request as the caller sent it
# (image bytes removed: the image is named by its sha256 and where it came from), what the run
# resolved (config, model versions, glossary, labelmap, pipeline) and its candidates with their digest.
_REPLAYS = """
CREATE TABLE replays (
  run_id TEXT PRIMARY KEY, cache_key TEXT NOT NULL, image_sha256 TEXT NOT NULL, dataset_id TEXT NOT NULL,
  image_name TEXT NOT NULL, request {blob} NOT NULL, config_json TEXT NOT NULL, config_hash TEXT NOT NULL,
  versions_json TEXT NOT NULL, glossary_hash TEXT NOT NULL, labelmap_hash TEXT NOT NULL,
  pipeline_version TEXT NOT NULL, candidates_digest TEXT NOT NULL, candidates {blob} NOT NULL,
  created_at {real} NOT NULL
)
"""

_SQLITE = {"real": "REAL", "blob": "BLOB", "empty_blob": "X''", "serial": "INTEGER"}
_PG = {"real": "DOUBLE PRECISION", "blob": "BYTEA", "empty_blob": "''::bytea", "serial": "BIGINT"}

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "jobs, job events, prepass cache, catalog", _JOBS.format(**_SQLITE), _JOBS.format(**_PG)),
    Migration(2, "work units of sharded jobs", _UNITS.format(**_SQLITE), _UNITS.format(**_PG)),
    Migration(3, "per-job unit counter, claim index", _COUNTERS, _COUNTERS),
    Migration(4, "error of a failed work unit", _UNIT_ERROR, _UNIT_ERROR),
    Migration(5, "jobs whose events were pruned", _PRUNED, _PRUNED),
    Migration(6, "replay records of prepass runs", _REPLAYS.format(**_SQLITE), _REPLAYS.format(**_PG)),
)
LATEST = MIGRATIONS[-1].version
_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                  "applied_at {real} NOT NULL)")
# Any constant works; it only has to be the same for every replica of this schema.
_PG_LOCK_ID = 0x7A70_0018


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer orchestrator; this one refuses to start on it."""


def _check(current: int) -> None:
    if current > LATEST:
        raise SchemaTooNew(f"the database schema is version {current}, this orchestrator knows up to {LATEST}; "
                           "upgrade the orchestrator")


def migrate_sqlite(db) -> list[int]:
    """Apply the missing steps to a sqlite3 connection in autocommit mode; the versions applied."""
    applied: list[int] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_VERSION_TABLE.format(real="REAL"))
        current = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        _check(current)
        for m in MIGRATIONS:
            if m.version > current:
                for stmt in _statements(m.sqlite):
                    db.execute(stmt)
                db.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (m.version, m.name, time.time()))
                applied.append(m.version)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return applied


def migrate_postgres(conn) -> list[int]:
    """Apply the missing steps through a psycopg connection; the versions applied."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID,))
        conn.execute(_VERSION_TABLE.format(real="DOUBLE PRECISION"))
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        _check(current)
        for m in MIGRATIONS:
            if m.version > current:
                for stmt in _statements(m.postgres):
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_version VALUES (%s, %s, %s)", (m.version, m.name, time.time()))
                applied.append(m.version)
    return applied
