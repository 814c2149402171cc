"""`tator calibrate --dataset ID` and `tator report JOB_ID`: calibration jobs through the orchestrator.

`calibrate` starts the job (guards fail at once with the orchestrator's FAILED_PRECONDITION naming
what is missing), follows WatchJob with a progress bar, then prints the test-split report table;
`report` prints the table of a finished job. `--json` prints the full report JSON instead.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tator_cli.output import fail_rpc, stdout_console

if TYPE_CHECKING:  # the CLI imports the stubs inside each command, so it starts fast
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2

console = Console(stderr=True)


class ModelChoice(str, Enum):
    mlp = "mlp"
    xgb = "xgb"
    both = "both"


def _default_address() -> str:
    from tator_cli.stack import load_config

    return load_config()["orchestrator"].address


def _client(address: str):
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc

    return ServiceClient(address, orchestrator_pb2_grpc.OrchestratorServiceStub, timeout_s=60)


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def method_label(r) -> str:
    """A MethodMetrics' method for people: mlp, xgb, accept_all or best_single_source:<source>."""
    from tator_core.enums import source_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    name = pb.AcceptMethod.Name(r.method).removeprefix("ACCEPT_METHOD_").lower()
    return f"{name}:{source_name(r.source)}" if r.source else name


def _ci(metrics, name: str) -> str:
    """0.912 [0.880-0.941]; just the value when the report has no interval for it."""
    value = getattr(metrics, name)
    if not metrics.HasField(f"{name}_ci"):
        return _fmt(value)
    interval = getattr(metrics, f"{name}_ci")
    return f"{_fmt(value)} [{interval.lower:.3f}-{interval.upper:.3f}]"


def print_report(report, out: Console | None = None) -> None:
    """Overall metrics with bootstrap 95% intervals per method and eval IoU, recall on large scenes,
    calibration error, per-class F1 at the primary IoU, thresholds, warnings, artifacts."""
    from tator_core.enums import source_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    out = out or stdout_console()
    for warning in report.warnings:
        out.print(f"[bold red]WARNING[/] {warning}")
    sizes = ", ".join(f"{k} {report.split_images[k]}" for k in ("train", "val", "test") if k in report.split_images)
    test = report.test
    table = Table(title=f"calibration {report.job_id} on {report.dataset_id}: test split ({sizes} images); "
                        f"numbers rest on {len(test.images)} test images, {test.ground_truth} objects; "
                        "[lo-hi] = bootstrap 95% interval over images")
    names = [method_label(r) for r in report.results]
    table.add_column("method", no_wrap=True, min_width=max((len(n) for n in names), default=6))
    large = f"recall large ({test.large_images} img, {test.large_ground_truth} obj)"
    for col in ("IoU", "prec.", "recall", "F1", "TP", "FP", "FN", large):
        table.add_column(col, justify="right")
    for name, r in zip(names, report.results):
        o = r.overall
        table.add_row(name, f"{r.eval_iou:g}", _ci(o, "precision"), _ci(o, "recall"), f"[bold]{_ci(o, 'f1')}[/]",
                      str(o.tp), str(o.fp), str(o.fn),
                      _ci(r.large_scenes, "recall") if r.HasField("large_scenes") and test.large_images else "-")
    out.print(table)
    for m in report.models:
        cm = m.candidate_metrics
        if cm.HasField("expected_calibration_error"):
            name = pb.AcceptMethod.Name(m.model).removeprefix("ACCEPT_METHOD_").lower()
            out.print(f"{name}: expected calibration error {cm.expected_calibration_error:.3f} on "
                      f"{cm.rows} test candidates (reliability diagram: reliability.png)")
    iou = report.primary_eval_iou
    at = [r for r in report.results if r.eval_iou == iou]
    if at:
        classes = list(report.labelmap) or sorted({c for r in at for c in r.per_class})
        per = Table(title=f"per-class F1 at eval IoU {iou:g}")
        per.add_column("class")
        for r in at:
            per.add_column(method_label(r), justify="right")
        for c in classes:
            per.add_row(c, *(_fmt(r.per_class[c].f1) if c in r.per_class else "-" for r in at))
        out.print(per)
    f1_at = {method_label(r): r.overall.f1 for r in at}
    best = next((r for r in at if r.method == pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE), None)
    delta = {m.model: m.delta_f1_vs_best_single_source for m in report.models}
    for t in report.thresholds:
        name = pb.AcceptMethod.Name(t.model).removeprefix("ACCEPT_METHOD_").lower()
        default = " (default)" if t.is_default else ""
        out.print(f"{name}{default} thresholds: " + ", ".join(f"{c.label} {c.threshold:.3f}" for c in t.classes))
        if name in f1_at:
            vs = (f" vs best single source ({source_name(best.source)}) {best.overall.f1:.3f} "
                  f"({delta.get(t.model, 0.0):+.3f})" if best is not None else "")
            out.print(f"{name}: F1 {f1_at[name]:.3f}{vs}, accept-all {f1_at.get('accept_all', 0.0):.3f}")
    if report.feature_schema_hash:
        out.print(f"feature schema {report.feature_schema_hash[:16]}")
    for path in report.artifacts:
        out.print(f"artifact: {path}")


