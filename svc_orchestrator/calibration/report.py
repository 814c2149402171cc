"""The calibration report: JSON and PNG plots (matplotlib, Agg).

Everything the report states about quality comes from the test split; the
validation numbers appear only under each model's `thresholds` (that is
what they were tuned on). Files, all under the job directory:
  report.json        the full report (settings, split, data, schema, models,
                     results, baselines, confusion counts, curves)
  pr_curves.png      object-level precision/recall of each model over one
                     global threshold, with the tuned operating points and
                     the baselines as points
  per_class_f1.png   per-class F1 of every method at the primary eval IoU
  reliability.png    reliability diagram of each accept model's probabilities
                     on the test candidates, with its expected calibration error
The report's message form (CalibrationReport, also saved as report.pb) is built from this document
by svc_orchestrator/convert/calibration_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from svc_orchestrator.calibration.evaluate import EvalResult
from tator_core.hashing import atomic_write_text

REPORT_JSON = "report.json"
PR_PNG = "pr_curves.png"
F1_PNG = "per_class_f1.png"
RELIABILITY_PNG = "reliability.png"
#: The report document as report.json holds it.
ReportDoc = dict[str, Any]


def result_entry(method: str, res: EvalResult) -> dict:
    return {"method": method, **res.as_dict()}


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


def save_report(job_dir: Path, report: ReportDoc) -> ReportDoc:
    """Write the plots and report.json (which lists them as its artifacts); returns the document."""
    job_dir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for name, plot in ((PR_PNG, _plot_pr), (F1_PNG, _plot_f1), (RELIABILITY_PNG, _plot_reliability)):
        plot(report, job_dir / name)
        artifacts.append(str(job_dir / name))
    artifacts.insert(0, str(job_dir / REPORT_JSON))
    report["artifacts"] = artifacts
    atomic_write_text(job_dir / REPORT_JSON, json.dumps(report, indent=1, sort_keys=True))
    return report
