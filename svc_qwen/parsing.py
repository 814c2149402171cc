"""Robust parsing of synonym-expansion output. Pure functions; never raise.

Models wrap JSON in ```json fences, follow it with prose, write Python-style
single quotes, or stop mid-object when the token budget runs out. The old
parser took "the first balanced {...}" after a fenced-block regex whose raw
string held doubled backslashes and so never matched; a truncated
answer lost every label. Here: fenced blocks and the whole text are tried as
strict JSON first, then a small lenient parser (single quotes, bare words,
missing or trailing commas) reads from each `{`, and on truncation it keeps
every entry that was complete. Only if no object is found does the `key: a, b`
line fallback run. Keys map to labels by match key / fuzzy alignment, terms
are cleaned by `tator_core.labels.clean_term`, and the per-class cap is enforced by the
caller: a budget stated only in the prompt is one the model may ignore.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from svc_qwen.sanitize import strip_reasoning, strip_special_tokens
from tator_core.labels import align_label, clean_terms, match_key, parse_glossary_raw

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n?(.*?)(?:```|\Z)", re.S)
_LIST_MARK_RE = re.compile(r"^\s*(?:[-*•>#]+|\d{1,3}[.)])\s*")
_WRAPPER_KEYS = {"synonyms", "terms", "labels", "result", "results", "output", "answer", "data", "classes"}
PLACEHOLDER_TERMS = frozenset({"none", "n/a", "na", "null", "unknown", "nothing", "etc", "tbd", "same", "empty"})
MAX_DEPTH = 24
MAX_STARTS = 16


class _Truncated(Exception):
    """Input ended inside a value."""


class _Bad(Exception):
    """Input is not even lenient JSON here."""


class _Lenient:
    """Tolerant JSON reader: single quotes, bare words, optional commas.

    `value()` returns (value, complete). On truncation containers return the
    members that were complete and complete=False; a truncated scalar raises
    `_Truncated` so its container can drop it.
    """

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        s, n = self.s, len(self.s)
        while self.i < n and (s[self.i].isspace() or s[self.i] == ","):
            self.i += 1

    def value(self, depth: int) -> tuple[Any, bool]:
        if depth > MAX_DEPTH:
            raise _Bad("too deep")
        self.ws()
        if self.i >= len(self.s):
            raise _Truncated
        ch = self.s[self.i]
        if ch in "{[":
            return self.container(depth)
        if ch in "\"'":
            return self.string(), True
        if ch in "}]:":
            raise _Bad(f"unexpected {ch!r}")
        return self.bare(), True

    def container(self, depth: int) -> tuple[Any, bool]:
        closer = "}" if self.s[self.i] == "{" else "]"
        self.i += 1
        out: Any = {} if closer == "}" else []
        while True:
            self.ws()
            if self.i >= len(self.s):
                return out, False
            if self.s[self.i] == closer:
                self.i += 1
                return out, True
            try:
                key = self.key() if closer == "}" else None
                val, complete = self.value(depth + 1)
            except _Truncated:
                return out, False
            if complete or val:  # an empty truncated container adds nothing
                if key is None:
                    out.append(val)
                else:
                    out[key] = val
            if not complete:
                return out, False

    def key(self) -> str:
        key = self.string() if self.s[self.i] in "\"'" else self.bare(stop=":{}[]\n")
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1
        if self.i >= len(self.s):
            raise _Truncated
        if self.s[self.i] not in ":=":
            raise _Bad("expected ':'")
        self.i += 1
        return str(key)

    def string(self) -> str:
        quote = self.s[self.i]
        self.i += 1
        buf: list[str] = []
        s, n = self.s, len(self.s)
        while self.i < n:
            ch = s[self.i]
            if ch == quote:
                self.i += 1
                return "".join(buf)
            if ch == "\\" and self.i + 1 < n:
                nxt = s[self.i + 1]
                if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[self.i + 2:self.i + 6] or ""):
                    buf.append(chr(int(s[self.i + 2:self.i + 6], 16)))
                    self.i += 6
                    continue
                buf.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
                self.i += 2
                continue
            if ch == "\n" and quote == "'":
                # an apostrophe inside prose, not a string: give up on this start
                raise _Bad("unterminated single-quoted string")
            buf.append(ch)
            self.i += 1
        raise _Truncated

    def bare(self, stop: str = ",{}[]:\n") -> Any:
        start = self.i
        s, n = self.s, len(self.s)
        while self.i < n and s[self.i] not in stop:
            self.i += 1
        if self.i >= n:
            raise _Truncated
        word = s[start:self.i].strip()
        if not word:
            raise _Bad("empty bare word")
        return {"true": True, "false": False, "null": None}.get(word, word)


def _starts(text: str, chars: str) -> list[int]:
    out = [i for i, ch in enumerate(text) if ch in chars]
    return out[:MAX_STARTS]


@dataclass
class JsonFound:
    """A JSON value found in model text."""

    value: Any
    complete: bool
    lenient: bool


def extract_json(text: str) -> JsonFound | None:
    """The first JSON object (or list) in model output, recovered as far as possible."""
    try:
        text = strip_reasoning(text or "")
        candidates = [m.group(2) for m in _FENCE_RE.finditer(text)] + [text]
        for cand in candidates:
            cand = cand.strip()
            if cand[:1] in "{[":
                try:
                    val = json.loads(cand)
                except (ValueError, RecursionError):
                    continue
                if isinstance(val, (dict, list)) and val:
                    return JsonFound(val, True, False)
        for opener in ("{", "["):
            for cand in candidates:
                for start in _starts(cand, opener):
                    parser = _Lenient(cand[start:])
                    try:
                        val, complete = parser.value(0)
                    except (_Bad, _Truncated, RecursionError):
                        continue
                    if isinstance(val, dict) and val or isinstance(val, list) and any(
                            isinstance(v, dict) for v in val):
                        return JsonFound(val, complete, True)
    except Exception:  # a parser of model output must never raise
        return None
    return None


def _unwrap(value: Any, labels: Sequence[str]) -> Any:
    """{"synonyms": {...}} -> {...} when the wrapper key is not itself a label."""
    label_keys = {match_key(lb) for lb in labels}
    for _ in range(3):
        if (isinstance(value, dict) and len(value) == 1):
            (key, inner), = value.items()
            if match_key(str(key)) not in label_keys and (
                    isinstance(inner, dict) or isinstance(inner, list) and any(isinstance(v, dict) for v in inner)
                    or str(key).lower() in _WRAPPER_KEYS):
                value = inner
                continue
        break
    return value


def _flatten_entry(value: Any) -> Any:
    """{"synonyms": [...]} as an entry's value -> the list inside."""
    if not isinstance(value, dict):
        return value
    for key in ("synonyms", "terms", "values", "list"):
        if key in value:
            return value[key]
    return [v for inner in value.values() for v in (inner if isinstance(inner, list) else [inner])
            if isinstance(v, str)]