async def _watch(client: Any, job_id: str) -> orchestrator_pb2.Job | None:
    """Follow WatchJob with a progress bar; returns the final Job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    last = None
    with Progress(TextColumn("[bold]{task.fields[state]}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), TextColumn("{task.description}"), console=console, transient=False) as bar:
        task = bar.add_task("", total=None, state="QUEUED")
        async for event in client.stream("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout_s=24 * 3600):
            job = last = event.job
            bar.update(task, completed=job.done, total=job.total or None, description=job.message[:80],
                       state=pb.JobState.Name(job.state).removeprefix("JOB_STATE_"))
    return last


async def calibrate_job(address: str, request, as_json: bool) -> int:
    """Start a calibration job, follow it with a progress bar, print its report; the exit code."""
    import grpc

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    client = _client(address)
    try:
        try:
            job = (await client.call("StartCalibration", request)).job
        except grpc.aio.AioRpcError as exc:
            fail_rpc(exc, console)
        console.print(f"calibration job [bold]{job.id}[/] on {request.dataset_id}")
        final = await _watch(client, job.id)
        if final is None or final.state != pb.JOB_STATE_SUCCEEDED:
            state = pb.JobState.Name(final.state) if final is not None else "UNKNOWN"
            stage = f" (stage {final.failed_stage})" if final is not None and final.failed_stage else ""
            console.print(f"[red]{state}[/]{stage}: {final.error if final is not None else ''}")
            return 1
        report = (await client.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id))).report
    finally:
        await client.close()
    _emit(report, as_json)
    return 0


def _emit(report, as_json: bool) -> None:
    if as_json:
        from google.protobuf.json_format import MessageToJson

        typer.echo(MessageToJson(report, preserving_proto_field_name=True, sort_keys=True))
    else:
        print_report(report)


def calibrate(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id (must have ground truth).")],
    model: Annotated[ModelChoice, typer.Option(help="Accept model(s) to train.")] = ModelChoice.both,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report JSON.")] = False,
    max_images: Annotated[int, typer.Option(help="Seeded sample of at most N images (0 = all).")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for the sample, split and models (default 42).")] = None,
    eval_iou: Annotated[list[float] | None, typer.Option(help="Eval IoU; repeat for several (default 0.5).")] = None,
    label_iou: Annotated[float | None, typer.Option(help="IoU that makes a candidate positive (0.5).")] = None,
    dedupe_iou: Annotated[float | None, typer.Option(help="Dedupe IoU of accepted candidates (0.75).")] = None,
    recall_floor: Annotated[float | None, typer.Option(help="Per-class recall floor for thresholds.")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Share of images for val (0.2).")] = None,
    test_fraction: Annotated[float | None, typer.Option(help="Share of images for test (0.2).")] = None,
    embedding_dims: Annotated[int, typer.Option(help="Random projection of the classifier embedding (0 = off).")] = 0,
    sam3: Annotated[bool, typer.Option("--sam3/--no-sam3", help="Run the SAM3 text and similarity stages.")] = True,
    sam3_windows: Annotated[bool, typer.Option("--sam3-windows/--no-sam3-windows",
                                               help="Also run SAM3 on grid windows.")] = True,
    rfdetr: Annotated[bool, typer.Option("--rfdetr/--no-rfdetr", help="Run RF-DETR.")] = True,
    detector_conf: Annotated[float | None, typer.Option(help="Detector confidence (0.45).")] = None,
    sahi_window_size: Annotated[int | None, typer.Option(help="Detector SAHI tile size in px (default: each detector's input size).")] = None,
    classifier_id: Annotated[str, typer.Option(help="Classifier head id (default head if empty).")] = "",
    allow_training_overlap: Annotated[bool, typer.Option(
        help="Run even if the test split holds images a model was trained on (flagged in the report).")] = False,
    address: Annotated[str | None, typer.Option(help="Orchestrator host:port (default from config/stack.yaml).")] = None,
) -> None:
    """Calibrate accept models on a dataset's cached prepass and print the test-split report."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    kinds = {"mlp": pb.CALIBRATION_MODEL_MLP, "xgb": pb.CALIBRATION_MODEL_XGB, "both": pb.CALIBRATION_MODEL_BOTH}
    prep = pb.PrepassConfig(enable_rfdetr=rfdetr, classifier_id=classifier_id)
    if not sam3:
        prep.enable_sam3_text = prep.enable_sam3_similarity = False
    if not sam3_windows:
        prep.sam3_text_window_extension = prep.similarity_window_extension = False
    if detector_conf is not None:
        prep.detector_conf = detector_conf
    if sahi_window_size is not None:
        prep.sahi_window_size = sahi_window_size
    config = pb.CalibrationConfig(model=kinds[model.value], max_images=max_images, eval_ious=eval_iou or [],
                                  embedding_dims=embedding_dims, prepass=prep)
    if allow_training_overlap:
        config.allow_training_overlap = True
    for name, value in (("seed", seed), ("label_iou", label_iou), ("dedupe_iou", dedupe_iou),
                        ("recall_floor", recall_floor), ("val_fraction", val_fraction),
                        ("test_fraction", test_fraction)):
        if value is not None:
            setattr(config, name, value)
    request = pb.StartCalibrationRequest(dataset_id=dataset, config=config)
    code = asyncio.run(calibrate_job(address or _default_address(), request, as_json))
    raise typer.Exit(code)


def report(
    job_id: Annotated[str, typer.Argument(help="Calibration job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report JSON.")] = False,
    address: Annotated[str | None, typer.Option(help="Orchestrator host:port (default from config/stack.yaml).")] = None,
) -> None:
    """Print the report of a finished calibration job."""
    import grpc

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    async def get():
        client = _client(address or _default_address())
        try:
            return (await client.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job_id))).report
        finally:
            await client.close()

    try:
        rep = asyncio.run(get())
    except grpc.aio.AioRpcError as exc:
        fail_rpc(exc, console)
    _emit(rep, as_json)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("report")(report)
