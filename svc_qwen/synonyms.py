"""ExpandSynonyms: glossary terms first, one model call for the rest, defaults last.

Labels with glossary terms get origin "glossary" and are not sent to the
model. The others are asked in one text-only call (at most `max_labels` of
them; the rest are reported). Labels still without terms get origin "default"
with their natural label. Every list is cleaned, deduplicated and
capped; the cap is enforced here and the drops are counted (a budget stated
only in the prompt is one the model may ignore).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from svc_qwen.parsing import cap_terms, parse_synonyms
from svc_qwen.prompts import synonyms_prompt
from tator_core.cache import BoundedLRU
from tator_core.convert import Note
from tator_core.labels import natural_label

GLOSSARY, MODEL, DEFAULT = "glossary", "model", "default"


@dataclass
class SynonymJob:
    labels: list[str]
    glossary: dict[str, list[str]]  # label -> cleaned glossary terms (labels of this request only)
    cap: int
    max_labels: int = 100

    def to_ask(self) -> list[str]:
        """Labels the model is asked about (none when nothing could be kept)."""
        if self.cap <= 0:
            return []
        return [lb for lb in self.labels if not self.glossary.get(lb)][:self.max_labels]

    def prompt(self) -> str:
        asked = self.to_ask()
        return synonyms_prompt(asked, self.cap, {lb: t for lb, t in self.glossary.items() if t}) if asked else ""


@dataclass
class LabelTermsResult:
    label: str
    terms: list[str]
    origin: str


@dataclass
class SynonymResult:
    labels: list[LabelTermsResult] = field(default_factory=list)
    raw_output: str = ""
    parsed_json: bool = False
    dropped_by_cap: int = 0
    warnings: list[Note] = field(default_factory=list)
    generated_tokens: int = 0


def finish(job: SynonymJob, raw_output: str | None) -> SynonymResult:
    """Combine glossary terms, parsed model terms (when the model ran) and defaults."""
    res = SynonymResult(raw_output=raw_output or "")
    asked = job.to_ask()
    model_terms: dict[str, list[str]] = {}
    if raw_output is not None and asked:
        parsed = parse_synonyms(raw_output, asked, job.labels)
        model_terms, res.parsed_json = parsed.terms, parsed.parsed_json
        if parsed.truncated:
            res.warnings.append(Note("model_output_truncated", "", "the model's output ended before its JSON closed"))
        res.warnings.extend(Note("unmatched_key", k, "names no asked label") for k in parsed.unmatched_keys[:10])
        res.warnings.extend(Note("other_label_term_dropped", lb, f"term {t!r} is another label's name")
                            for lb, t in parsed.cross_label_dropped[:10])
    not_asked = [lb for lb in job.labels if not job.glossary.get(lb) and lb not in asked]
    if not_asked and job.cap > 0:
        res.warnings.append(Note("labels_not_expanded", "", f"{len(not_asked)} labels over the {job.max_labels}-label "
                                 "call cap kept their default term"))
    defaulted = 0
    for label in job.labels:
        if job.glossary.get(label):
            terms, origin = job.glossary[label], GLOSSARY
        elif model_terms.get(label):
            terms, origin = model_terms[label], MODEL
        else:
            natural = natural_label(label)
            terms, origin = ([natural] if natural else []), DEFAULT
            defaulted += label in asked
        kept, dropped = cap_terms(terms, job.cap)
        res.dropped_by_cap += dropped
        res.labels.append(LabelTermsResult(label, kept, origin))
    if defaulted:
        res.warnings.append(Note("model_gave_no_terms", "", f"{defaulted} asked labels got no term from the model "
                                 "and kept their default term"))
    return res


def expand(job: SynonymJob, generate: Callable[[str], tuple[str, int]] | None) -> SynonymResult:
    """The whole expansion; `generate(prompt) -> (text, tokens)` is the model call
    (None when the caller knows no label needs it)."""
    prompt = job.prompt()
    if not prompt or generate is None:
        return finish(job, None)
    text, tokens = generate(prompt)
    res = finish(job, text)
    res.generated_tokens = tokens
    return res


class ResultCache:
    """A small thread-safe LRU of synonym results (deep copies in and out)."""

    def __init__(self, max_items: int = 32) -> None:
        self._items: BoundedLRU[Hashable, SynonymResult] = BoundedLRU(max_items)
        self._count_lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> SynonymResult | None:
        hit = self._items.get(key)
        with self._count_lock:
            if hit is None:
                self.misses += 1
            else:
                self.hits += 1
        return None if hit is None else copy.deepcopy(hit)

    def put(self, key: Hashable, value: SynonymResult) -> None:
        self._items.put(key, copy.deepcopy(value))
