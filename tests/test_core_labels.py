"""Labelmap and glossary parsing, normalisation, matching, hashing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tator_core import labels


def test_labelmap_text_blank_lines_and_order(tmp_path):
    p = tmp_path / "labelmap.txt"
    p.write_text("light_vehicle\n\n person \nbuilding\n")
    assert labels.read_labelmap(p) == ["light_vehicle", "person", "building"]


def test_labelmap_refusals(tmp_path):
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(labels.LabelmapError, match="empty"):
        labels.read_labelmap(tmp_path / "e.txt")
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(labels.LabelmapError, match="pickle"):
        labels.read_labelmap(tmp_path / "m.pkl")
    with pytest.raises(labels.LabelmapError, match="newline"):
        labels.validate_labelmap(["a", "b\nc"])


def test_match_key_and_diff():
    assert labels.match_key("Light_Vehicle-2") == "lightvehicle2"
    assert labels.labelmaps_match(["Light Vehicle", "person"], ["light_vehicle", "PERSON"])
    assert labels.labelmaps_match([], ["x"])  # an empty side matches
    diff = labels.labelmap_diff(["car", "person", "tree"], ["car", "human"])
    assert diff[0] == "length 3 != 2"
    assert "[1] 'person' != 'human'" in diff and "[2] 'tree' != None" in diff


def test_labelmap_hash_is_unambiguous():
    assert labels.labelmap_hash(["a,b", "c"]) != labels.labelmap_hash(["a", "b,c"])
    assert labels.labelmap_hash(["a"]) == labels.labelmap_hash(["a"])


def test_align_label():
    lm = ["light_vehicle", "person", "building"]
    assert labels.align_label("Light Vehicle", lm) == "light_vehicle"
    assert labels.align_label("buildings", lm) is None or labels.align_label("buildings", lm) == "building"
    assert labels.align_label("tree", lm) is None
    assert labels.align_label("!!!", lm) is None


def test_clean_term_rules():
    assert labels.clean_term('  "all kinds of cars" ') == "cars"
    assert labels.clean_term("such as sedan") == "sedan"
    assert labels.clean_term("including other trucks") == "trucks"
    for bad in ("", "---", "car (red)", "a -> b", "key: v", "x" * 41, "{json}", None, 3):
        assert labels.clean_term(bad) is None, bad
    assert labels.clean_terms(["Car", "car", "CAR ", "van"]) == ["Car", "van"]
    assert labels.clean_terms(["a1", "a2", "a3"], cap=2) == ["a1", "a2"]


def test_glossary_formats():
    lm = ["light_vehicle", "person"]
    as_json = json.dumps({"Light Vehicle": ["car", "sedan"], "person": "man, woman and child", "tree": ["oak"]})
    assert labels.parse_glossary(as_json, lm) == {"light_vehicle": ["car", "sedan"], "person": ["man", "woman", "child"]}
    as_list = json.dumps([{"label": "person", "synonyms": ["pedestrian"]}, {"class": "light_vehicle", "terms": "suv/van"}])
    assert labels.parse_glossary(as_list, lm) == {"person": ["pedestrian"], "light_vehicle": ["suv", "van"]}
    lines = "light_vehicle -> car; van\nperson = walker\nperson: runner"
    assert labels.parse_glossary(lines, lm) == {"light_vehicle": ["car", "van"], "person": ["walker", "runner"]}
    assert labels.parse_glossary("person (man, woman)", lm) == {"person": ["man", "woman"]}
    assert labels.parse_glossary("light_vehicle - sedan or coupe", lm) == {"light_vehicle": ["sedan", "coupe"]}


def test_normalize_and_hash():
    assert labels.normalize_glossary({"a": ["x", "y"], "b": "z"}) == "a: x, y\nb: z"
    assert labels.normalize_glossary(["a: x", "b: y"]) == "a: x\nb: y"
    assert labels.normalize_glossary("  {\"a\": []}  ") == '{"a": []}'
    assert labels.glossary_hash("a: x") != labels.glossary_hash("a:  x")  # whitespace counts


def test_default_glossary():
    doc = json.loads(labels.default_glossary(["lightVehicle", "gas_tank", "water-tank"]))
    assert doc == {"lightVehicle": ["light vehicle"], "gas_tank": ["gas tank"],
                   "water-tank": ["water tank", "storage tank"]}


@given(st.text(max_size=300))
def test_parse_glossary_never_raises_and_terms_are_clean(text):
    out = labels.parse_glossary(text)
    for terms in out.values():
        for t in terms:
            assert labels.clean_term(t) == t
        assert len({t.lower() for t in terms}) == len(terms)
