"""The work-unit queue of sharded jobs, in the SQL both stores share (a mixin of `SqlStore`).

A unit is PENDING until a replica claims it (CLAIMED, under a lease the replica renews), then DONE.
A unit whose lease ran out is claimed again by anyone. Each claim counts an attempt; a unit claimed
`max_attempts` times that never finished is a *poison* unit: something in it takes its replica down
(a crash, an out-of-memory kill, a hang that loses the lease) and claiming it again would take the
next one down too. The claim that finds it marks it FAILED instead, and the job FAILED with an error
that names the unit's images; the images other units finished stay in the prepass cache, so a rerun
after the cause is fixed computes only the rest. A graceful shutdown's hand-back is not an attempt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from svc_orchestrator.job_types import Job, JobState
from svc_orchestrator.store.base import ACTIVE, UNIT_CLAIMED, UNIT_DONE, UNIT_FAILED, UNIT_PENDING, WorkUnit

if TYPE_CHECKING:
    from svc_orchestrator.store.sql import Tx

_ACTIVE_SQL = f"state IN ({int(ACTIVE[0])}, {int(ACTIVE[1])})"
# A failed job's error names at most this many of the poison unit's images (a unit holds up to 4096).
_NAMED_IMAGES = 50


def poison_error(unit: int, items: Sequence[str], attempts: int, last_owner: str) -> str:
    names = ", ".join(items[:_NAMED_IMAGES]) + (f" and {len(items) - _NAMED_IMAGES} more"
                                                 if len(items) > _NAMED_IMAGES else "")
    return (f"work unit {unit} (images {names}) was claimed {attempts} times and never finished: each replica "
            f"running it stopped (crashed, was killed, or lost the store) before its end, the last one "
            f"{last_owner or '(unknown)'}; it is not claimed again")


class UnitQueries:
    lock_rows: str
    claim_rows: str

    if TYPE_CHECKING:
        def tx(self) -> AbstractContextManager[Tx]: ...

        def read(self) -> AbstractContextManager[Tx]: ...

        def _update(self, t: Tx, job_id: str, fields: dict, image: str, only_active: bool) -> Job | None: ...

    def _claimable(self, t: Tx, now: float) -> Any:
        return t.q("SELECT u.job_id, u.unit, u.items, u.attempts, u.done, u.owner FROM work_units u "
                   f"JOIN jobs j ON j.id = u.job_id WHERE j.{_ACTIVE_SQL} AND j.cancel_requested = 0 AND "
                   "(u.state = ? OR (u.state = ? AND u.lease_until < ?)) ORDER BY j.created_at, u.unit LIMIT 1"
                   f"{self.claim_rows}", (UNIT_PENDING, UNIT_CLAIMED, now)).fetchone()

    def claimable_job(self, now):
        with self.read() as t:
            row = self._claimable(t, now)
        return None if row is None else str(row[0])

    def claim_unit(self, owner, now, lease_until, max_attempts=0):
        with self.tx() as t:
            # Each poison unit found fails its job, so the next query looks at another job's units.
            while (row := self._claimable(t, now)) is not None:
                job_id, unit, items, attempts, old_done, last_owner = row
                if not (max_attempts and attempts >= max_attempts):
                    break
                error = poison_error(int(unit), json.loads(items), int(attempts), last_owner)
                t.q("UPDATE work_units SET state = ?, owner = '', error = ? WHERE job_id = ? AND unit = ?",
                    (UNIT_FAILED, error, job_id, unit))
                self._update(t, job_id, {"state": JobState.FAILED, "error": error, "eta_s": 0.0,
                                         "message": f"failed: work unit {unit} never finished", "updated_at": now},
                             "", True)
            if row is None:
                return None
            if old_done:  # a reclaimed unit starts over: what its last owner reported no longer counts
                t.q("UPDATE jobs SET done = done - ? WHERE id = ?", (old_done, job_id))
            t.q("UPDATE work_units SET state = ?, owner = ?, lease_until = ?, attempts = attempts + 1, done = 0 "
                "WHERE job_id = ? AND unit = ?", (UNIT_CLAIMED, owner, lease_until, job_id, unit))
            job = t.q("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if job[0] == JobState.QUEUED:
                self._update(t, job_id, {"state": JobState.RUNNING, "message": "running", "updated_at": now},
                             "", True)
        return WorkUnit(job_id, int(unit), tuple(json.loads(items)), int(attempts) + 1)

    def advance_unit(self, owner, job_id, unit, done, now, *, message="", image=""):
        with self.tx() as t:
            row = t.q(f"SELECT created_at, state, done, total FROM jobs WHERE id = ?{self.lock_rows}",
                      (job_id,)).fetchone()
            if row is None or row[1] not in ACTIVE:
                return None
            held = t.q("SELECT done FROM work_units WHERE job_id = ? AND unit = ? AND owner = ? AND state = ?",
                       (job_id, unit, owner, UNIT_CLAIMED)).fetchone()
            if held is None:
                return None
            t.q("UPDATE work_units SET done = ? WHERE job_id = ? AND unit = ?", (done, job_id, unit))
            total_done, total = int(row[2]) + done - int(held[0]), int(row[3])
            elapsed = max(0.0, now - float(row[0]))
            eta = elapsed / total_done * (total - total_done) if total_done and total >= total_done else 0.0
            return self._update(t, job_id, {"done": total_done, "eta_s": eta, "message": message, "updated_at": now},
                                image, True)

    def heartbeat_units(self, owner, units, lease_until):
        lost = set()
        with self.tx() as t:
            for job_id, unit in units:
                cur = t.q("UPDATE work_units SET lease_until = ? WHERE job_id = ? AND unit = ? AND owner = ? "
                          f"AND state = ? AND job_id IN (SELECT id FROM jobs WHERE {_ACTIVE_SQL})",
                          (lease_until, job_id, unit, owner, UNIT_CLAIMED))
                if cur.rowcount == 0:
                    lost.add((job_id, unit))
        return lost

    def finish_unit(self, owner, job_id, unit, summary):
        with self.tx() as t:
            # Lock the job first: two replicas finishing the last two units must see each other's commit.
            t.q(f"SELECT id FROM jobs WHERE id = ?{self.lock_rows}", (job_id,)).fetchone()
            cur = t.q("UPDATE work_units SET state = ?, summary = ? WHERE job_id = ? AND unit = ? AND owner = ? "
                      "AND state = ?", (UNIT_DONE, summary, job_id, unit, owner, UNIT_CLAIMED))
            if cur.rowcount == 0:
                return None
            left = t.q("UPDATE jobs SET units_left = units_left - 1 WHERE id = ? RETURNING units_left",
                       (job_id,)).fetchone()
            if left[0] > 0:
                return None
            return [r[0] for r in t.q("SELECT summary FROM work_units WHERE job_id = ? ORDER BY unit",
                                      (job_id,)).fetchall()]

    def release_units(self, owner, *, counted=True):
        # A graceful hand-back takes back its claim's attempt: only units whose replica died count
        # towards max_attempts (a restart under the same name gives back with counted=True).
        undo = "" if counted else ", attempts = attempts - 1"
        with self.tx() as t:
            return t.q(f"UPDATE work_units SET state = ?, owner = '', lease_until = 0{undo} WHERE owner = ? "
                       "AND state = ?", (UNIT_PENDING, owner, UNIT_CLAIMED)).rowcount

    def unit_states(self, job_id):
        with self.tx() as t:
            return [(int(r[0]), int(r[1]), int(r[2]), r[3]) for r in t.q(
                "SELECT unit, state, attempts, error FROM work_units WHERE job_id = ? ORDER BY unit",
                (job_id,)).fetchall()]
