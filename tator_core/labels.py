"""Labelmaps and glossaries.

Choices made on purpose:
- pickle labelmaps are refused (loading a pickle executes code);
- hashes are SHA-256 of a canonical form, and the labelmap hash joins names
  with newlines (names may contain commas, so `,`-joined keys would be
  ambiguous);
- the filler-prefix and `label (a, b)` patterns are raw strings with single
  backslashes (a doubled backslash in a raw string matches nothing).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tator_core.text import bad_char

_KEY_RE = re.compile(r"[^a-z0-9]")
_FILLER_RE = re.compile(r"^(?:all\s+kinds\s+of|including|such\s+as|other|and|or)\s+", re.I)
_SPLIT_RE = re.compile(r"\s*(?:[,;/]|\band\b|\bor\b)\s*", re.I)
_LINE_SPLIT_RE = re.compile(r"\s*(?:->|:|=|\s-\s)\s*")
_PAREN_RE = re.compile(r"^\s*([^()]+?)\s*\(([^()]*)\)\s*$")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
MAX_TERM_LEN = 40


class LabelmapError(ValueError):
    """A labelmap that cannot be used."""


def match_key(name: str) -> str:
    """Lowercase and keep only [a-z0-9]: 'Light_Vehicle' -> 'lightvehicle'."""
    return _KEY_RE.sub("", name.lower())


def validate_labelmap(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise LabelmapError(f"class {i} is not a string")
        if "\n" in name or "\r" in name:
            raise LabelmapError(f"class {i} contains a newline")
        if bad_char(name) is not None:
            raise LabelmapError(f"class {i} contains the control or bidi character {bad_char(name)}")
        name = name.strip()
        if not name:
            raise LabelmapError(f"class {i} is empty")
        out.append(name)
    if not out:
        raise LabelmapError("labelmap is empty")
    return out


def parse_labelmap_text(text: str) -> list[str]:
    """One class per line; blank lines dropped; line order is the class id."""
    return validate_labelmap([ln.strip() for ln in text.splitlines() if ln.strip()])


def read_labelmap(path: str | Path) -> list[str]:
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise LabelmapError(f"{path}: pickle labelmaps are refused; use a text file")
    return parse_labelmap_text(path.read_text(encoding="utf-8"))


def labelmap_diff(actual: Sequence[str], expected: Sequence[str]) -> list[str]:
    """Human-readable differences by normalised key; empty means they match.

    An empty side counts as a match (nothing to compare against).
    """
    if not actual or not expected:
        return []
    diffs = []
    if len(actual) != len(expected):
        diffs.append(f"length {len(actual)} != {len(expected)}")
    for i in range(max(len(actual), len(expected))):
        a = actual[i] if i < len(actual) else None
        e = expected[i] if i < len(expected) else None
        if a is None or e is None or match_key(a) != match_key(e):
            diffs.append(f"[{i}] {a!r} != {e!r}")
    return diffs


def labelmaps_match(actual: Sequence[str], expected: Sequence[str]) -> bool:
    return not labelmap_diff(actual, expected)


def labelmap_hash(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def align_label(text: str, labelmap: Sequence[str]) -> str | None:
    """Map free text to a labelmap entry: exact key, else a confident fuzzy match."""
    key = match_key(text)
    if not key:
        return None
    keys = [match_key(n) for n in labelmap]
    if key in keys:
        return labelmap[keys.index(key)]
    scored = sorted(((difflib.SequenceMatcher(None, key, k).ratio(), i) for i, k in enumerate(keys)), reverse=True)
    if not scored:
        return None
    best, idx = scored[0]
    runner = scored[1][0] if len(scored) > 1 else 0.0
    cand = keys[idx]
    if best >= 0.92 and abs(len(cand) - len(key)) <= 2 and cand[:1] == key[:1] and best - runner > 0.02:
        return labelmap[idx]
    return None


def natural_label(label: str) -> str:
    """'lightVehicle' / 'light_vehicle' / 'light-vehicle' -> 'light vehicle'."""
    text = _CAMEL_RE.sub(" ", label).replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


# --- glossary ----------------------------------------------------------------

def clean_term(term: object) -> str | None:
    """Clean one synonym; None when it must be dropped."""
    if not isinstance(term, str):
        return None
    t = term.strip().strip("\"'`“”‘’").strip()
    prev = None
    while prev != t:
        prev = t
        t = _FILLER_RE.sub("", t).strip()
    t = re.sub(r"\s+", " ", t)
    if not t or not any(ch.isalnum() for ch in t) or bad_char(t) is not None:
        return None
    if any(ch in t for ch in "[]{}()<>") or "->" in t or ":" in t or len(t) > MAX_TERM_LEN:
        return None
    return t


def clean_terms(terms: Iterable[object], cap: int | None = None) -> list[str]:
    """Clean, dedupe case-insensitively (first spelling wins), cap."""
    out: list[str] = []
    seen: set[str] = set()
    for term in terms:
        t = clean_term(term)
        if t is None or t.lower() in seen:
            continue
        seen.add(t.lower())
        out.append(t)
        if cap is not None and len(out) >= cap:
            break
    return out


def normalize_glossary(value: object) -> str:
    """String kept verbatim (stripped); list joined by newlines; dict as `k: v1, v2` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping):
        lines = []
        for k, v in value.items():
            vals = v if isinstance(v, (list, tuple)) else [v]
            lines.append(f"{k}: {', '.join(str(x) for x in vals)}")
        return "\n".join(lines)
    if isinstance(value, (list, tuple)):
        return "\n".join(str(x) for x in value).strip()
    raise TypeError(f"glossary must be str, list or dict, not {type(value).__name__}")


