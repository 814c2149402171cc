"""The one table of load-tested calls: deploy/ghz/<name>.json is generated from it
(`python benchmarks/load.py --write-ghz`; tests fail when a committed file differs), and
benchmarks/load.py drives the same files, so the two cannot drift.

Every inference RPC, every read RPC, the model services' shared ListModels, and the idempotent writes
(PutGlossary / PutRecipe of one fixed name). The RPCs left out, each with its reason, are in
NOT_LOAD_TESTED; a test checks that the two together name every RPC in protos/. `gpu_p95_ms` is the
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
    "get_glossary": dict(call="tator.orchestrator.v1.OrchestratorService.GetGlossary", data={"name": "ghz-load"},
                         notes=["put_glossary writes the glossary named ghz-load; before it every call answers "
                                "NOT_FOUND."]),
    "get_recipe": dict(call="tator.orchestrator.v1.OrchestratorService.GetRecipe", data={"id": "ghz-load"},
                       notes=["put_recipe writes the recipe ghz-load; before it every call answers NOT_FOUND."]),
    "export_recipe": dict(call="tator.orchestrator.v1.OrchestratorService.ExportRecipe", data={"id": "ghz-load"},
                          notes=["A zip of the recipe and its glossary, built per call. put_recipe writes the "
                                 "recipe ghz-load; before it every call answers NOT_FOUND."]),
    "get_job": dict(call="tator.orchestrator.v1.OrchestratorService.GetJob", data={"job_id": "replace-with-a-job-id"},
                    notes=["Replace job_id with an id from list_jobs (`tator jobs`): as written every call answers "
                           "NOT_FOUND. The web UI polls it while a job runs."]),
    "get_calibration_report": dict(
        call="tator.orchestrator.v1.OrchestratorService.GetCalibrationReport",
        data={"job_id": "replace-with-a-calibration-job-id"}, gpu_p95_ms=60,
        notes=["Replace job_id with the id of a finished calibration (`tator calibrate`): as written every call "
               "answers NOT_FOUND. The report (curves, per-class thresholds) is read from the job's folder."]),
    # --- writes that leave the store as they found it: one fixed name, overwritten per call -------------
    "put_glossary": dict(
        call="tator.orchestrator.v1.OrchestratorService.PutGlossary", data={"name": "ghz-load", "text": GLOSSARY},
        total=500, concurrency=4, notes=["Every call overwrites the glossary ghz-load (an atomic store write). "
                                         "Needs the admin role when the stack checks tokens."]),
    "put_recipe": dict(
        call="tator.orchestrator.v1.OrchestratorService.PutRecipe",
        data={"recipe": {"id": "ghz-load", "name": "ghz load", "config": {"detector_conf": 0.25},
                         "glossary": GLOSSARY}},
        total=500, concurrency=4, notes=["Every call overwrites the recipe ghz-load (one atomic write). "
                                         "Needs the admin role when the stack checks tokens."]),
    # --- the model services' shared management surface (the orchestrator's ListModels fans out to these) ---
    **{f"{service}_list_models": dict(
        call="tator.common.v1.ModelManagementService.ListModels", service=service, data={"page_size": 50},
        notes=[f"The {service} service's models and their state, answered from memory (no model call)."])
       for service in ("detector", "sam3", "qwen", "classifier")},
}
#: RPCs with no config, and why. With CALLS they name every RPC of protos/ (tests check it).
NOT_LOAD_TESTED: dict[str, str] = {
    **{f"tator.orchestrator.v1.OrchestratorService.{m}": why for m, why in {
        "StartPrepassJob": "each call starts a job over a whole dataset (minutes of model work): a ghz run would "
                           "queue thousands of jobs; the prepass config measures the per-image work a job runs",
        "StartCalibration": "each call starts a calibration over a dataset (a prepass of every image, then the "
                            "fits); benchmarks/calibration.py measures one",
        "CancelJob": "the first call ends the job; every later one measures a refusal",
        "DeleteGlossary": "the first call deletes; every later one answers NOT_FOUND",
        "DeleteRecipe": "the first call deletes; every later one answers NOT_FOUND",
        "ImportRecipe": "its data is a zip archive that ExportRecipe makes, which a ghz config cannot hold as a "
                        "template; put_recipe measures the same store write",
        "WatchJob": "a server stream that lasts as long as its job: its load is a count of open streams "
                    "(bounded by the server's stream budget), not a latency",
    }.items()},
    **{f"tator.common.v1.ModelManagementService.{m}": why for m, why in {
        "LoadModel": "an operator action that moves model weights onto the device, not traffic",
        "UnloadModel": "an operator action: after the first call the model is down and inference on it refused",
        "SetDefaultModel": "an operator action that rewrites the model registry file",
    }.items()},
    "tator.classifier.v1.ClassifierService.TrainHead": "a server stream of one training run (minutes) that "
                                                       "writes a head: an operator action, not traffic",
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
    # the package names the service, except the model management every model service serves
    service = row.get("service") or row["call"].split(".")[1]
    has_image = SHA in repr(row["data"])
    notes = [n.format(name=name) for n in COMMON_NOTES + (IMAGE_NOTES if has_image else [])] + row.get("notes", [])
    return {
        "_notes": notes,
        "_gpu_p95_ms": shape["gpu_p95_ms"],
        "name": f"tator {row['service'] + ' ' if 'service' in row else ''}{row['call'].split('.', 3)[3]}",
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
