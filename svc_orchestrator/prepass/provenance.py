"""Atoms, clusters and the class-aware dedupe that keeps provenance.

Every raw detection becomes an atom in a stage/run bucket. Clusters are formed greedily by score
(`tator_core.geometry.greedy_clusters`): an item joins the first kept cluster of the same label
whose representative it overlaps at IoU >= dedupe_iou (another label only with cross-class
merging, at its own IoU). The representative is the best-scoring member; a cluster carries the
sorted union of sources, the best score per source and every atom id, so the second dedupe
(Part-A clusters + similarity atoms) merges clusters without losing where anything came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tator_core.convert import box_pb, box_xyxy
from tator_core.enums import source_name, source_value
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.geometry import XYXY, Scored, as_xyxy, fused_box, greedy_clusters, is_valid_box

FULL_WINDOWS = ("", "full")


def is_full(det: common_pb2.Detection) -> bool:
    return not det.HasField("window") or det.window.name in FULL_WINDOWS


def detector_pass(det: common_pb2.Detection) -> int:
    """Full frame or SAHI tile, from the window the detection came from."""
    return pb.ATOM_PASS_FULL if is_full(det) else pb.ATOM_PASS_TILED


def sam3_pass(det: common_pb2.Detection) -> int:
    return pb.ATOM_PASS_FULL if is_full(det) else pb.ATOM_PASS_WINDOWED


@dataclass
class Cluster:
    """A deduplicated detection with its provenance (sources by their short names, see tator_core.enums)."""

    box: XYXY
    label: str
    score: float
    source_primary: str
    score_by_source: dict[str, float]
    atom_ids: list[str]
    window: str = "full"

    @property
    def sources(self) -> list[str]:
        return sorted(self.score_by_source)


class AtomLog:
    """Atoms in the order they were made; ids a0000001, a0000002, ... unique within the image."""

    def __init__(self) -> None:
        self.atoms: list[pb.Atom] = []

    def add(self, stage: pb.PrepassStage, pass_kind: pb.AtomPass, det: common_pb2.Detection,
            prompts: Sequence[pb.PromptOrigin] = ()) -> pb.Atom:
        atom = pb.Atom(atom_id=f"a{len(self.atoms) + 1:07d}", stage=stage, pass_kind=pass_kind, prompts=prompts)
        atom.detection.CopyFrom(det)
        self.atoms.append(atom)
        return atom


def singleton(atom: pb.Atom) -> Cluster:
    det = atom.detection
    score = float(det.score)
    src = source_name(det.source)
    return Cluster(box_xyxy(det.box), det.label, score, src, {src: score}, [atom.atom_id],
                   det.window.name or "full")


def _not_clustered(stage: pb.PrepassStage, atom: pb.Atom, why: str) -> pb.PrepassWarning:
    return pb.PrepassWarning(stage=stage, warning=common_pb2.Warning(code="atom_not_clustered", subject=atom.atom_id,
                                                                     message=f"{why}; kept as an atom"))


def usable(atoms: Iterable[pb.Atom], labelmap: Sequence[str], stage: pb.PrepassStage = pb.PREPASS_STAGE_DEDUPE,
           ) -> tuple[list[pb.Atom], list[pb.PrepassWarning]]:
    """Atoms that can be clustered; the rest are kept as atoms but reported, never silently lost."""
    known = set(labelmap)
    keep, notes = [], []
    for atom in atoms:
        det = atom.detection
        if not is_valid_box(box_xyxy(det.box)):
            notes.append(_not_clustered(stage, atom, f"invalid box from {source_name(det.source)}"))
        elif det.label not in known:
            notes.append(_not_clustered(stage, atom, f"label {det.label!r} from {source_name(det.source)} is not "
                                                      "in the labelmap"))
        else:
            keep.append(atom)
    return keep, notes


def dedupe(items: Sequence[Cluster], *, iou: float, fusion: str = "primary", cross_class: bool = False,
           cross_class_iou: float = 0.8) -> list[Cluster]:
    """Merge clusters (atoms are singleton clusters); result sorted by score, then box, then label."""
    if not items:
        return []
    scored = [Scored(c.box, c.score, c.label, c) for c in items]
    groups = greedy_clusters(scored, iou, class_aware=True, cross_class_iou=cross_class_iou if cross_class else None)
    out = []
    for group in groups:
        members = [items[i] for i in group]
        rep = members[0]
        by_source: dict[str, float] = {}
        atom_ids: list[str] = []
        for m in members:
            for src, s in m.score_by_source.items():
                by_source[src] = max(by_source.get(src, s), s)
            atom_ids.extend(m.atom_ids)
        box = fused_box([scored[i] for i in group]) if fusion == "wbf" and len(group) > 1 else rep.box
        out.append(Cluster(as_xyxy(box), rep.label, rep.score, rep.source_primary,
                           by_source, sorted(set(atom_ids)), rep.window))
    out.sort(key=lambda c: (-c.score, c.box, c.label))
    return out


def to_candidate(index: int, c: Cluster) -> pb.Candidate:
    by_value = sorted((source_value(src), s) for src, s in c.score_by_source.items())
    cand = pb.Candidate(index=index, label=c.label, score=c.score, source_primary=source_value(c.source_primary),
                        sources=[v for v, _ in by_value], atom_ids=c.atom_ids,
                        source_scores=[pb.SourceScore(source=v, score=s) for v, s in by_value])
    cand.box.CopyFrom(box_pb(c.box))
    return cand
