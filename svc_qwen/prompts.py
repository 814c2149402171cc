"""Prompt text for captions, the window merge pass and synonym expansion.

Every user-supplied string (labels, glossary terms, earlier captions) passes
`strip_special_tokens` and is flattened to one line before it enters a
prompt: chat-template control text such as `<|image_pad|>` would otherwise be
tokenized as a real control token. Lists are bounded so a 1000-label request
cannot grow a prompt without limit; the post-check still sees every label.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from svc_qwen.sanitize import is_raw_label, strip_special_tokens
from tator_core.labels import match_key, natural_label

_WS_RE = re.compile(r"\s+")
MAX_PROMPT_LABELS = 40
MAX_HINT_LABELS = 10
MAX_VARIANTS = 6


def one_line(text: str, limit: int = 200) -> str:
    return _WS_RE.sub(" ", strip_special_tokens(text)).strip()[:limit]


@dataclass
class Vocabulary:
    """Which words to avoid and which to prefer, from avoid_labels + glossary."""

    raw_labels: list[str] = field(default_factory=list)        # tags the caption must not contain
    glossary: dict[str, list[str]] = field(default_factory=dict)  # label -> cleaned terms
    preferred: dict[str, str] = field(default_factory=dict)    # label -> the word to write instead
    by_key: dict[str, str] = field(default_factory=dict)       # match key -> preferred word

    @classmethod
    def build(cls, avoid_labels: Sequence[str], glossary: Mapping[str, list[str]]) -> Vocabulary:
        raw = [lb for lb in dict.fromkeys(avoid_labels) if is_raw_label(lb)]
        preferred: dict[str, str] = {}
        for label in list(dict.fromkeys([*avoid_labels, *glossary])):
            terms = [t for t in glossary.get(label, []) if "_" not in t]
            preferred[label] = one_line(terms[0] if terms else natural_label(label), 60)
        by_key: dict[str, str] = {}
        for label, word in preferred.items():
            if word:
                by_key.setdefault(match_key(label), word)
        return cls(raw, dict(glossary), preferred, by_key)

    def word_for(self, label: str) -> str:
        """A hint label as the prompt should say it (never the raw tag)."""
        return (self.preferred.get(label) or self.by_key.get(match_key(label))
                or one_line(natural_label(label), 60) or one_line(label, 60))


def hint_counts(labels: Sequence[str], vocab: Vocabulary, limit: int = MAX_HINT_LABELS) -> list[tuple[str, int]]:
    """Counts per label (in natural words), largest first, top `limit`."""
    counts = Counter(vocab.word_for(lb) for lb in labels)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _vocab_lines(vocab: Vocabulary) -> list[str]:
    lines = []
    if vocab.raw_labels:
        pairs = [f"{one_line(lb, 60)} (write \"{vocab.word_for(lb)}\")"
                 for lb in vocab.raw_labels[:MAX_PROMPT_LABELS]]
        lines.append("Never write these dataset tags; use the words in brackets instead: " + "; ".join(pairs) + ".")
    prefer = []
    for label, terms in list(vocab.glossary.items())[:MAX_PROMPT_LABELS]:
        if terms:
            words = ", ".join(one_line(t, 40) for t in terms[:MAX_VARIANTS])
            prefer.append(f"{vocab.word_for(label)}: {words}")
    if prefer:
        lines.append("Prefer these words for the objects: " + "; ".join(prefer) + ".")
    lines.append("Never write words joined by underscores.")
    return lines


def _hint_line(counts: Sequence[tuple[str, int]]) -> str:
    if not counts:
        return ""
    body = ", ".join(f"{word} ({n})" for word, n in counts)
    return f"Detection hints (suggestions, may be incomplete or wrong): {body}."


def caption_prompt(vocab: Vocabulary, counts: Sequence[tuple[str, int]], *, window: bool = False) -> str:
    """Instruction for one image or one window crop."""
    if window:
        head = ("This image is one part of a larger picture. Describe what is visible in this part in one to "
                "three sentences: the objects, how many, their colours and positions.")
    else:
        head = ("Write a detailed caption of this image in a few sentences. Describe the visible objects, how many "
                "there are, their colours, attributes, positions and any actions.")
    lines = [head,
             "Do not mention labels, hints, boxes or coordinates.",
             *_vocab_lines(vocab)]
    hint = _hint_line(counts)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def merge_instruction(vocab: Vocabulary, counts: Sequence[tuple[str, int]]) -> str:
    """The instruction part of the merge prompt (what a prompt echo is checked against)."""
    lines = ["Below are descriptions of overlapping parts of one image. Write one caption of the whole image in "
             "a few sentences. Objects seen in two overlapping parts are the same object: count them once.",
             "Do not mention parts, windows, hints, boxes or coordinates.",
             *_vocab_lines(vocab)]
    hint = _hint_line(counts)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def merge_prompt(instruction: str, window_captions: Sequence[tuple[str, str]], draft: str = "") -> str:
    """Text-only pass over the window captions (and the full-frame draft, when there is one)."""
    parts = [instruction, ""]
    if draft:
        parts.append(f"Whole image (draft): {one_line(draft, 4000)}")
    for name, caption in window_captions:
        parts.append(f"Part {one_line(name, 40)}: {one_line(caption, 4000)}")
    return "\n".join(parts)


def synonyms_prompt(labels: Sequence[str], cap: int, known: Mapping[str, list[str]]) -> str:
    """One text-only call asking JSON synonyms for the labels without glossary terms."""
    asked: dict[str, list[str]] = {one_line(lb, 200): [] for lb in labels}
    lines = [
        "You write search phrases for an object detector.",
        f"For each label below give up to {cap} short noun phrases (1-3 words) that name the same kind of "
        "object. Lowercase. No filler words, no explanations. Use an empty list when unsure.",
        "Answer with JSON only, exactly in this form: " + json.dumps(asked, ensure_ascii=False),
    ]
    meanings = [f"{one_line(lb, 200)} = {one_line(natural_label(lb))}" for lb in labels if is_raw_label(lb)]
    if meanings:
        lines.append("Meaning of the tags: " + "; ".join(meanings))
    examples = [f"{one_line(lb, 60)}: {', '.join(one_line(t, 40) for t in terms[:MAX_VARIANTS])}"
                for lb, terms in list(known.items())[:MAX_PROMPT_LABELS] if terms]
    if examples:
        lines.append("Other labels of the same dataset, with their terms (for context, do not repeat them): "
                     + "; ".join(examples))
    return "\n".join(lines)
