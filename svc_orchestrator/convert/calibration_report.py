"""The calibration report's message form: report.json (svc_orchestrator/calibration/report.py) ->
CalibrationReport, saved next to it as report.pb and returned by GetCalibrationReport."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format

from svc_orchestrator.calibration.evaluate import Counts
from svc_orchestrator.calibration.report import REPORT_JSON, ReportDoc
from tator_core import errors
from tator_core.enums import source_value
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import atomic_write_bytes
from tator_core.timestamps import duration, timestamp

REPORT_PB = "report.pb"


def metrics_proto(c: Counts | dict, ci: dict | None = None) -> pb.Metrics:
    """Counts and rates, with their bootstrap intervals when given ({"f1": [lo, hi], ...})."""
    d = c.as_dict() if isinstance(c, Counts) else c
    out = pb.Metrics(tp=d["tp"], fp=d["fp"], fn=d["fn"], precision=d["precision"], recall=d["recall"], f1=d["f1"])
    for name, bounds in (ci or {}).items():
        getattr(out, f"{name}_ci").CopyFrom(pb.Interval(lower=bounds[0], upper=bounds[1]))
    return out


_METHODS = {"mlp": pb.ACCEPT_METHOD_MLP, "xgb": pb.ACCEPT_METHOD_XGB, "accept_all": pb.ACCEPT_METHOD_ACCEPT_ALL}
_BEST_SOURCE = "best_single_source:"
_MODEL_ORDER = ("mlp", "xgb")


def method_enum(method: str) -> tuple[pb.AcceptMethod, str]:
    """(AcceptMethod, source) of a report.json method name such as "best_single_source:yolo"."""
    if method.startswith(_BEST_SOURCE):
        return pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE, method[len(_BEST_SOURCE):]
    return _METHODS[method], ""


def method_name(method: int, source: str = "") -> str:
    """The report.json name of an AcceptMethod (the inverse of `method_enum`)."""
    if method == pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE:
        return f"{_BEST_SOURCE}{source}"
    return next(k for k, v in _METHODS.items() if v == method)


def method_proto(entry: dict) -> pb.MethodMetrics:
    method, source = method_enum(entry["method"])
    ci = entry.get("ci") or {}
    out = pb.MethodMetrics(method=method, source=source_value(source), eval_iou=entry["eval_iou"],
                           overall=metrics_proto(entry["overall"], ci.get("overall")))
    for lab, c in entry["per_class"].items():
        out.per_class[lab].CopyFrom(metrics_proto(c, ci.get("per_class", {}).get(lab)))
    if "large_scenes" in entry:
        out.large_scenes.CopyFrom(metrics_proto(entry["large_scenes"], entry["large_scenes"].get("ci")))
    return out


def _config_proto(settings: dict, prepass: dict | None) -> pb.CalibrationConfig:
    """The settings, and the prepass config as the request gave it (reports written before it was recorded
    have none), so a client can run a prepass the accept model accepts."""
    kinds = set(settings["models"])
    model = (pb.CALIBRATION_MODEL_BOTH if kinds == {"mlp", "xgb"}
             else pb.CALIBRATION_MODEL_MLP if kinds == {"mlp"} else pb.CALIBRATION_MODEL_XGB)
    return pb.CalibrationConfig(
        model=model, label_iou=settings["label_iou"], eval_ious=settings["eval_ious"],
        dedupe_iou=settings["dedupe_iou"], recall_floor=settings["recall_floor"], seed=settings["seed"],
        val_fraction=settings["val_fraction"], test_fraction=settings["test_fraction"],
        max_images=settings["max_images"], embedding_dims=settings["embedding_dims"],
        prepass=json_format.ParseDict(prepass or {}, pb.PrepassConfig()))


def _thresholds_proto(kind: str, m: dict, labelmap: list[str]) -> pb.ModelThresholds:
    order = labelmap + sorted(set(m["thresholds"]) - set(labelmap))
    return pb.ModelThresholds(
        model=_METHODS[kind], is_default=bool(m.get("default", False)),
        classes=[pb.ClassThreshold(label=lab, threshold=ch["threshold"], reason=ch.get("reason", ""),
                                   val=metrics_proto(ch["val"]) if "val" in ch else None,
                                   tried=ch.get("tried", 0), global_threshold=ch.get("global_threshold", 0.0))
                 for lab in order if (ch := m["thresholds"].get(lab)) is not None])


def _summary_proto(kind: str, m: dict, report: dict) -> pb.AcceptModelSummary:
    fit = m.get("fit", {})
    out = pb.AcceptModelSummary(model=_METHODS[kind], val_f1=m.get("val_f1", 0.0),
                                train_rows=fit.get("train_rows", 0), train_positives=fit.get("train_positives", 0),
                                delta_f1_vs_best_single_source=report.get("comparison", {}).get(kind, {}).get(
                                    "delta_vs_best_single_source", 0.0))
    cm = report.get("candidate_metrics", {}).get(kind)
    if cm:
        rel = cm.get("reliability") or {}
        edges = rel.get("edges", [])
        out.candidate_metrics.CopyFrom(pb.CandidateMetrics(
            rows=cm["rows"], positives=cm["positives"],
            **{k: cm[k] for k in ("average_precision", "roc_auc", "brier") if cm.get(k) is not None},
            **({"expected_calibration_error": rel["ece"]} if rel.get("ece") is not None else {}),
            reliability=[pb.ReliabilityBin(lower=edges[i], upper=edges[i + 1], count=n,
                                           **({"mean_predicted": mp, "fraction_positive": fp} if n else {}))
                         for i, (n, mp, fp) in enumerate(zip(rel.get("count", []), rel.get("mean_predicted", []),
                                                             rel.get("fraction_positive", [])))]))
    return out


def _overlap_proto(model_id: str, rec: dict) -> pb.TrainingOverlap:
    counts = rec.get("overlap", {})
    return pb.TrainingOverlap(model_id=model_id, family=rec.get("family", ""), known=bool(rec.get("known")),
                              description=rec.get("description", ""), train=counts.get("train", 0),
                              val=counts.get("val", 0), test=counts.get("test", 0))


def to_proto(report: dict, artifacts: list[str]) -> pb.CalibrationReport:
    settings = report["settings"]
    primary = settings["primary_eval_iou"]
    labelmap = list(report["labelmap"])
    kinds = [k for k in _MODEL_ORDER if k in report["models"]]
    out = pb.CalibrationReport(
        job_id=report["job_id"], dataset_id=report["dataset_id"], feature_schema_hash=report["feature_schema"]["hash"],
        artifacts=artifacts, create_time=timestamp(report["created_at"]), labelmap=labelmap,
        config=_config_proto(settings, report.get("prepass_config")), primary_eval_iou=primary,
        split_images=report["split"]["sizes"],
        prepass_config_hash=report["prepass_config_hash"], glossary_hash=report.get("glossary_hash", ""),
        model_versions=report["model_versions"], prepass_images=report["prepass"]["images"],
        prepass_cache_hits=report["prepass"]["cache_hits"],
        run_ids=report["prepass"].get("run_ids", []), feature_width=report["feature_schema"]["width"],
        coverage_upper_bound=report["baselines"]["coverage_upper_bound"].get(str(primary), 0.0))
    if "timing" in report:
        out.duration.CopyFrom(duration(report["timing"]["total"]))
    out.results.extend(method_proto(e) for e in report["results"])
    for name in ("train", "val", "test"):
        d = report["data"][name]
        getattr(out, name).CopyFrom(pb.SplitSummary(images=sorted(report["split"]["images"][name]),
                                                    candidates=d["candidates"], positives=d["positives"],
                                                    ground_truth=d["gt"], large_images=d.get("large_images", 0),
                                                    large_ground_truth=d.get("large_gt", 0)))
    out.large_side = report["data"]["test"].get("large_side", 0)
    out.warnings.extend(report.get("warnings", []))
    out.training_overlap.extend(_overlap_proto(mid, rec)
                                for mid, rec in report.get("leakage", {}).get("models", {}).items())
    out.thresholds.extend(_thresholds_proto(k, report["models"][k], labelmap) for k in kinds)
    out.models.extend(_summary_proto(k, report["models"][k], report) for k in kinds)
    for kind in kinds:
        curve = report["curves"].get(kind)
        if curve:
            out.curves.append(pb.PrCurve(model=_METHODS[kind], thresholds=curve["thresholds"],
                                         precision=curve["precision"], recall=curve["recall"], f1=curve["f1"]))
    return out




def save_report_pb(job_dir: Path, report: ReportDoc) -> pb.CalibrationReport:
    """The report as a message, written to report.pb (after save_report wrote the JSON and plots)."""
    proto = to_proto(report, list(report["artifacts"]))
    atomic_write_bytes(Path(job_dir) / REPORT_PB, proto.SerializeToString())
    return proto


def summary_pb(report: pb.CalibrationReport) -> pb.JobResult:
    """What a finished calibration job reports: artifacts, split sizes, schema and default model."""
    default = next((t.model for t in report.thresholds if t.is_default), pb.ACCEPT_METHOD_UNSPECIFIED)
    return pb.JobResult(calibration=pb.CalibrationJobSummary(
        artifacts=report.artifacts, split_images=report.split_images,
        feature_schema_hash=report.feature_schema_hash, default_model=default))


def load_report(job_dir: Path) -> pb.CalibrationReport:
    path = Path(job_dir) / REPORT_PB
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise errors.not_found("NOT_FOUND", f"no calibration report for job {Path(job_dir).name}",
                               job_id=Path(job_dir).name) from None
    proto = pb.CalibrationReport.FromString(data)
    full = Path(job_dir) / REPORT_JSON
    if not proto.labelmap and full.is_file():
        # Saved before the report was typed: derive it from the full JSON written next to it.
        proto = to_proto(json.loads(full.read_text()), list(proto.artifacts))
    return proto
