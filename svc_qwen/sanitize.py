"""Caption post-processing: sanitising, degenerate-output detection and the
raw-label-token rewrite. Pure functions on strings; no model.

A generated caption goes through `finish_caption`: sanitise (reasoning blocks,
`<final>` / `FINAL:` markers, special-token text, coordinate lists, control
characters), cut a repetition loop (and whatever follows it), decide whether what is left is
degenerate, and only then rewrite raw labelmap tokens. A degenerate output is
reported by its reason and never returned as a caption, loops included.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tator_core.labels import match_key, natural_label

# Reasons, in the order they are checked. They name what was wrong, so the
# client can tell "the model said nothing" from "the model looped".
EMPTY, GARBLED, REPETITION, PROMPT_ECHO = "empty", "garbled", "repetition", "prompt_echo"
NO_USABLE_WINDOWS = "no_usable_windows"

_SPECIAL_RE = re.compile(r"<\|[^<>|]{0,40}\|>|<\||\|>")
_THINK_CLOSE_RE = re.compile(r"</think>", re.I)
_THINK_OPEN_RE = re.compile(r"<think>", re.I)
_FINAL_TAG_RE = re.compile(r"<final>(.*?)(?:</final>|$)", re.I | re.S)
_FINAL_MARK_RE = re.compile(r"(?:^|\n)\s*\**final(?: answer| caption)?\**\s*:\s*", re.I)
_COORDS_RE = re.compile(r"[\[(]\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3}\s*[\])]")
_BBOX_KEY_RE = re.compile(r"\bbbox(?:_2d)?\s*[:=]?\s*", re.I)
_CHAR_LOOP_RE = re.compile(r"(.{1,16}?)\1{5,}", re.S)
_WORD_RE = re.compile(r"\w+(?:-\w+)*")
_WS_RE = re.compile(r"\s+")
_ALLOWED_PUNCT = set(".,;:!?'\"()[]-–—/&%+#°$€£@*•…’‘“”«»=_")
MAX_LOOP_NGRAM = 12


def strip_special_tokens(text: str) -> str:
    """Remove chat-template control-token text (`<|im_end|>`, `<|image_pad|>`, ...).

    Needed on every user or model string that goes back into a prompt: the
    tokenizer turns that text into real control tokens, which would end a
    turn early or add image placeholders with no features behind them.
    """
    return _SPECIAL_RE.sub(" ", text)


def strip_reasoning(text: str) -> str:
    """Keep the answer: drop `<think>` blocks, prefer `<final>` / `FINAL:` content."""
    closes = list(_THINK_CLOSE_RE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    else:
        opened = _THINK_OPEN_RE.search(text)
        if opened:  # unclosed reasoning: everything after it is thinking
            text = text[:opened.start()]
    finals = [m.group(1) for m in _FINAL_TAG_RE.finditer(text) if m.group(1).strip()]
    if finals:
        return finals[-1]
    marks = list(_FINAL_MARK_RE.finditer(text))
    if marks and text[marks[-1].end():].strip():
        return text[marks[-1].end():]
    return text


def sanitize_caption(text: str) -> str:
    """Model text -> one clean paragraph (no reasoning, markers, coordinates, control chars)."""
    text = strip_special_tokens(strip_reasoning(text or ""))
    text = _COORDS_RE.sub(" ", text)
    text = _BBOX_KEY_RE.sub(" ", text)
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    # A trailing U+FFFD is a multi-byte character cut by max_new_tokens, not garbage.
    text = _WS_RE.sub(" ", text).strip().rstrip("\ufffd")
    return text.strip("\"'`“”‘’ ").strip()


def cut_repetition(text: str) -> tuple[str, bool]:
    """Cut a repetition loop, keeping its first occurrence; returns (text, was_cut).

    Catches character loops without spaces ("ababab...", "!!!!!!") and word
    n-gram loops (n up to 12) repeated three or more times in a row (four for a
    single word, since "very very very" happens in real prose).
    """
    cut = False
    new = _CHAR_LOOP_RE.sub(lambda m: m.group(0) if m.group(1).isdigit() else m.group(1), text)  # 1000000 stays
    if new != text:
        text, cut = new, True
    words = text.split(" ")
    n_words = len(words)
    for start in range(n_words):
        for n in range(1, min(MAX_LOOP_NGRAM, (n_words - start) // 3) + 1):
            need = 4 if n == 1 else 3
            if start + n * need > n_words:
                continue
            gram = [w.lower() for w in words[start:start + n]]
            reps = 1
            while (start + n * (reps + 1) <= n_words
                   and [w.lower() for w in words[start + n * reps:start + n * (reps + 1)]] == gram):
                reps += 1
            if reps >= need:
                return " ".join(words[:start + n]).strip(), True
    return text, cut


def _letters_share(text: str) -> float:
    chars = [ch for ch in text if not ch.isspace()]
    if not chars:
        return 0.0
    good = sum(1 for ch in chars if ch.isalnum() or ch in _ALLOWED_PUNCT)
    return good / len(chars)


def _norm_words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def is_prompt_echo(text: str, prompt: str) -> bool:
    """The output repeats the instruction instead of answering it."""
    words, pwords = _norm_words(text), _norm_words(prompt)
    if not words or not pwords:
        return False
    joined, pjoined = " ".join(words), " ".join(pwords)
    if len(joined) >= 12 and f" {joined} " in f" {pjoined} ":
        return True
    n = 4
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 3:
        return False
    pgrams = {tuple(pwords[i:i + n]) for i in range(len(pwords) - n + 1)}
    return sum(g in pgrams for g in grams) / len(grams) >= 0.6


def degenerate_reason(text: str, prompt: str = "", *, was_cut: bool = False) -> str:
    """Why a sanitised caption must not be returned; "" when it is usable."""
    if not any(ch.isalnum() for ch in text):
        return EMPTY
    if _letters_share(text) < 0.85 or sum(ch.isalpha() for ch in text) < 2:
        return GARBLED
    words = text.split()
    if was_cut and len(words) < 3:
        return REPETITION
    if len(words) >= 8 and len({w.lower() for w in words}) / len(words) < 0.3:
        return REPETITION
    if prompt and is_prompt_echo(text, prompt):
        return PROMPT_ECHO
    return ""


# --- raw label tokens ---------------------------------------------------------

def is_raw_label(label: str) -> bool:
    """A labelmap tag that is not plain words: light_vehicle, LightVehicle, light-vehicle."""
    return label.strip().lower() != natural_label(label)


@dataclass
class LabelRewrite:
    """Outcome of the raw-token pass over one caption."""

    text: str
    rewritten: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)


def rewrite_label_tokens(text: str, raw_labels: Sequence[str], preferred: Mapping[str, str]) -> LabelRewrite:
    """Rewrite raw labelmap tokens into natural words; flag tag-like tokens we cannot map.

    A word (underscores and hyphens included) whose match key equals a raw
    label's key and which is not already that label's natural spelling is
    replaced by the label's preferred term (glossary first, else the natural
    label). Any other underscore token looks like a tag from some labelmap we
    were not told about: it is left in place and flagged.
    """
    by_key: dict[str, str] = {}
    for label in raw_labels:
        key = match_key(label)
        if key and is_raw_label(label):
            by_key.setdefault(key, label)
    out = LabelRewrite(text)

    def repl(m: re.Match[str]) -> str:
        token = m.group(0)
        label = by_key.get(match_key(token))
        if label is not None:
            natural = natural_label(label)  # never empty: the label has a non-empty match key
            if token.lower() == natural:
                return token
            if token not in out.rewritten:
                out.rewritten.append(token)
            return preferred.get(label) or natural
        if "_" in token and token not in out.flagged:
            out.flagged.append(token)
        return token

    out.text = _WORD_RE.sub(repl, text)
    return out


@dataclass
class PassOutcome:
    """One generation pass after post-processing."""

    caption: str
    degenerate_reason: str
    rewritten: list[str]
    flagged: list[str]
    notes: list[str]


def finish_caption(raw: str, *, echo_reference: str, raw_labels: Sequence[str],
                   preferred: Mapping[str, str]) -> PassOutcome:
    """raw model text -> caption or degenerate reason (never both)."""
    text = sanitize_caption(raw)
    text, was_cut = cut_repetition(text)
    notes = ["repetition_cut"] if was_cut else []
    reason = degenerate_reason(text, echo_reference, was_cut=was_cut)
    if reason:
        return PassOutcome("", reason, [], [], notes)
    rw = rewrite_label_tokens(text, raw_labels, preferred)
    final = _WS_RE.sub(" ", rw.text).strip()
    if not final:
        return PassOutcome("", EMPTY, [], [], notes)
    return PassOutcome(final, "", rw.rewritten, rw.flagged, notes)