def glossary_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _split_terms(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if isinstance(v, (str, int, float))]
    if isinstance(value, str):
        return [p for p in _SPLIT_RE.split(value) if p]
    return []


def parse_glossary_raw(text: str) -> dict[str, list[str]]:
    """Glossary text -> {key as written: raw terms}. JSON first, else lines."""
    text = (text or "").strip()
    out: dict[str, list[str]] = {}
    if text[:1] in "{[":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):  # hostile nesting is just not JSON
            data = None
        if isinstance(data, dict):
            for k, v in data.items():
                out.setdefault(str(k), []).extend(_split_terms(v))
            return out
        if isinstance(data, list):
            for item in data:
                if not isinstance(item, dict):
                    continue
                key = next((item[k] for k in ("label", "class", "name") if k in item), None)
                vals: Any = next((item[k] for k in ("synonyms", "terms", "values", "list") if k in item), [])
                if isinstance(key, str):
                    out.setdefault(key, []).extend(_split_terms(vals))
            return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        paren = _PAREN_RE.match(line)
        if paren:
            out.setdefault(paren.group(1), []).extend(_split_terms(paren.group(2)))
            continue
        parts = _LINE_SPLIT_RE.split(line, maxsplit=1)
        if len(parts) == 2:
            out.setdefault(parts[0].strip(), []).extend(_split_terms(parts[1]))
    return out


def parse_glossary(text: str, labelmap: Sequence[str] | None = None,
                   cap: int | None = None) -> dict[str, list[str]]:
    """Glossary text -> {label: cleaned terms}; keys matched to the labelmap by key.

    Keys that match no labelmap entry are dropped when a labelmap is given.
    """
    raw = parse_glossary_raw(text)
    by_key = {match_key(n): n for n in labelmap} if labelmap else None
    merged: dict[str, list[str]] = {}
    for key, terms in raw.items():
        if bad_char(key) is not None:  # a key nobody can type or read safely names no class
            continue
        label = key if by_key is None else by_key.get(match_key(key))
        if label is None:
            continue
        merged.setdefault(label, []).extend(terms)
    return {label: clean_terms(terms, cap) for label, terms in merged.items()}


def default_glossary(labelmap: Sequence[str]) -> str:
    """JSON {label: [natural label, ...]} for datasets without a glossary."""
    doc: dict[str, list[str]] = {}
    for label in labelmap:
        terms = [natural_label(label)]
        low = label.lower()
        if "tank" in low:
            terms.append("gas tank" if "gas" in low else "storage tank")
        doc[label] = clean_terms(terms)
    return json.dumps(doc, sort_keys=True)
