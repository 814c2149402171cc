"""The one table of load-tested calls: deploy/ghz/<name>.json is generated from it
(`python benchmarks/load.py --write-ghz`; tests fail when a committed file differs), and
benchmarks/load.py drives the same files, so the two cannot drift.

Every inference RPC, and the read RPCs the web UI issues on each page. `gpu_p95_ms` is the
p95 latency each call must hold on one GPU per model service (H200-class, the real models,
the concurrency below, image already cached by sha); the device check
(scripts/device_check.sh) measures the model calls that decide it.
"""

from __future__ import annotations

SHA = "REPLACE_WITH_IMAGE_SHA256"
IMAGE = {"sha256": SHA}
PORTS = {"orchestrator": 50050, "detector": 50051, "sam3": 50052, "qwen": 50053, "classifier": 50054}
BOXES = [{"x1": 4, "y1": 4, "x2": 36, "y2": 36}, {"x1": 24, "y1": 24, "x2": 60, "y2": 60},
         {"x1": 0, "y1": 32, "x2": 32, "y2": 64}]
GLOSSARY = "circle: disc, round shape\nsquare: box, block\ntriangle: wedge"

#: name -> call, request data, load shape, the p95 it must hold on a GPU, notes of its own.
CALLS: dict[str, dict] = {
    # --- inference ---------------------------------------------------------------------------
    "detect": dict(
        call="tator.detector.v1.DetectorService.Detect", total=500, concurrency=8, timeout="60s", gpu_p95_ms=60,
        data={"image": IMAGE, "mode": "DETECT_MODE_FULL", "conf": 0.25, "max_det": 300},
        notes=["model_ids empty = the default detector of each loaded family. Try \"mode\": \"DETECT_MODE_BOTH\" "
               "with \"tile_plan\": {\"size\": 640} for SAHI cost."]),
    "segment_text": dict(
        call="tator.sam3.v1.Sam3Service.SegmentText", total=200, concurrency=4, timeout="120s", gpu_p95_ms=400,
        data={"image": IMAGE, "labels": [{"label": "circle", "prompts": ["circle", "round shape"]},
                                         {"label": "square", "prompts": ["square"]},
                                         {"label": "triangle", "prompts": ["triangle"]}],
              "windows": {"include_full": True, "grid": {"cols": 2, "rows": 2}}, "score_threshold": 0.2},
        notes=["Labels are the synthetic world's labelmap; use your dataset's. After the first call the vision and "
               "text embeddings are cached per pod (SegmentStats counters), so steady state measures prompt decodes."]),
    "segment_exemplars": dict(
        call="tator.sam3.v1.Sam3Service.SegmentExemplars", total=200, concurrency=4, timeout="120s",
        gpu_p95_ms=300,
        data={"image": IMAGE, "exemplars": [{"label": "circle", "positives": BOXES[:2], "negatives": BOXES[2:]}],
              "score_threshold": 0.2},
        notes=["Exemplar boxes in the image's pixels; the vision embedding is cached after the first call."]),
    "caption": dict(
        call="tator.qwen.v1.QwenService.Caption", total=40, concurrency=2, timeout="300s", gpu_p95_ms=4000,
        data={"image": IMAGE, "mode": "CAPTION_MODE_FULL", "generation": {"max_new_tokens": 128},
              "avoid_labels": ["circle"]},
        notes=["Generation dominates: p95 scales with max_new_tokens (128 here). Windowed mode: \"mode\": "
               "\"CAPTION_MODE_WINDOWED\" with \"windows\": {\"grid\": {\"cols\": 2, \"rows\": 2}}."]),
    "expand_synonyms": dict(
        call="tator.qwen.v1.QwenService.ExpandSynonyms", total=40, concurrency=2, timeout="300s", gpu_p95_ms=3000,
        data={"labels": ["circle", "square", "light_vehicle"], "glossary": GLOSSARY},
        notes=["No image. Results are cached per pod (synonyms_cache_items): vary the labels to measure generation."]),
    "classify": dict(
        call="tator.classifier.v1.ClassifierService.Classify", total=500, concurrency=8, timeout="60s",
        gpu_p95_ms=60, data={"image": IMAGE, "boxes": BOXES},
        notes=["head_id empty = the default head; boxes in the image's pixels."]),
    "embed": dict(
        call="tator.classifier.v1.ClassifierService.Embed", total=500, concurrency=8, timeout="60s", gpu_p95_ms=50,
        data={"image": IMAGE, "boxes": BOXES, "include_full_image": True, "normalize": True},
        notes=["backbone_id empty = the default backbone."]),
    "prepass": dict(
        call="tator.orchestrator.v1.OrchestratorService.Prepass", total=50, concurrency=2, timeout="600s",
        gpu_p95_ms=5000,
        data={"image": {"sha256": SHA, "data": "REPLACE_WITH_IMAGE_BASE64"}, "dataset_id": "synth", "refresh": True,
              "config": {"enable_caption": False, "stage_timeout_s": 300}},
        notes=["The whole prepass of one image (every detector, SAM3 text + similarity, classifier); refresh skips "
               "the prepass cache. The bytes travel in every call: the orchestrator keeps no image store."]),
    "replay": dict(
        call="tator.orchestrator.v1.OrchestratorService.Replay", total=20, concurrency=1, timeout="600s",
        gpu_p95_ms=5000, data={"run_id": "0" * 64},
        notes=["Replace run_id with the run_id of a Prepass result on a dataset image (`tator prepass IMG --dataset "
               "ID --json`, or a prepass job's images): as written every call answers NOT_FOUND. Each call re-runs "
               "the whole prepass without the cache, so it costs what a Prepass with refresh costs; concurrency 1 "
               "because a replay is a check, not serving traffic."]),
    # --- the web UI's reads (orchestrator only, no model) ------------------------------------------
    "list_datasets": dict(call="tator.orchestrator.v1.OrchestratorService.ListDatasets", data={}),
    "get_dataset": dict(call="tator.orchestrator.v1.OrchestratorService.GetDataset", data={"dataset_id": "synth"}),
    "list_dataset_images": dict(call="tator.orchestrator.v1.OrchestratorService.ListDatasetImages",
                                data={"dataset_id": "synth", "page_size": 50}),
    "get_image": dict(call="tator.orchestrator.v1.OrchestratorService.GetImage",
                      data={"dataset_id": "synth", "name": "train/images/synth_000000.png", "max_side": 256},
                      gpu_p95_ms=60, notes=["A 256 px thumbnail: decode and resize on the orchestrator's CPU."]),
    "list_models": dict(call="tator.orchestrator.v1.OrchestratorService.ListModels", data={},
                        notes=["Fans out to the four model services (answers reused for models_ttl_s)."]),
    "list_jobs": dict(call="tator.orchestrator.v1.OrchestratorService.ListJobs", data={"page_size": 50}),
    "list_glossaries": dict(call="tator.orchestrator.v1.OrchestratorService.ListGlossaries", data={}),
    "list_recipes": dict(call="tator.orchestrator.v1.OrchestratorService.ListRecipes", data={}),
}
#: Defaults of the UI reads: many small calls at the concurrency of a few open browser tabs.
READ_DEFAULTS = dict(total=2000, concurrency=16, timeout="10s", gpu_p95_ms=25)

