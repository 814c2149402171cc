"""Compare a regression summary with the committed baseline.

A regression (non-zero exit) is any of:
  - a schema version, pipeline version, seed, input hash or proto fingerprint change;
  - a baseline step missing from the run, or `ok` in the baseline and now `skipped`/`failed`;
  - a field of an `ok` baseline step missing now (nested keys included);
  - a count (detections, classes.*, sources.*, cache.*) moved by more than the step's tolerance
    (default 0);
  - a metric (higher is better) dropped by more than 0.02 absolute;
  - a step's hashes.* or config_hash changed.
Baseline steps of tiers this run did not select, and heavy steps a `--fast` run skipped, are not
compared. Everything else that differs (new steps or fields, improvements, counts within tolerance,
`extra` values) is a change: reported when a baseline is updated, never a failure. The summary's
top-level config_hash only aggregates the steps' config hashes, which are compared step by step, so a
step that becomes reachable does not fail the run. Each line names the step and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

METRIC_DROP = 0.02
COUNT_FIELDS = ("detections", "classes", "sources", "cache")
PINNED_TOP = ("schema", "pipeline_version", "seed")
#: Step bookkeeping, not results: never compared field by field.
STEP_META = ("status", "tier", "service", "heavy", "reason", "error")


@dataclass
class Diff:
    regressions: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts -> {"a.b": leaf}; an empty dict is kept as a leaf so its presence is checked."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _tolerance(tolerances: dict[str, float], path: str) -> float:
    """Most specific declared tolerance for a field path ("classes.circle" before "classes")."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in tolerances:
            return float(tolerances[key])
    return 0.0


def _compare_step(name: str, base: dict, cur: dict, tolerances: dict[str, float], diff: Diff) -> None:
    base_fields = _flatten({k: v for k, v in base.items() if k not in STEP_META}, "")
    cur_fields = _flatten({k: v for k, v in cur.items() if k not in STEP_META}, "")
    for path, old in base_fields.items():
        where = f"step {name}: {path}"
        if path not in cur_fields:
            if old == {} and any(k.startswith(f"{path}.") for k in cur_fields):
                diff.changes.append(f"{where}: was empty, now has entries")
                continue
            diff.regressions.append(f"{where}: missing (baseline {old!r})")
            continue
        new = cur_fields[path]
        if new == old:
            continue
        top = path.split(".")[0]
        if top in COUNT_FIELDS:
            tol = _tolerance(tolerances, path)
            if not isinstance(new, (int, float)) or abs(new - old) > tol:
                diff.regressions.append(f"{where}: {old!r} -> {new!r} (tolerance {tol:g})")
            else:
                diff.changes.append(f"{where}: {old!r} -> {new!r} (within tolerance {tol:g})")
        elif top == "metrics":
            if not isinstance(new, (int, float)) or old - new > METRIC_DROP:
                diff.regressions.append(f"{where}: {old!r} -> {new!r} (drop > {METRIC_DROP:g})")
            else:
                diff.changes.append(f"{where}: {old!r} -> {new!r}")
        elif top in ("hashes", "config_hash"):
            diff.regressions.append(f"{where}: {old!r} -> {new!r}")
        else:  # extra: free-form values, only presence is pinned
            diff.changes.append(f"{where}: {old!r} -> {new!r}")
    for path in cur_fields.keys() - base_fields.keys():
        diff.changes.append(f"step {name}: {path}: new field ({cur_fields[path]!r})")


def compare(
    baseline: dict[str, Any], current: dict[str, Any], tolerances: dict[str, dict[str, float]] | None = None
) -> Diff:
    """Full comparison. `tolerances` (step -> field path -> allowed change) defaults to the tolerances
    the registered steps declare."""
    if tolerances is None:
        from tator_fixtures.regress.registry import registered_steps

        tolerances = {s.name: s.tolerances for s in registered_steps()}
    diff = Diff()
    for key in PINNED_TOP:
        if key not in current:
            diff.regressions.append(f"summary: {key}: missing")
        elif baseline.get(key) != current[key]:
            diff.regressions.append(f"summary: {key}: {baseline.get(key)!r} -> {current[key]!r}")
    for section in ("fingerprint", "hashes"):
        base_map, cur_map = baseline.get(section, {}), current.get(section, {})
        for key in sorted(base_map.keys() | cur_map.keys()):
            if key not in cur_map:
                diff.regressions.append(f"summary: {section}.{key}: missing")
            elif key not in base_map:
                diff.regressions.append(f"summary: {section}.{key}: new ({cur_map[key]})")
            elif base_map[key] != cur_map[key]:
                diff.regressions.append(f"summary: {section}.{key}: {base_map[key]} -> {cur_map[key]}")

    tiers = set(current.get("tiers", ()))
    cur_steps = current.get("steps", {})
    for name, base in baseline.get("steps", {}).items():
        if base.get("tier") not in tiers or (current.get("fast") and base.get("heavy")):
            continue
        cur = cur_steps.get(name)
        if cur is None:
            diff.regressions.append(f"step {name}: missing from the run")
            continue
        if base.get("status") != "ok":
            if cur.get("status") == "ok":
                diff.changes.append(f"step {name}: status {base.get('status')} -> ok")
            continue
        if cur.get("status") != "ok":
            why = cur.get("error") or cur.get("reason") or ""
            diff.regressions.append(f"step {name}: status: ok -> {cur.get('status')} ({why})")
            continue
        _compare_step(name, base, cur, tolerances.get(name, {}), diff)
    for name in cur_steps.keys() - baseline.get("steps", {}).keys():
        diff.changes.append(f"step {name}: new step (status {cur_steps[name].get('status')})")
    return diff


def diff_summaries(
    baseline: dict[str, Any], current: dict[str, Any], tolerances: dict[str, dict[str, float]] | None = None
) -> list[str]:
    """The regressions of `current` against `baseline`, one line each naming step and field; empty = pass."""
    return compare(baseline, current, tolerances).regressions


def accept_baseline(old: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """The new baseline: this run's summary, keeping the old records of steps this run did not compare
    (other tiers; heavy steps skipped by --fast), without the per-run fields (timings, fast)."""
    new = {k: v for k, v in current.items() if k not in ("timings", "fast")}
    if old:
        tiers = set(current.get("tiers", ()))
        kept = {
            name: record for name, record in old.get("steps", {}).items()
            if record.get("tier") not in tiers or (current.get("fast") and record.get("heavy"))
        }
        new["steps"] = {**current["steps"], **kept}
        new["tiers"] = sorted(tiers | set(old.get("tiers", ())))
    return new
