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
"""

from __future__ import annotations

import json
from pathlib import Path

from svc_orchestrator.calibration.evaluate import Counts, EvalResult
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import atomic_write_bytes, atomic_write_text

REPORT_JSON = "report.json"
REPORT_PB = "report.pb"
PR_PNG = "pr_curves.png"
F1_PNG = "per_class_f1.png"


def metrics_proto(c: Counts | dict) -> pb.Metrics:
    d = c.as_dict() if isinstance(c, Counts) else c
    return pb.Metrics(tp=d["tp"], fp=d["fp"], fn=d["fn"], precision=d["precision"], recall=d["recall"], f1=d["f1"])


def result_entry(method: str, res: EvalResult) -> dict:
    return {"method": method, **res.as_dict()}


def method_proto(entry: dict) -> pb.MethodMetrics:
    out = pb.MethodMetrics(method=entry["method"], eval_iou=entry["eval_iou"], overall=metrics_proto(entry["overall"]))
    for lab, c in entry["per_class"].items():
        out.per_class[lab].CopyFrom(metrics_proto(c))
    return out


def to_proto(report: dict, artifacts: list[str]) -> pb.CalibrationReport:
    out = pb.CalibrationReport(job_id=report["job_id"], dataset_id=report["dataset_id"],
                               feature_schema_hash=report["feature_schema"]["hash"], artifacts=artifacts,
                               report_json=json.dumps(report, sort_keys=True))
    out.results.extend(method_proto(e) for e in report["results"])
    for kind, m in report["models"].items():
        out.thresholds_json[kind] = json.dumps({lab: ch["threshold"] for lab, ch in m["thresholds"].items()},
                                               sort_keys=True)
    for split, n in report["split"]["sizes"].items():
        out.split_images[split] = n
    labelmap = list(report.get("labelmap", []))
    out.labelmap.extend(labelmap)
    out.primary_eval_iou = float(report.get("settings", {}).get("primary_eval_iou", 0.0))
    for kind, m in report["models"].items():
        order = labelmap + sorted(set(m["thresholds"]) - set(labelmap))
        out.thresholds.append(pb.ModelThresholds(
            model=kind, is_default=bool(m.get("default", False)),
            classes=[pb.ClassThreshold(label=lab, threshold=ch["threshold"], reason=ch.get("reason", ""),
                                       val=metrics_proto(ch["val"]) if "val" in ch else None)
                     for lab in order if (ch := m["thresholds"].get(lab)) is not None]))
    for kind, curve in report.get("curves", {}).items():
        out.curves.append(pb.PrCurve(model=kind, thresholds=curve["thresholds"], precision=curve["precision"],
                                     recall=curve["recall"], f1=curve["f1"]))
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


def save_report(job_dir: Path, report: dict) -> pb.CalibrationReport:
    """Write plots, JSON and the proto; returns the proto."""
    job_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for name, plot in ((PR_PNG, _plot_pr), (F1_PNG, _plot_f1)):
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
        raise errors.not_found("NOT_FOUND", f"no calibration report in {job_dir}", path=str(path)) from None
    proto = pb.CalibrationReport.FromString(data)
    if not proto.labelmap and proto.report_json:
        # Saved before the typed thresholds and curves existed: derive them from the full JSON.
        proto = to_proto(json.loads(proto.report_json), list(proto.artifacts))
    return proto
