"""Fault injection on the orchestrator's store: a full volume under the prepass cache and the jobs.

A write that finds no space is RESOURCE_EXHAUSTED / STORE_FULL (a job fails with that text, an RPC
answers it), the transaction leaves nothing behind (no meta row without its entry, no torn row), the
file passes SQLite's integrity check, and the store works again once there is space. Two ways to run
out: SQLite's own page limit (SQLITE_FULL, the code SQLite returns for ENOSPC, always available) and a
real 1 MiB tmpfs (ENOSPC from the kernel; only where this process may mount, e.g. as root). On
PostgreSQL, the server itself raises its disk_full error inside a transaction.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from svc_orchestrator.convert.jobs import job_from_pb
from svc_orchestrator.job_types import Job
from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.store.sqlite import SqliteStore
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.labels import glossary_hash


def _meta(config_hash: str) -> CacheMeta:
    return CacheMeta(glossary_text="circle: disc", glossary_hash=glossary_hash("circle: disc"),
                     labelmap=("circle", "square"), labelmap_hash="lm", config={"a": config_hash},
                     config_hash=config_hash, versions={"yolo-synth": "v1"})


def _result(sha: str, size: int) -> pb.PrepassResult:
    # Random bytes do not compress, so `size` is roughly what the row costs on disk.
    return pb.PrepassResult(image_sha256=sha, image_name=os.urandom(size // 2).hex(), width=3, height=4)


def _counts(store: SqliteStore) -> tuple[int, int]:
    with store.read() as t:
        return (t.q("SELECT COUNT(*) FROM entries").fetchone()[0], t.q("SELECT COUNT(*) FROM meta").fetchone()[0])


def _integrity(store: SqliteStore) -> str:
    with store.read() as t:
        return t.q("PRAGMA integrity_check").fetchone()[0]


def _fill_until_full(cache: PrepassCache, size: int, limit: int = 10_000) -> errors.TatorError:
    for i in range(limit):
        # A new meta row per entry: the failing write is a two-row transaction that must not half-land.
        meta = _meta(f"cfg{i}")
        try:
            cache.put(meta.key(f"sha{i}"), meta, _result(f"sha{i}", size), "ds")
        except errors.TatorError as exc:
            return exc
    raise AssertionError(f"{limit} writes of {size} bytes never filled the volume")


def _assert_full_and_clean(store: SqliteStore, exc: errors.TatorError, before: tuple[int, int]) -> None:
    assert exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED and exc.reason == "STORE_FULL", exc
    assert "full" in exc.message and "/" not in exc.message  # says what happened, names no server path
    entries, metas = _counts(store)
    assert entries == metas, (entries, metas)  # the failed put left no meta row without its entry
    assert entries >= before[0]
    assert _integrity(store) == "ok"


def test_sqlite_page_limit_is_store_full_with_no_partial_rows(tmp_path):
    store = SqliteStore(tmp_path / "orchestrator.sqlite")
    cache = PrepassCache(store)
    first = _meta("cfg-first")
    cache.put(first.key("a"), first, _result("a", 100), "ds")
    with store.read() as t:
        pages = t.q("PRAGMA page_count").fetchone()[0]
        t.q(f"PRAGMA max_page_count = {pages + 8}")
    before = _counts(store)
    exc = _fill_until_full(cache, 20_000)  # 20 kB rows overflow 8 pages at the first or second write
    _assert_full_and_clean(store, exc, before)
    assert cache.get(first.key("a")) is not None  # what was there is still readable
    with store.read() as t:
        t.q("PRAGMA max_page_count = 1073741823")  # space again: the same store writes
    again = _meta("cfg-again")
    cache.put(again.key("b"), again, _result("b", 100), "ds")
    assert cache.get(again.key("b")) is not None and _integrity(store) == "ok"
    store.close()


def _tmpfs(tmp_path: Path, size: str):
    mnt = tmp_path / "vol"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_volume(tmp_path):
    # Room for SQLite's write-ahead log to grow (it is checkpointed only every ~4 MiB), the reserve and
    # a few jobs: a job run after the filler is gone must fit.
    yield from _tmpfs(tmp_path, "1m")


def test_a_full_tmpfs_under_the_store_is_store_full_with_no_partial_rows(small_volume: Path):
    store = SqliteStore(small_volume / "orchestrator.sqlite")
    cache = PrepassCache(store)
    job = job_from_pb(pb.Job(id="j1", kind=pb.JOB_KIND_PREPASS, state=pb.JOB_STATE_RUNNING, total=3))
    store.insert_job(job, owner="r1", lease_until=time.time() + 60, units=[["a"], ["b"], ["c"]])
    before = _counts(store)
    exc = _fill_until_full(cache, 8_000)
    assert exc.__cause__ is not None  # the kernel's ENOSPC, seen by SQLite as SQLITE_FULL
    _assert_full_and_clean(store, exc, before)
    # The job that hit it can still record why it failed (record_end gives back the store's reserve if
    # the freed pages do not hold the update), so it does not sit RUNNING until its lease runs out.
    failed = store.record_end("j1", {"state": pb.JOB_STATE_FAILED, "error": str(exc), "updated_at": time.time()})
    assert failed is not None and failed.state == pb.JOB_STATE_FAILED and "STORE_FULL" in failed.error
    store.close()
    # A fresh process (a restart) opens the file and reads every committed row.
    reopened = SqliteStore(small_volume / "orchestrator.sqlite")
    assert _integrity(reopened) == "ok" and _counts(reopened)[0] == _counts(reopened)[1]
    reopened.close()


def test_postgres_disk_full_is_store_full_and_rolled_back(pg_server, tmp_path):
    """PostgreSQL reports a full volume as SQLSTATE 53100 (disk_full); the server raises that very
    error here (a DO block), so the real driver and pool carry it, after a row went in."""
    from svc_orchestrator.store import open_store

    store = open_store(pg_server.create_database(), tmp_path)
    cache = PrepassCache(store)
    meta = _meta("cfg-pg")
    with pytest.raises(errors.TatorError) as info, store.tx() as t:
        t.q("INSERT INTO meta VALUES (?,?,?,?,?,?,?,?,?,?)",
            (meta.meta_key, "g", "gh", "[]", "lm", "{}", "cfg-pg", "{}", "p1", time.time()))
        t.q("DO $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$")
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and info.value.reason == "STORE_FULL"
    assert _counts(store) == (0, 0)  # the meta row went with the transaction
    cache.put(meta.key("a"), meta, _result("a", 100), "ds")  # the pool's connection is usable again
    assert _counts(store) == (1, 1)
    store.close()


def _fill_file(volume: Path) -> Path:
    """A file that takes every free byte of the volume (ENOSPC ends it)."""
    filler = volume / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(bytes(64 * 1024))
                f.flush()
        except OSError:
            pass
    return filler


async def test_a_job_admitted_before_the_volume_fills_ends_failed_store_full(small_volume: Path):
    """The gap `fault_inject.py --disk-full --headroom-kb 64` showed: a job queued just before the
    volume fills waited QUEUED with no word until space returned. Now it ends FAILED with STORE_FULL in
    stage `store` (the store's reserve lets that last write land), nothing is half-written, the
    workers live on, and once space is back the same work succeeds."""
    import asyncio

    from svc_orchestrator.workers import UnitWorkers

    store = SqliteStore(small_volume / "orchestrator.sqlite")
    cache = PrepassCache(store)
    assert store.reserve.stat().st_size > 0

    async def execute(rec, unit, progress):
        for i, item in enumerate(unit.items):  # each image writes a cache row, as a prepass does
            meta = _meta(f"{rec.job.id}-{item}")
            await asyncio.to_thread(cache.put, meta.key(item), meta, _result(item, 6_000), "ds")
            await progress.advance(i + 1, image=item)
        return "{}"

    def job(job_id: str) -> Job:
        return job_from_pb(pb.Job(id=job_id, kind=pb.JOB_KIND_PREPASS, state=pb.JOB_STATE_QUEUED, total=6))

    units = [["a", "b"], ["c", "d"], ["e", "f"]]
    store.insert_job(job("j1"), owner="r1", lease_until=0.0, units=units)
    filler = _fill_file(small_volume)
    workers = UnitWorkers(store, "r1", execute=execute, finalize=lambda _rec, _s: "", notify=lambda _j: None,
                          poll_s=0.05, lease_s=5)
    workers.start()
    try:
        deadline = time.monotonic() + 20
        while (ended := store.job("j1").job).state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING):
            assert time.monotonic() < deadline, f"job still {pb.JobState.Name(ended.state)} on a full volume"
            await asyncio.sleep(0.05)
        assert ended.state == pb.JOB_STATE_FAILED and "STORE_FULL" in ended.error, ended
        assert ended.failed_stage == "store" and "/" not in ended.error.split("STORE_FULL", 1)[1]
        entries, metas = _counts(store)
        assert entries == metas and _integrity(store) == "ok"
        # Space returns: the reserve is taken again, and the workers (still alive) run the rerun.
        filler.unlink()
        store.insert_job(job("j2"), owner="r1", lease_until=0.0, units=units)
        workers.wake()
        deadline = time.monotonic() + 20
        while (again := store.job("j2").job).state != pb.JOB_STATE_SUCCEEDED:
            assert again.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING), again
            assert time.monotonic() < deadline, "the rerun never finished"
            await asyncio.sleep(0.05)
        assert store.reserve.stat().st_size > 0 and _integrity(store) == "ok"
    finally:
        await workers.close()
        store.close()
