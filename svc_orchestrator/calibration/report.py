"""The calibration report: JSON, PNG plots (matplotlib, Agg) and the proto.

Everything the report states about quality comes from the test split; the
validation numbers appear only under each model's `thresholds` (that is
what they were tuned on). Files, all under the job directory:
  report.json        the full report (settings, split, data, schema, models,
                     results, baselines, confusion counts, curves)
  report.pb          the CalibrationReport proto as returned by the API
  pr_curves.png      object-level precision/recall of each model over one
                     global threshold, with the tuned operating points and
                     the baselines as points
  per_class_f1.png   per-class F1 of every method at the primary eval IoU
  reliability.png    reliability diagram of each accept model's probabilities
                     on the test candidates, with its expected calibration error
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format

from svc_orchestrator.calibration.evaluate import Counts, EvalResult
from tator_core import errors
from tator_core.enums import source_value
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import atomic_write_bytes, atomic_write_text
from tator_core.timestamps import duration, timestamp

REPORT_JSON = "report.json"
REPORT_PB = "report.pb"
PR_PNG = "pr_curves.png"
F1_PNG = "per_class_f1.png"
RELIABILITY_PNG = "reliability.png"


def metrics_proto(c: Counts | dict, ci: dict | None = None) -> pb.Metrics:
    """Counts and rates, with their bootstrap intervals when given ({"f1": [lo, hi], ...})."""
    d = c.as_dict() if isinstance(c, Counts) else c
    out = pb.Metrics(tp=d["tp"], fp=d["fp"], fn=d["fn"], precision=d["precision"], recall=d["recall"], f1=d["f1"])
    for name, bounds in (ci or {}).items():
        getattr(out, f"{name}_ci").CopyFrom(pb.Interval(lower=bounds[0], upper=bounds[1]))
    return out


def result_entry(method: str, res: EvalResult) -> dict:
    return {"method": method, **res.as_dict()}


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


def _plot_pr(report: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state in the server

    fig = Figure(figsize=(6.4, 5.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    iou = report["settings"]["primary_eval_iou"]
    for kind, curve in report["curves"].items():
        line, = ax.plot(curve["recall"], curve["precision"], label=f"{kind} (global threshold)")
        op = next((e for e in report["results"] if e["method"] == kind and e["eval_iou"] == iou), None)
        if op is not None:
            ax.scatter([op["overall"]["recall"]], [op["overall"]["precision"]], color=line.get_color(), marker="*",
                       s=140, zorder=3, label=f"{kind} per-class thresholds")
    baselines = [e for e in report["results"] if e["eval_iou"] == iou and e["method"] not in report["curves"]]
    for e, (colour, marker) in zip(baselines, [("black", "o"), ("dimgray", "s"), ("gray", "^"), ("silver", "v")]):
        ax.scatter([e["overall"]["recall"]], [e["overall"]["precision"]], color=colour, marker=marker, s=50,
                   label=e["method"])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{report['dataset_id']}: test split, eval IoU {iou:g}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _plot_f1(report: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state in the server

    iou = report["settings"]["primary_eval_iou"]
    entries = [e for e in report["results"] if e["eval_iou"] == iou]
    labels = report["labelmap"]
    fig = Figure(figsize=(max(6.4, 1.2 * len(labels) + 3), 4.8), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(entries), 1)
    for k, e in enumerate(entries):
        xs = [i + (k - (len(entries) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, [e["per_class"].get(lab, {}).get("f1", 0.0) for lab in labels], width, label=e["method"])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30 if len(labels) > 6 else 0)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("F1")
    ax.set_title(f"per-class F1, test split, eval IoU {iou:g}")
    ax.legend(fontsize=8, loc="upper center", ncol=min(4, max(len(entries), 1)))
    fig.tight_layout()
    fig.savefig(path)


def _plot_reliability(report: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state in the server

    fig = Figure(figsize=(5.6, 5.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfectly calibrated")
    for kind, cm in sorted(report.get("candidate_metrics", {}).items()):
        rel = cm.get("reliability") or {}
        pts = [(p, f) for p, f in zip(rel.get("mean_predicted", []), rel.get("fraction_positive", [])) if p is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=f"{kind} (ECE {rel['ece']:.3f})")
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("fraction of true objects (bin)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{report['dataset_id']}: reliability on test candidates")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def save_report(job_dir: Path, report: dict) -> pb.CalibrationReport:
    """Write plots, JSON and the proto; returns the proto."""
    job_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for name, plot in ((PR_PNG, _plot_pr), (F1_PNG, _plot_f1), (RELIABILITY_PNG, _plot_reliability)):
        plot(report, job_dir / name)
        artifacts.append(str(job_dir / name))
    artifacts.insert(0, str(job_dir / REPORT_JSON))
    report["artifacts"] = artifacts
    atomic_write_text(job_dir / REPORT_JSON, json.dumps(report, indent=1, sort_keys=True))
    proto = to_proto(report, artifacts)
    atomic_write_bytes(job_dir / REPORT_PB, proto.SerializeToString())
    return proto


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