COMMON_NOTES = [
    "Generated from benchmarks/load_table.py by `python benchmarks/load.py --write-ghz`; edit the table, not this "
    "file. Run from the repository root: ghz --config deploy/ghz/{name}.json.",
    "_gpu_p95_ms: the p95 latency this call must hold on one GPU per model service at this concurrency (the "
    "image cached by sha); ghz ignores keys it does not know.",
    "ghz cannot parse protos/ itself: they import buf/validate/validate.proto, whose source no package ships. "
    "`make protoset` writes the self-contained descriptor set named below (build/ghz/tator.protoset). Or delete "
    "the protoset key: every Tator service enables server reflection, which ghz uses when no proto/protoset is "
    "given.",
    "ghz checks grpc-status (unlike h2load). The same call without ghz: .venv/bin/python benchmarks/load.py "
    "--call {name} [--image IMG] --target HOST:PORT.",
]
IMAGE_NOTES = [
    "REPLACE_WITH_IMAGE_SHA256 / REPLACE_WITH_IMAGE_BASE64 are placeholders. Fill them for a real image with: "
    ".venv/bin/python benchmarks/load.py --call {name} --image IMG --emit-ghz /tmp/{name}.ghz.json (add "
    "--bytes-every-call to inline the bytes in every request), then ghz --config /tmp/{name}.ghz.json.",
    "The image travels by sha256 only, so the service must already hold it: send it once with bytes first "
    "(benchmarks/load.py does that, and resends on IMAGE_NOT_CACHED; raw ghz does not, so with several replicas "
    "behind dns:/// round-robin use --bytes-every-call or every replica answers FAILED_PRECONDITION "
    "IMAGE_NOT_CACHED until it has seen the image). This measures compute, not image transfer.",
]


def render(name: str) -> dict:
    """The ghz config of one table row."""
    row = CALLS[name]
    shape = {**READ_DEFAULTS, **row}
    service = row["call"].split(".")[1]
    has_image = SHA in repr(row["data"])
    notes = [n.format(name=name) for n in COMMON_NOTES + (IMAGE_NOTES if has_image else [])] + row.get("notes", [])
    return {
        "_notes": notes,
        "_gpu_p95_ms": shape["gpu_p95_ms"],
        "name": f"tator {row['call'].split('.', 3)[3]}",
        "protoset": "build/ghz/tator.protoset",
        "call": row["call"],
        "host": f"127.0.0.1:{PORTS[service]}",
        "insecure": True,
        "total": shape["total"],
        "concurrency": shape["concurrency"],
        "connections": 1,
        "timeout": shape["timeout"],
        "metadata": {"x-request-id": "ghz-{{.RequestNumber}}"},
        "data": row["data"],
    }
