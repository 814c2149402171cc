"""A dataset prepass job as work units: the split into units, and the job summary merged from the
summaries of its units (written by whichever replicas ran them)."""

from __future__ import annotations

import json
from collections.abc import Sequence


def split_units(names: Sequence[str], size: int) -> list[list[str]]:
    """Consecutive batches of at most `size` images, in dataset order (progress reads naturally)."""
    return [list(names[i:i + size]) for i in range(0, len(names), size)]


def _add(into: dict, part: dict) -> None:
    for k, v in part.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, dict)):
            into.setdefault(k, v)  # identity fields (dataset, split, hashes) are the same in every unit
        elif isinstance(v, dict):
            _add(into.setdefault(k, {}), v)
        else:
            into[k] = into.get(k, 0) + v


def merge_summaries(summaries: Sequence[str]) -> str:
    """One job summary from unit summaries: counts and per-key count maps add up."""
    out: dict = {}
    for s in summaries:
        _add(out, json.loads(s))
    for k, v in out.get("stage_ms", {}).items():
        out["stage_ms"][k] = round(v, 1)
    return json.dumps(out, sort_keys=True)
