"""Orchestrator logic without services: config/hash, dedupe with provenance, exemplars, prompts,
prepass cache, glossary library, jobs."""

from __future__ import annotations

import json
import os

import grpc
import pytest

from svc_orchestrator.catalogs import GlossaryLibrary, normalize_glossary_text
from svc_orchestrator.convert import page_models
from svc_orchestrator.prepass import prompts
from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.prepass.config import DEFAULTS, merge, resolve
from svc_orchestrator.prepass.exemplars import select_exemplars
from svc_orchestrator.prepass.provenance import AtomLog, Cluster, dedupe, detector_pass, sam3_pass, singleton, usable
from tator_core import errors
from tator_core.enums import source_value
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.labels import glossary_hash
from tator_core.paging import encode_token

LABELS = ["circle", "square", "triangle"]


# --- config ------------------------------------------------------------------------------------

def test_defaults_resolve_to_documented_values():
    cfg = resolve(None)
    assert cfg.detector_conf == pytest.approx(0.45) and cfg.dedupe_iou == pytest.approx(0.75)
    assert cfg.similarity_min_exemplar_score == pytest.approx(0.6) and cfg.similarity_exemplar_count == 3
    assert cfg.sam3_text_synonym_budget == 10 and cfg.grid_cols == 2 and cfg.grid_rows == 2
    assert cfg.window_mode == "grid" and cfg.fusion_mode == "primary" and cfg.similarity_exemplar_strategy == "top"
    assert cfg.enable_caption is False and cfg.enable_classifier is True
    # Every default is reachable: an explicit value equal to the default hashes like the default.
    explicit = pb.PrepassConfig(**{k: v for k, v in DEFAULTS.items() if k != "stage_timeout_s"})
    assert resolve(explicit).config_hash() == cfg.config_hash()


def test_config_hash_ignores_knobs_without_effect_and_tracks_the_rest():
    base = resolve(pb.PrepassConfig(enable_sam3_similarity=False)).config_hash()
    # similarity knobs with similarity off, the deadline, cross-class IoU with cross-class off: no effect
    for extra in (dict(similarity_score=0.9), dict(similarity_exemplar_count=7), dict(stage_timeout_s=5),
                  dict(cross_class_dedupe_iou=0.3), dict(seed=99)):
        assert resolve(pb.PrepassConfig(enable_sam3_similarity=False, **extra)).config_hash() == base, extra
    for extra in (dict(detector_conf=0.3), dict(dedupe_iou=0.5), dict(sam3_text_window_extension=False),
                  dict(cross_class_dedupe=True), dict(enable_classifier=False)):
        assert resolve(pb.PrepassConfig(enable_sam3_similarity=False, **extra)).config_hash() != base, extra
    # grid knobs matter only while something runs windowed
    off = dict(sam3_text_window_extension=False, similarity_window_extension=False)
    assert (resolve(pb.PrepassConfig(grid_cols=3, **off)).config_hash()
            == resolve(pb.PrepassConfig(**off)).config_hash())
    assert resolve(pb.PrepassConfig(grid_cols=3)).config_hash() != resolve(None).config_hash()
    # the seed matters only for random exemplars
    rnd = pb.EXEMPLAR_STRATEGY_RANDOM
    assert (resolve(pb.PrepassConfig(similarity_exemplar_strategy=rnd, seed=1)).config_hash()
            != resolve(pb.PrepassConfig(similarity_exemplar_strategy=rnd, seed=2)).config_hash())


@pytest.mark.parametrize("cfg, field", [
    (pb.PrepassConfig(detector_full=False, detector_sahi=False), "config.detector_full"),
    (pb.PrepassConfig(enable_yolo=False, enable_rfdetr=False, enable_sam3_text=False), "config.enable_sam3_text"),
    (pb.PrepassConfig(detector_conf=float("nan")), "config.detector_conf"),
])
def test_invalid_configs_are_refused_with_the_field(cfg, field):
    with pytest.raises(errors.TatorError) as exc:
        resolve(cfg)
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT and exc.value.metadata["field"] == field


