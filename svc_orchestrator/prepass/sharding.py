"""A dataset prepass job as work units: the split into units, and the job summary merged from the
summaries of its units (written by whichever replicas ran them)."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import json_format

from svc_orchestrator.convert.jobs import result_column
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


def split_units(names: Sequence[str], size: int) -> list[list[str]]:
    """Consecutive batches of at most `size` images, in dataset order (progress reads naturally)."""
    return [list(names[i:i + size]) for i in range(0, len(names), size)]


def _add_counts(into, part) -> None:
    totals = {c.key: c.count for c in into}
    for c in part:
        totals[c.key] = totals.get(c.key, 0) + c.count
    del into[:]
    into.extend(pb.Count(key=k, count=n) for k, n in sorted(totals.items()))


def merge_summaries(summaries: Sequence[str]) -> str:
    """One job result from unit results (JobResult protobuf JSON, as the store keeps them): counts
    and per-key counts add up, stage totals add up per stage (first-seen order), identity fields
    (split, hashes) are the same in every unit and taken from the first."""
    out = pb.PrepassJobSummary()
    for i, text in enumerate(summaries):
        part = json_format.Parse(text, pb.JobResult()).prepass
        if i == 0:
            out.split, out.config_hash, out.glossary_hash, out.labelmap_hash = (
                part.split, part.config_hash, part.glossary_hash, part.labelmap_hash)
        out.images += part.images
        out.cache_hits += part.cache_hits
        out.candidates += part.candidates
        out.atoms += part.atoms
        out.warnings += part.warnings
        for name in ("candidates_by_source", "candidates_by_primary_source", "atoms_by_source",
                     "candidates_by_class"):
            _add_counts(getattr(out, name), getattr(part, name))
        stages = {st.stage: st for st in out.stages}
        for st in part.stages:
            if st.stage in stages:
                have = stages[st.stage]
                have.image_bytes_sent += st.image_bytes_sent
                have.bytes_sent += st.bytes_sent
                have.bytes_received += st.bytes_received
                have.duration.FromNanoseconds(have.duration.ToNanoseconds() + st.duration.ToNanoseconds())
            else:
                stages[st.stage] = out.stages.add()
                stages[st.stage].CopyFrom(st)
    return result_column(pb.JobResult(prepass=out))
