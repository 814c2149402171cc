"""The SQL both stores share. Statements are written with `?` placeholders and ANSI/“ON CONFLICT”
syntax that SQLite (3.24+) and PostgreSQL both accept; a subclass supplies the transaction, the
placeholder style and row locking (`FOR UPDATE [SKIP LOCKED]` on PostgreSQL; SQLite needs none, its
write transactions are serialised by BEGIN IMMEDIATE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import grpc

from svc_orchestrator.convert.jobs import event_blob, event_job
from svc_orchestrator.job_types import Job, JobState
from svc_orchestrator.store.base import (
    ACTIVE,
    JOB_COLUMNS,
    TERMINAL,
    CacheRow,
    JobRecord,
    ReplayRow,
    Store,
    job_from_row,
    job_row,
)
from svc_orchestrator.store.units import UnitQueries
from tator_core import errors
from tator_core.hashing import canonical_json

_JOB_SELECT = f"SELECT {', '.join(JOB_COLUMNS)}, owner, lease_until, cancel_requested, sharded, spec, seq FROM jobs"
META_SQL = ("SELECT m.glossary_text, m.glossary_hash, m.labelmap_json, m.labelmap_hash, m.config_json, "
             "m.config_hash, m.versions_json, m.pipeline_version, m.created_at FROM entries e "
             "JOIN meta m ON m.meta_key = e.meta_key WHERE e.key = ?")
_ACTIVE_SQL = f"state IN ({int(ACTIVE[0])}, {int(ACTIVE[1])})"
_TERMINAL_SQL = ", ".join(str(int(s)) for s in sorted(TERMINAL))


def store_full() -> errors.TatorError:
    """A write found its volume full (SQLite's SQLITE_FULL, PostgreSQL's disk_full); the transaction
    was rolled back whole."""
    return errors.TatorError(grpc.StatusCode.RESOURCE_EXHAUSTED, "STORE_FULL",
                             "the orchestrator's store is full (no space left on its volume); nothing was "
                             "written: free space and try again")


class Tx:
    """One transaction: `q(sql, params)` runs a statement and returns its cursor."""

    def q(self, sql: str, params: Sequence = ()):  # pragma: no cover - interface
        raise NotImplementedError


def meta_dict(row: Sequence) -> dict:
    return {"glossary_text": row[0], "glossary_hash": row[1], "labelmap": json.loads(row[2]),
            "labelmap_hash": row[3], "config": json.loads(row[4]), "config_hash": row[5],
            "versions": json.loads(row[6]), "pipeline_version": row[7], "created_at": row[8]}


_REPLAY_COLUMNS = ("run_id", "cache_key", "image_sha256", "dataset_id", "image_name", "request", "config_json",
                   "config_hash", "versions_json", "glossary_hash", "labelmap_hash", "pipeline_version",
                   "candidates_digest", "candidates", "created_at")


_REPLAY_UPSERT = (f"INSERT INTO replays ({', '.join(_REPLAY_COLUMNS)}) VALUES ({', '.join('?' * len(_REPLAY_COLUMNS))}) "
                  "ON CONFLICT (run_id) DO UPDATE SET "
                  + ", ".join(f"{c} = excluded.{c}" for c in _REPLAY_COLUMNS[1:]))


def _replay_values(r: ReplayRow, now: float) -> list:
    return [r.run_id, r.cache_key, r.image_sha256, r.dataset_id, r.image_name, r.request, canonical_json(r.config),
            r.config_hash, canonical_json(r.versions), r.glossary_hash, r.labelmap_hash, r.pipeline_version,
            r.candidates_digest, r.candidates, now]


def _replay_row(row: Sequence) -> ReplayRow:
    v = dict(zip(_REPLAY_COLUMNS, row))
    return ReplayRow(v["run_id"], v["cache_key"], v["image_sha256"], v["dataset_id"], v["image_name"],
                     bytes(v["request"]), json.loads(v["config_json"]), v["config_hash"],
                     json.loads(v["versions_json"]), v["glossary_hash"], v["labelmap_hash"], v["pipeline_version"],
                     v["candidates_digest"], bytes(v["candidates"]), float(v["created_at"]))


def _job(row: Sequence) -> Job:
    return job_from_row(row[:len(JOB_COLUMNS)])


def _record(row: Sequence) -> JobRecord:
    n = len(JOB_COLUMNS)
    try:
        book = (str(row[n]), float(row[n + 1]), bool(row[n + 2]), bool(row[n + 3]), bytes(row[n + 4]),
                int(row[n + 5]))
    except (TypeError, ValueError, OverflowError):
        # Damaged bookkeeping: no owner, an expired lease and no spec, so no replica resumes it blindly.
        book = ("", 0.0, False, False, b"", 0)
    return JobRecord(_job(row), *book)


def _event(blob: object) -> Job | None:
    """A stored event's job; None when the blob does not parse (every event holds the whole job, so
    a watcher loses nothing the next event does not bring)."""
    try:
        data = bytes(blob)  # type: ignore[call-overload]  # a bytes-like column value
    except TypeError:
        return None
    return event_job(data)


class SqlStore(UnitQueries, Store):
    # Appended to a SELECT that reads a row it is about to change (PostgreSQL: "FOR UPDATE").
    lock_rows = ""
    # Appended to the SELECT of a unit to claim (PostgreSQL: "FOR UPDATE SKIP LOCKED").
    claim_rows = ""

    def tx(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Tx]:
        return self.tx()

    # --- jobs ---------------------------------------------------------------------------------------
    def _event(self, t: Tx, job: Job, image: str) -> None:
        seq = t.q("UPDATE jobs SET seq = seq + 1 WHERE id = ? RETURNING seq", (job.id,)).fetchone()[0]
        t.q("INSERT INTO job_events (job_id, seq, image, job) VALUES (?, ?, ?, ?)",
            (job.id, seq, image, event_blob(job)))

    def insert_job(self, job, *, owner, lease_until, spec=b"", units=()):
        cols = JOB_COLUMNS + ("owner", "lease_until", "sharded", "spec", "units_left")
        values = job_row(job) + [owner, lease_until, int(bool(units)), spec, len(units)]
        with self.tx() as t:
            t.q(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", values)
            for i, items in enumerate(units):
                t.q("INSERT INTO work_units (job_id, unit, items) VALUES (?, ?, ?)", (job.id, i, json.dumps(list(items))))
            self._event(t, job, "")

    def job(self, job_id):
        with self.read() as t:
            row = t.q(f"{_JOB_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def list_jobs(self, limit, before=None):
        where, args = "", []
        if before is not None:
            where, args = " WHERE created_at < ? OR (created_at = ? AND id < ?)", [before[0], before[0], before[1]]
        with self.read() as t:
            rows = t.q(f"{_JOB_SELECT}{where} ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    def _update(self, t: Tx, job_id: str, fields: dict, image: str, only_active: bool):
        row = t.q(f"{_JOB_SELECT} WHERE id = ?{self.lock_rows}", (job_id,)).fetchone()
        if row is None:
            return None
        # `fields` are keyed by column (eta_s, updated_at, result_json, ...): the store's own terms.
        values = dict(zip(JOB_COLUMNS, row[:len(JOB_COLUMNS)]))
        if only_active and values["state"] not in ACTIVE:
            return None
        unknown = set(fields) - set(JOB_COLUMNS[1:])
        if unknown:
            raise ValueError(f"not job columns: {sorted(unknown)}")
        values.update(fields)
        job = _job([values[c] for c in JOB_COLUMNS])
        sets = ", ".join(f"{c} = ?" for c in JOB_COLUMNS[1:])
        t.q(f"UPDATE jobs SET {sets} WHERE id = ?", job_row(job)[1:] + [job_id])
        self._event(t, job, image)
        return job

    def update_job(self, job_id, fields, *, image="", only_active=False):
        with self.tx() as t:
            return self._update(t, job_id, fields, image, only_active)

    def events_after(self, job_id, seq, limit=256):
        with self.read() as t:
            rows = t.q("SELECT seq, job, image FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                       (job_id, seq, limit)).fetchall()
        events = [(int(s), _event(j), img) for s, j, img in rows]
        return [(s, job, img) for s, job, img in events if job is not None]

    def prune_events(self, ended_before, keep, batch=500):
        keep = max(1, keep)  # the last event is the job's final state: a watcher arriving later needs it
        pruned = 0
        while True:
            with self.tx() as t:
                rows = t.q(f"SELECT id, seq FROM jobs WHERE events_pruned = 0 AND state IN ({_TERMINAL_SQL}) "
                           f"AND updated_at < ? LIMIT ?{self.lock_rows}", (ended_before, batch)).fetchall()
                for job_id, seq in rows:
                    t.q("DELETE FROM job_events WHERE job_id = ? AND seq <= ?", (job_id, int(seq) - keep))
                    t.q("UPDATE jobs SET events_pruned = 1 WHERE id = ?", (job_id,))
            pruned += len(rows)
            if len(rows) < batch:
                return pruned

    def request_cancel(self, job_id):
        with self.tx() as t:
            t.q("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def cancel_requested(self, job_ids):
        if not job_ids:
            return set()
        with self.read() as t:
            rows = t.q(f"SELECT id FROM jobs WHERE cancel_requested = 1 AND id IN ({', '.join('?' for _ in job_ids)})",
                       list(job_ids)).fetchall()
        return {r[0] for r in rows}

    def heartbeat_jobs(self, owner, job_ids, lease_until):
        with self.tx() as t:
            for job_id in job_ids:
                t.q("UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ?", (lease_until, job_id, owner))

    def interrupt_orphans(self, owner, now, error):
        with self.tx() as t:
            ids = [r[0] for r in t.q(f"SELECT id FROM jobs WHERE sharded = 0 AND {_ACTIVE_SQL} AND "
                                     f"(owner = ? OR lease_until < ?){self.lock_rows}", (owner, now)).fetchall()]
            n = 0
            for job_id in ids:
                n += self._update(t, job_id, {"state": JobState.INTERRUPTED, "error": error, "eta_s": 0.0,
                                              "updated_at": now}, "", True) is not None
        return n

    # --- prepass cache ------------------------------------------------------------------------------
    def cache_get(self, key):
        with self.read() as t:
            row = t.q("SELECT payload FROM entries WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def cache_put(self, row: CacheRow, now, replay: ReplayRow | None = None):
        m = row.meta
        with self.tx() as t:
            t.q("INSERT INTO meta VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (meta_key) DO NOTHING",
                (row.meta_key, m["glossary_text"], m["glossary_hash"], json.dumps(list(m["labelmap"])),
                 m["labelmap_hash"], canonical_json(m["config"]), m["config_hash"], canonical_json(m["versions"]),
                 m["pipeline_version"], now))
            t.q("INSERT INTO entries VALUES (?,?,?,?,?,?,?,1) ON CONFLICT (key) DO UPDATE SET "
                "meta_key = excluded.meta_key, image_sha256 = excluded.image_sha256, "
                "image_name = excluded.image_name, dataset_id = excluded.dataset_id, "
                "created_at = excluded.created_at, payload = excluded.payload, writes = entries.writes + 1",
                (row.key, row.meta_key, row.image_sha256, row.image_name, row.dataset_id, now, row.payload))
            if replay is not None:
                t.q(_REPLAY_UPSERT, _replay_values(replay, now))

    def cache_import(self, metas, entries):
        added = 0
        with self.tx() as t:
            for m in metas:
                t.q("INSERT INTO meta VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (meta_key) DO NOTHING", list(m))
            for e in entries:
                added += t.q("INSERT INTO entries VALUES (?,?,?,?,?,?,?,1) ON CONFLICT (key) DO NOTHING",
                             list(e)).rowcount
        return added

    def cache_meta(self, key):
        with self.read() as t:
            row = t.q(META_SQL, (key,)).fetchone()
        return meta_dict(row) if row else None

    def replay_get(self, run_id):
        with self.read() as t:
            row = t.q(f"SELECT {', '.join(_REPLAY_COLUMNS)} FROM replays WHERE run_id = ?", (run_id,)).fetchone()
        return _replay_row(row) if row else None

    def replay_count(self):
        with self.read() as t:
            return int(t.q("SELECT COUNT(*) FROM replays").fetchone()[0])

    def cache_stats(self):
        with self.read() as t:
            n, w = t.q("SELECT COUNT(*), COALESCE(SUM(writes), 0) FROM entries").fetchone()
        return {"entries": int(n), "writes": int(w)}

    def cache_keys(self):
        with self.read() as t:
            return [r[0] for r in t.q("SELECT key FROM entries ORDER BY created_at, key").fetchall()]

    # --- catalog documents --------------------------------------------------------------------------
    def doc_put(self, kind, name, doc, now):
        with self.tx() as t:
            t.q("INSERT INTO catalog VALUES (?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
                "doc = excluded.doc, updated_at = excluded.updated_at", (kind, name, doc, now))

    def doc_add(self, kind, name, doc, now):
        with self.tx() as t:
            return t.q("INSERT INTO catalog VALUES (?, ?, ?, ?) ON CONFLICT (kind, name) DO NOTHING",
                       (kind, name, doc, now)).rowcount > 0

    def doc_get(self, kind, name):
        with self.read() as t:
            row = t.q("SELECT doc FROM catalog WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        return row[0] if row else None

    def doc_list(self, kind):
        with self.read() as t:
            return [(r[0], r[1]) for r in t.q("SELECT name, doc FROM catalog WHERE kind = ? ORDER BY name",
                                              (kind,)).fetchall()]

    def doc_delete(self, kind, name):
        with self.tx() as t:
            return t.q("DELETE FROM catalog WHERE kind = ? AND name = ?", (kind, name)).rowcount > 0


def chunks(seq: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), size):
        yield list(seq[i:i + size])