def test_recipe_merge_request_fields_win():
    base = pb.PrepassConfig(detector_conf=0.3, enable_caption=True, yolo_id="a")
    merged = merge(base, pb.PrepassConfig(detector_conf=0.5, rfdetr_id="b"))
    assert merged.detector_conf == pytest.approx(0.5) and merged.enable_caption and merged.yolo_id == "a"
    assert merged.rfdetr_id == "b"


# --- provenance / dedupe -----------------------------------------------------------------------

def _det(box, label, score, source, window="full"):
    d = common_pb2.Detection(label=label, score=score, source=source_value(source), model_id=f"{source}-m")
    d.box.CopyFrom(common_pb2.Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]))
    d.window.name = window
    return d


def test_runs_follow_the_window_of_each_detection():
    assert detector_pass(_det((0, 0, 1, 1), "circle", 1, "yolo")) == pb.ATOM_PASS_FULL
    assert detector_pass(_det((0, 0, 1, 1), "circle", 1, "rfdetr", "tile_3")) == pb.ATOM_PASS_TILED
    assert sam3_pass(_det((0, 0, 1, 1), "circle", 1, "sam3_text", "A1")) == pb.ATOM_PASS_WINDOWED
    assert sam3_pass(_det((0, 0, 1, 1), "circle", 1, "sam3_text")) == pb.ATOM_PASS_FULL


def test_dedupe_is_class_aware_and_keeps_provenance():
    log = AtomLog()
    det, text, full = pb.PREPASS_STAGE_DETECTORS, pb.PREPASS_STAGE_SAM3_TEXT, pb.ATOM_PASS_FULL
    atoms = [log.add(det, full, _det((10, 10, 50, 50), "circle", 0.9, "yolo")),
             log.add(det, full, _det((11, 10, 50, 51), "circle", 0.7, "rfdetr")),
             log.add(text, full, _det((10, 11, 51, 50), "circle", 0.95, "sam3_text")),
             log.add(text, full, _det((10, 10, 50, 50), "square", 0.8, "sam3_text")),
             log.add(det, full, _det((100, 100, 140, 140), "circle", 0.5, "yolo"))]
    assert [a.atom_id for a in atoms] == ["a0000001", "a0000002", "a0000003", "a0000004", "a0000005"]
    clusters = dedupe([singleton(a) for a in atoms], iou=0.75)
    assert len(clusters) == 3
    top = clusters[0]
    assert top.label == "circle" and top.score == pytest.approx(0.95) and top.source_primary == "sam3_text"
    assert top.sources == ["rfdetr", "sam3_text", "yolo"]
    assert top.score_by_source == pytest.approx({"yolo": 0.9, "rfdetr": 0.7, "sam3_text": 0.95})
    assert top.atom_ids == ["a0000001", "a0000002", "a0000003"]
    assert top.box == (10.0, 11.0, 51.0, 50.0)  # primary fusion keeps the best member's box
    # cross-class merging folds the square into the circle cluster
    cross = dedupe([singleton(a) for a in atoms], iou=0.75, cross_class=True, cross_class_iou=0.8)
    assert len(cross) == 2 and "a0000004" in cross[0].atom_ids
    # iou 0 disables merging; wbf averages by score
    assert len(dedupe([singleton(a) for a in atoms], iou=0.0)) == 5
    wbf = dedupe([singleton(a) for a in atoms], iou=0.75, fusion="wbf")[0]
    assert 10.0 < wbf.box[0] < 11.0 and wbf.score == pytest.approx(0.95)


def test_second_dedupe_merges_clusters_without_losing_atoms():
    first = [Cluster((0, 0, 10, 10), "circle", 0.9, "yolo", {"yolo": 0.9, "sam3_text": 0.4}, ["a0000001", "a0000002"])]
    sim = Cluster((0, 0, 10, 10.5), "circle", 0.95, "sam3_similarity", {"sam3_similarity": 0.95}, ["a0000003"])
    merged = dedupe(first + [sim], iou=0.75)
    assert len(merged) == 1
    assert merged[0].atom_ids == ["a0000001", "a0000002", "a0000003"]
    assert merged[0].sources == ["sam3_similarity", "sam3_text", "yolo"]
    assert merged[0].source_primary == "sam3_similarity"