def _mapping_from_json(value: Any, labels: Sequence[str]) -> dict[str, list[str]]:
    value = _unwrap(value, labels)
    if isinstance(value, dict):
        value = {str(k): _flatten_entry(v) for k, v in value.items()}
    elif not isinstance(value, list):
        return {}
    try:
        # The shared glossary reader already knows both shapes ({label: terms}
        # and [{label, synonyms}]) and how to split "a, b or c" strings.
        return parse_glossary_raw(json.dumps(value, default=str))
    except (ValueError, TypeError, RecursionError):
        return {}


def clean_model_terms(terms: Sequence[object]) -> list[str]:
    """`clean_term` plus what model output needs: letters, no placeholders,
    no control-token text, lowercase (the prompt asks for it; dedupe relies on it)."""
    out = []
    for t in clean_terms(strip_special_tokens(t) if isinstance(t, str) else t for t in terms):
        low = t.lower().strip(" .")
        if low in PLACEHOLDER_TERMS or not any(ch.isalpha() for ch in t):
            continue
        out.append(t.lower())
    return clean_terms(out)


@dataclass
class ParsedSynonyms:
    """Synonyms read from one model answer (uncapped; the caller caps)."""

    terms: dict[str, list[str]] = field(default_factory=dict)
    parsed_json: bool = False
    truncated: bool = False
    unmatched_keys: list[str] = field(default_factory=list)
    cross_label_dropped: list[tuple[str, str]] = field(default_factory=list)


def parse_synonyms(text: str, labels: Sequence[str], all_labels: Sequence[str] | None = None) -> ParsedSynonyms:
    """Model answer -> {label: cleaned terms} for `labels` (request order kept).

    Terms naming another label of the labelmap (`all_labels`) are dropped: a
    synonym that is another class would make SAM3 prompts find the wrong
    objects.
    """
    out = ParsedSynonyms()
    try:
        found = extract_json(text)
        raw: dict[str, list[str]] = {}
        if found is not None:
            raw = _mapping_from_json(found.value, labels)
            out.parsed_json = bool(raw)
            out.truncated = not found.complete
        if not raw:
            raw = parse_glossary_raw(strip_reasoning(text or ""))
        other_keys = {match_key(lb): lb for lb in (all_labels or labels)}
        collected: dict[str, list[object]] = {}
        for key, terms in raw.items():
            label = align_label(_LIST_MARK_RE.sub("", strip_special_tokens(key)).strip(" *_`'\""), labels)
            if label is None:
                if terms and len(out.unmatched_keys) < 20:
                    out.unmatched_keys.append(key[:60])
                continue
            collected.setdefault(label, []).extend(terms)
        for label in labels:
            if label not in collected:
                continue
            kept = []
            for term in clean_model_terms(collected[label]):
                owner = other_keys.get(match_key(term))
                if owner is not None and owner != label:
                    out.cross_label_dropped.append((label, term))
                    continue
                kept.append(term)
            if kept:
                out.terms[label] = kept
    except Exception:  # never raise on model output
        return ParsedSynonyms()
    return out


def cap_terms(terms: Sequence[str], cap: int) -> tuple[list[str], int]:
    """(kept, dropped): at most `cap` terms, first ones win."""
    cap = max(0, cap)
    return list(terms[:cap]), max(0, len(terms) - cap)
