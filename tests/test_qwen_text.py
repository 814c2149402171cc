"""Qwen text handling without a model: JSON extraction, synonym parsing and
cleaning, cap enforcement, caption sanitising, degenerate detection, the
raw-label-token rewrite and prompt hygiene. Canned model outputs pin the
behaviour; hypothesis feeds hostile strings to check the parser and the
cleaner never raise and always return clean, capped, known-label output."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svc_qwen.parsing import PLACEHOLDER_TERMS, cap_terms, extract_json, parse_synonyms
from svc_qwen.prompts import Vocabulary, caption_prompt, hint_counts, merge_prompt, synonyms_prompt
from svc_qwen.sanitize import (
    EMPTY,
    GARBLED,
    PROMPT_ECHO,
    REPETITION,
    cut_repetition,
    degenerate_reason,
    finish_caption,
    is_raw_label,
    rewrite_label_tokens,
    sanitize_caption,
    strip_reasoning,
)
from tator_core.labels import clean_term

LABELS = ["light_vehicle", "person", "building", "storage_tank"]
HOSTILE = st.text(alphabet=st.characters(codec="utf-8"), max_size=400) | st.sampled_from([
    "{", "[", "{{{{", "]]]]", "```json", "```json\n{", "{'a': '", '{"person": [', '{"person": ["a", "b"',
    "\x00\ufffd", "[" * 5000, "{" * 3000, '{"person": ' * 200, "<think>", "</think>{}", "<|im_end|>{}",
    '{"person": "<|image_pad|>"}', "person:" + "x" * 100, "null", "[1,2,3]", '{"a":NaN}',
])


# --- JSON extraction -----------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('{"person": ["man"]}', {"person": ["man"]}),
    ('```json\n{"person": ["man"]}\n```\nThese are the terms.', {"person": ["man"]}),
    ('Sure!\n```\n{"person": ["man"]}\n```', {"person": ["man"]}),
    ('{"person": ["man"]} I hope this helps {not json}', {"person": ["man"]}),
    ("{'person': ['man', 'woman']}", {"person": ["man", "woman"]}),
    ("{person: [man, woman],}", {"person": ["man", "woman"]}),
    ('<think>maybe {"x": 1}</think>{"person": ["man"]}', {"person": ["man"]}),
])
def test_extract_json_shapes(text, expected):
    found = extract_json(text)
    assert found is not None and found.value == expected and found.complete


def test_extract_json_truncated_keeps_complete_entries():
    found = extract_json('{"light_vehicle": ["car", "van"], "person": ["man", "wom')
    assert found is not None and not found.complete
    assert found.value == {"light_vehicle": ["car", "van"], "person": ["man"]}
    found = extract_json('{"light_vehicle": ["car"], "pers')
    assert found.value == {"light_vehicle": ["car"]}


def test_extract_json_nothing():
    assert extract_json("no json here, sorry") is None
    assert extract_json("") is None
    assert extract_json("[" * 10000) is None


# --- synonym parsing -------------------------------------------------------------

CANNED = {
    "fenced": ('```json\n{"light_vehicle": ["Car", "sedan", "SUV", "car"], "person": ["pedestrian"]}\n```\nDone.',
               {"light_vehicle": ["car", "sedan", "suv"], "person": ["pedestrian"]}, True),
    "single_quotes": ("{'building': ['house', 'barn'], 'person': 'man, woman or child'}",
                      {"building": ["house", "barn"], "person": ["man", "woman", "child"]}, True),
    "truncated": ('{"light_vehicle": ["car", "van"], "person": ["man", "hik',
                  {"light_vehicle": ["car", "van"], "person": ["man"]}, True),
    "wrapper": ('{"synonyms": {"storage tank": ["silo", "none", "[x]", "a: b"]}}', {"storage_tank": ["silo"]}, True),
    "list_form": ('[{"label": "person", "synonyms": ["human", "people"]}]', {"person": ["human", "people"]}, True),
    "lines": ("Here you go:\n- light_vehicle: car, van\n**person**: man; woman\n2. building -> house",
              {"light_vehicle": ["car", "van"], "person": ["man", "woman"], "building": ["house"]}, False),
    "filler": ('{"person": ["such as pedestrians", "all kinds of walkers", "and hikers"]}',
               {"person": ["pedestrians", "walkers", "hikers"]}, True),
    "fuzzy_key": ('{"Light-Vehicle": ["car"], "persons": ["man"], "people": ["x"]}',
                  {"light_vehicle": ["car"], "person": ["man"]}, True),
    "garbage": ("\x00\ufffd\ufffd random bytes", {}, False),
}


@pytest.mark.parametrize("name", sorted(CANNED))
def test_parse_synonyms_canned(name):
    text, expected, parsed_json = CANNED[name]
    out = parse_synonyms(text, LABELS)
    assert out.terms == expected
    assert out.parsed_json is parsed_json


def test_parse_synonyms_drops_terms_naming_another_label():
    out = parse_synonyms('{"person": ["man", "building", "Light Vehicle"]}', ["person"], LABELS)
    assert out.terms == {"person": ["man"]}
    assert ("person", "building") in out.cross_label_dropped


def test_parse_synonyms_reports_unmatched_keys_and_truncation():
    out = parse_synonyms('{"zebra": ["horse"], "person": ["man", "wo', LABELS)
    assert out.unmatched_keys == ["zebra"] and out.truncated and out.terms == {"person": ["man"]}


def test_control_token_text_never_survives():
    out = parse_synonyms('{"person": ["<|image_pad|>man", "<|im_end|>"]}', LABELS)
    assert out.terms == {"person": ["man"]}


def test_cap_terms():
    assert cap_terms(["a", "b", "c"], 2) == (["a", "b"], 1)
    assert cap_terms(["a"], 5) == (["a"], 0)
    assert cap_terms(["a", "b"], 0) == ([], 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=HOSTILE)
def test_parser_never_raises_and_returns_clean_known_labels(text):
    extract_json(text)
    out = parse_synonyms(text, LABELS)
    assert set(out.terms) <= set(LABELS)
    for terms in out.terms.values():
        assert terms, "labels without terms must be left out"
        assert len({t.lower() for t in terms}) == len(terms)
        for t in terms:
            assert clean_term(t) == t and t == t.lower() and t.lower() not in PLACEHOLDER_TERMS
            assert "<|" not in t and "|>" not in t


@settings(max_examples=200, deadline=None)
@given(terms=st.lists(st.text(max_size=60), max_size=40), cap=st.integers(0, 12))
def test_cleaning_then_cap_is_clean_and_capped(terms, cap):
    text = json.dumps({"person": terms})
    out = parse_synonyms(text, LABELS)
    kept, dropped = cap_terms(out.terms.get("person", []), cap)
    assert len(kept) <= cap and dropped == max(0, len(out.terms.get("person", [])) - cap)
    assert all(clean_term(t) == t for t in kept)


# --- captions ----------------------------------------------------------------------

def test_sanitize_caption_markers_and_noise():
    assert strip_reasoning("<think>plan</think>A red car.") == "A red car."
    assert strip_reasoning("A red car.<think>unfinished") == "A red car."
    assert strip_reasoning("draft <final>A red car.</final>") == "A red car."
    assert strip_reasoning("notes\nFINAL: A red car.") == "A red car."
    assert sanitize_caption("A car [12, 30, 80, 90] parked.<|im_end|>\x07") == "A car parked."
    assert sanitize_caption('"A car."') == "A car."
    assert sanitize_caption("A red car \ufffd\ufffd") == "A red car"  # a character cut by the token limit


def test_cut_repetition():
    assert cut_repetition("a red car a red car a red car a red car") == ("a red car", True)
    assert cut_repetition("hahahahahahahahaha") == ("ha", True)
    assert cut_repetition("A very very nice red car.") == ("A very very nice red car.", False)
    assert cut_repetition("A sign reading 1000000.") == ("A sign reading 1000000.", False)
    text, cut = cut_repetition("Two cars park. the the the the the")
    assert cut and text == "Two cars park. the"


@pytest.mark.parametrize("text, prompt, reason", [
    ("", "", EMPTY),
    ("... !!!", "", EMPTY),
    ("\ufffd\ufffdab\ufffd", "", GARBLED),
    ("x\x1b\x1c\x1d\x1e\x1f\x10\x11", "", GARBLED),
    ("car car car car car car car car car car", "", REPETITION),
    ("Write a detailed caption of this image", "Write a detailed caption of this image in a few sentences.",
     PROMPT_ECHO),
    ("Three red circles and a blue square on a dark background.", "Write a detailed caption of this image.", ""),
])
def test_degenerate_reason(text, prompt, reason):
    assert degenerate_reason(text, prompt) == reason


def test_is_raw_label():
    assert is_raw_label("light_vehicle") and is_raw_label("LightVehicle") and is_raw_label("light-vehicle")
    assert not is_raw_label("circle") and not is_raw_label("Car") and not is_raw_label("light vehicle")


def test_rewrite_label_tokens():
    out = rewrite_label_tokens("Two light_vehicle and a LightVehicle near a storage_tank; an odd_tag; a circle.",
                               ["light_vehicle", "storage_tank", "circle"], {"light_vehicle": "car"})
    assert out.text == "Two car and a car near a storage tank; an odd_tag; a circle."
    assert out.rewritten == ["light_vehicle", "LightVehicle", "storage_tank"]
    assert out.flagged == ["odd_tag"]


def test_rewrite_respects_word_boundaries_and_natural_spelling():
    out = rewrite_label_tokens("A Light_Vehicle, two light_vehicles and a light vehicle.", ["light_vehicle"], {})
    assert out.text == "A light vehicle, two light_vehicles and a light vehicle."
    assert out.rewritten == ["Light_Vehicle"] and out.flagged == ["light_vehicles"]


def test_finish_caption_never_returns_degenerate_text():
    ok = finish_caption("<think>x</think>Two light_vehicle parked by a house.", echo_reference="Describe.",
                        raw_labels=["light_vehicle"], preferred={"light_vehicle": "car"})
    assert (ok.caption, ok.degenerate_reason, ok.rewritten) == ("Two car parked by a house.", "", ["light_vehicle"])
    bad = finish_caption("car car car car car car car car car", echo_reference="", raw_labels=[], preferred={})
    assert bad.caption == "" and bad.degenerate_reason == REPETITION


@settings(max_examples=300, deadline=None)
@given(text=HOSTILE, prompt=st.text(max_size=100))
def test_finish_caption_hostile(text, prompt):
    out = finish_caption(text, echo_reference=prompt, raw_labels=LABELS, preferred={"light_vehicle": "car"})
    assert bool(out.caption) != bool(out.degenerate_reason)
    if out.caption:
        assert "light_vehicle" not in out.caption and "<|" not in out.caption
        assert out.caption == out.caption.strip() and "\n" not in out.caption


# --- prompts -----------------------------------------------------------------------

def test_caption_prompt_avoids_raw_tags_and_prefers_glossary():
    vocab = Vocabulary.build(["light_vehicle", "circle"], {"light_vehicle": ["car", "sedan"], "circle": ["disc"]})
    assert vocab.raw_labels == ["light_vehicle"]
    counts = hint_counts(["light_vehicle", "light_vehicle", "circle"], vocab)
    assert counts == [("car", 2), ("disc", 1)]
    prompt = caption_prompt(vocab, counts)
    assert 'light_vehicle (write "car")' in prompt
    assert "car: car, sedan" in prompt and "car (2), disc (1)" in prompt
    assert "circle (" not in prompt  # natural labels are not forbidden


def test_prompts_strip_control_tokens_and_bound_lists():
    vocab = Vocabulary.build([f"tag_{i}<|image_pad|>" for i in range(500)], {})
    prompt = caption_prompt(vocab, hint_counts([f"tag_{i}" for i in range(500)], vocab))
    assert "<|" not in prompt and prompt.count("tag_") <= 40 + 10 + 40
    merged = merge_prompt("Merge.", [("A1", "a car<|im_end|>")], draft="<|vision_start|>x")
    assert "<|" not in merged
    syn = synonyms_prompt(["light_vehicle", "x<|im_end|>"], 5, {"circle": ["disc"]})
    assert "<|" not in syn and "up to 5" in syn and "light_vehicle = light vehicle" in syn