def test_unusable_atoms_are_reported_not_clustered():
    log = AtomLog()
    log.add(pb.PREPASS_STAGE_DETECTORS, pb.ATOM_PASS_FULL, _det((5, 5, 5, 9), "circle", 0.9, "yolo"))
    log.add(pb.PREPASS_STAGE_DETECTORS, pb.ATOM_PASS_FULL, _det((0, 0, 9, 9), "hexagon", 0.9, "yolo"))
    good, notes = usable(log.atoms, LABELS, pb.PREPASS_STAGE_DEDUPE2)
    assert good == [] and [(n.stage, n.warning.code, n.warning.subject) for n in notes] == [
        (pb.PREPASS_STAGE_DEDUPE2, "atom_not_clustered", "a0000001"),
        (pb.PREPASS_STAGE_DEDUPE2, "atom_not_clustered", "a0000002")]
    assert "invalid box" in notes[0].warning.message and "hexagon" in notes[1].warning.message


# --- exemplars / prompts -------------------------------------------------------------------------

def _cl(label, score, x):
    return Cluster((x, 0.0, x + 10.0, 10.0), label, score, "yolo", {"yolo": score}, [f"a{int(x):07d}"])


def test_exemplars_are_top_k_per_label_above_min_score_in_pixels():
    clusters = [_cl("circle", 0.9, 0), _cl("circle", 0.65, 20), _cl("circle", 0.95, 40), _cl("circle", 0.59, 60),
                _cl("square", 0.5, 80), _cl("triangle", 0.61, 100)]
    ex = select_exemplars(clusters, LABELS, min_score=0.6, count=2)
    assert ex == {"circle": [(40.0, 0.0, 50.0, 10.0), (0.0, 0.0, 10.0, 10.0)], "triangle": [(100.0, 0.0, 110.0, 10.0)]}
    assert select_exemplars(clusters, LABELS, min_score=0.0, count=9)["square"] == [(80.0, 0.0, 90.0, 10.0)]
    # order-invariant, and random is seeded
    assert select_exemplars(clusters[::-1], LABELS, min_score=0.6, count=2) == ex
    r1 = select_exemplars(clusters, LABELS, min_score=0.6, count=2, strategy="random", seed=3)
    assert r1 == select_exemplars(clusters, LABELS, min_score=0.6, count=2, strategy="random", seed=3)


def test_prompts_order_dedupe_and_enforced_budget():
    terms = prompts.glossary_terms('{"light_vehicle": ["car", "Car", "van"], "person": []}', ["light_vehicle", "person"])
    assert prompts.labels_needing_expansion(["light_vehicle", "person"], terms) == ["person"]
    out = prompts.build_prompts(["light_vehicle", "person"], terms, {"person": ["human", "pedestrian", "walker"]}, budget=2)
    base, gloss, qwen = pb.PROMPT_ORIGIN_KIND_BASE, pb.PROMPT_ORIGIN_KIND_GLOSSARY, pb.PROMPT_ORIGIN_KIND_QWEN
    assert out["light_vehicle"] == [("light vehicle", base), ("light_vehicle", base), ("car", gloss), ("van", gloss)]
    assert out["person"] == [("person", base), ("human", qwen), ("pedestrian", qwen)]
    big = prompts.build_prompts(["x"], {"x": [f"t{i}" for i in range(100)]}, {}, budget=0)
    assert len(big["x"]) == prompts.MAX_PROMPTS_PER_LABEL


# --- prepass cache ---------------------------------------------------------------------------------

def _meta(**over) -> CacheMeta:
    doc = dict(glossary_text="circle: disc", glossary_hash=glossary_hash("circle: disc"), labelmap=tuple(LABELS),
               labelmap_hash="lm", config={"a": 1}, config_hash="cfg", versions={"yolo-synth": "v1"})
    doc.update(over)
    return CacheMeta(**doc)


def test_cache_key_covers_every_input(tmp_path):
    base = _meta()
    key = base.key("sha")
    assert key != base.key("other")
    for over in (dict(glossary_hash="g2"), dict(labelmap_hash="l2"), dict(config_hash="c2"),
                 dict(versions={"yolo-synth": "v2"}), dict(versions={"yolo-synth": "v1", "sam3-tiny": "s"}),
                 dict(pipeline_version="999"), dict(result_schema="another schema")):
        assert _meta(**over).key("sha") != key, over
        assert _meta(**over).meta_key != base.meta_key, over


