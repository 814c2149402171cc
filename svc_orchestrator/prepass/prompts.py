"""SAM3 text prompts per label, with a cap that is actually enforced.

Per label, in order and deduplicated case-insensitively: the natural form of the label
(`light_vehicle` -> `light vehicle`), the raw label, its glossary terms, then Qwen expansions —
asked for only for labels without glossary terms, and only up to `budget` per label (the old
budget was a prompt instruction the model could ignore; here the cut happens on our side too).
The per-label list never exceeds the SegmentText limit of 64 prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.labels import natural_label, parse_glossary

MAX_PROMPTS_PER_LABEL = 64

Origin = pb.PromptOriginKind

#: origin of each prompt (PromptOriginKind): the result's prompt map and each SAM3 text atom carry it.
BASE, GLOSSARY, QWEN = pb.PROMPT_ORIGIN_KIND_BASE, pb.PROMPT_ORIGIN_KIND_GLOSSARY, pb.PROMPT_ORIGIN_KIND_QWEN


def glossary_terms(glossary_text: str, labelmap: Sequence[str]) -> dict[str, list[str]]:
    return parse_glossary(glossary_text, labelmap)


def labels_needing_expansion(labelmap: Sequence[str], terms: Mapping[str, Sequence[str]]) -> list[str]:
    return [label for label in labelmap if not terms.get(label)]


def build_prompts(labelmap: Sequence[str], terms: Mapping[str, Sequence[str]],
                  expansions: Mapping[str, Sequence[str]], budget: int) -> dict[str, list[tuple[str, Origin]]]:
    """{label: [(prompt, origin), ...]} with origin BASE | GLOSSARY | QWEN."""
    out: dict[str, list[tuple[str, Origin]]] = {}
    for label in labelmap:
        seen: set[str] = set()
        prompts: list[tuple[str, Origin]] = []
        candidates = ([(natural_label(label), BASE), (label.strip(), BASE)]
                      + [(t, GLOSSARY) for t in terms.get(label, ())]
                      + [(t, QWEN) for t in list(expansions.get(label, ()))[:budget]])
        for text, origin in candidates:
            text = " ".join(text.split())[:200]
            if text and text.lower() not in seen:
                seen.add(text.lower())
                prompts.append((text, origin))
        out[label] = prompts[:MAX_PROMPTS_PER_LABEL]
    return out