def _schema_pool(source_type: int):
    """A pool with one file: Result { repeated Det dets = 1 }, Det { <source_type> source = 11 }."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    f = descriptor_pb2.FileDescriptorProto(name="schema_t.proto", package="schema_t", syntax="proto3")
    f.enum_type.add(name="Src").value.add(name="SRC_UNSPECIFIED", number=0)
    det = f.message_type.add(name="Det")
    det.field.add(name="source", number=11, type=source_type, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                  type_name=".schema_t.Src" if source_type == descriptor_pb2.FieldDescriptorProto.TYPE_ENUM else None)
    f.message_type.add(name="Result").field.add(name="dets", number=1, type_name=".schema_t.Det",
                                                 type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                                                 label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return pool


def test_result_schema_fingerprint_follows_every_reachable_message():
    """A string field of a nested message turned into an enum (old bytes would parse, losing it)
    changes the root's fingerprint; the same schema built again gives the same one."""
    from google.protobuf import descriptor_pb2

    from svc_orchestrator.prepass.cache import RESULT_SCHEMA
    from tator_core.version import schema_fingerprint

    as_string = _schema_pool(descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    as_enum = _schema_pool(descriptor_pb2.FieldDescriptorProto.TYPE_ENUM)
    root = schema_fingerprint(as_string.FindMessageTypeByName("schema_t.Result"))
    assert root == schema_fingerprint(_schema_pool(descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
                                      .FindMessageTypeByName("schema_t.Result"))
    assert root != schema_fingerprint(as_enum.FindMessageTypeByName("schema_t.Result"))
    assert RESULT_SCHEMA == schema_fingerprint(pb.PrepassResult.DESCRIPTOR) != schema_fingerprint(
        pb.PrepassConfig.DESCRIPTOR)


# --- glossary library ------------------------------------------------------------------------------

def test_glossary_library_names_atomicity_and_symlinks(tmp_path):
    lib = GlossaryLibrary(tmp_path / "state" / "glossaries")
    g = lib.put("  my   shapes ", '{"circle": ["disc", "ring"], "square": "box, block"}')
    assert g.name == "my shapes" and g.text == "circle: disc, ring\nsquare: box, block"
    assert g.hash == glossary_hash(g.text) and g.terms["circle"] == ["disc", "ring"]
    assert lib.get("my shapes ") == g and [x.name for x in lib.list()] == ["my shapes"]
    lib.put("my-shapes", "circle: orb")  # a different name, a different file
    assert lib.get("my shapes").text != lib.get("my-shapes").text
    for bad in ("", "   ", "..", ".", "a/b", "a\\b"):
        with pytest.raises(errors.TatorError) as exc:
            lib.put(bad, "circle: disc")
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(errors.TatorError) as exc:
        lib.put("empty", "nothing here")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # a symlink at the target is replaced, not followed
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    target = lib._path("linked")
    os.symlink(victim, target)
    lib.put("linked", "circle: disc")
    assert victim.read_text() == "keep" and not target.is_symlink()
    # a symlinked file is skipped by list and get
    os.symlink(target, lib.root / "zz.json")
    assert sorted(x.name for x in lib.list()) == ["linked", "my shapes", "my-shapes"]
    lib.delete("linked")
    with pytest.raises(errors.TatorError) as exc:
        lib.get("linked")
    assert exc.value.code == grpc.StatusCode.NOT_FOUND
    # no temp files left behind
    assert not [p for p in lib.root.iterdir() if p.name.endswith(".tmp")]
    # a symlinked library root is refused
    os.symlink(lib.root, tmp_path / "state" / "alias")
    with pytest.raises(errors.TatorError) as exc:
        GlossaryLibrary(tmp_path / "state" / "alias").list()
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_glossary_text_normalisation_matches_dataset_files():
    assert normalize_glossary_text(json.dumps({"a": ["x", "y"]})) == "a: x, y"
    assert normalize_glossary_text("  a: x \n") == "a: x"


def test_read_cache_meta_reads_a_state_dir_without_knowing_its_files(tmp_path):
    """svc_orchestrator.read_cache_meta is what code outside the service (the regression steps) uses."""
    from svc_orchestrator import read_cache_meta
    from svc_orchestrator.prepass.cache import CACHE_FILE

    cache = PrepassCache(tmp_path / CACHE_FILE)
    meta = _meta()
    cache.put(meta.key("sha"), meta, pb.PrepassResult(image_sha256="sha"), "ds")
    cache.close()
    got = read_cache_meta(tmp_path, meta.key("sha"))
    assert got["glossary_text"] == "circle: disc" and got["glossary_hash"] == meta.glossary_hash
    assert read_cache_meta(tmp_path, "no such key") is None
    with pytest.raises(FileNotFoundError):
        read_cache_meta(tmp_path / "elsewhere", meta.key("sha"))


def test_candidate_sources_are_enums_in_enum_order_with_their_best_scores():
    from svc_orchestrator.prepass.provenance import to_candidate

    c = Cluster((0, 0, 10, 10), "circle", 0.95, "sam3_similarity",
                {"yolo": 0.9, "sam3_similarity": 0.95, "rfdetr": 0.3}, ["a0000001"])
    cand = to_candidate(0, c)
    assert cand.source_primary == common_pb2.DETECTION_SOURCE_SAM3_SIMILARITY
    assert list(cand.sources) == [common_pb2.DETECTION_SOURCE_YOLO, common_pb2.DETECTION_SOURCE_RFDETR,
                                  common_pb2.DETECTION_SOURCE_SAM3_SIMILARITY]
    assert [(s.source, round(s.score, 6)) for s in cand.source_scores] == [
        (common_pb2.DETECTION_SOURCE_YOLO, 0.9), (common_pb2.DETECTION_SOURCE_RFDETR, 0.3),
        (common_pb2.DETECTION_SOURCE_SAM3_SIMILARITY, 0.95)]


def test_a_stage_without_a_model_is_a_typed_warning_naming_stage_and_field():
    from svc_orchestrator.clients import ServiceState
    from svc_orchestrator.prepass.plan import resolve_plan

    cfg = resolve(pb.PrepassConfig(enable_yolo=False, enable_rfdetr=False, enable_sam3_similarity=False,
                                   enable_classifier=False, sam3_text_synonym_budget=0))
    plan = resolve_plan(cfg, {"sam3": ServiceState("sam3", "127.0.0.1:1", "SERVING", [])}, wants_expansion=False)
    assert not plan.sam3_id
    [w] = plan.warnings
    assert (w.stage, w.warning.code, w.warning.subject) == (pb.PREPASS_STAGE_SAM3_TEXT, "no_model", "sam3")
    assert "no sam3 model" in w.warning.message


def test_list_models_pages_count_models_in_service_order_and_keep_each_services_health() -> None:
    def svc(name: str, health: int, *ids: str) -> pb.ServiceModels:
        return pb.ServiceModels(service=name, address=f"{name}:1", health=health,
                                models=[common_pb2.ModelInfo(id=i) for i in ids])

    every = pb.ListModelsResponse(services=[
        svc("detector", pb.SERVICE_HEALTH_SERVING, "yolo-b", "yolo-a", "rfdetr"),
        svc("sam3", pb.SERVICE_HEALTH_UNREACHABLE),
        svc("qwen", pb.SERVICE_HEALTH_SERVING, "qwen-tiny")])
    pages, token = [], ""
    while True:
        page = page_models(every, 2, token)
        pages.append([(s.service, s.health, [m.id for m in s.models]) for s in page.services])
        token = page.next_page_token
        if not token:
            break
    S, U = pb.SERVICE_HEALTH_SERVING, pb.SERVICE_HEALTH_UNREACHABLE
    # by id within a service; a service split over two pages shows on both with its health; one without
    # models takes one place, so an unreachable service is still listed
    assert pages == [[("detector", S, ["rfdetr", "yolo-a"])],
                     [("detector", S, ["yolo-b"]), ("sam3", U, [])],
                     [("qwen", S, ["qwen-tiny"])]]
    assert [(s.service, len(s.models)) for s in page_models(every, 0, "").services] == \
        [("detector", 3), ("sam3", 0), ("qwen", 1)]  # 0: the default page of 50
    with pytest.raises(errors.TatorError) as err:
        page_models(every, 2, encode_token({"list": "glossaries"}, "x"))
    assert err.value.metadata["field"] == "page_token"
