"""Orchestrator commands: `tator prepass`, `tator datasets`, `tator glossary ...`, `tator jobs ...`.

`tator prepass IMAGE` runs one prepass and prints its candidates; `tator prepass --dataset ID`
starts a prepass job and follows it with a progress bar (WatchJob), then prints per-source counts
and stage timings. Heavy imports stay inside the commands so the CLI starts fast.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tator_cli.output import dump_json, run_rpc

err_console = Console(stderr=True)
AddressOpt = Annotated[str | None, typer.Option(help="Orchestrator host:port (default from config/stack.yaml).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


# --- shared printing (also used by the demo) ------------------------------------------------------

def _stage(value: int) -> str:
    from tator_core.enums import short_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    return short_name(pb.PrepassStage, value)


def stage_table(stages: dict[str, float], title: str = "stage timings") -> Table:
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("ms", justify="right")
    for stage, ms in stages.items():
        table.add_row(stage, f"{ms:.1f}")
    return table


def count_table(counts: dict[str, int], title: str, key: str = "source") -> Table:
    table = Table(title=title)
    table.add_column(key)
    table.add_column("count", justify="right")
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(name, str(n))
    return table


def print_job_summary(console: Console, job: Any) -> dict:
    """Per-source counts and stage timings of a finished prepass job; returns the summary as a dict."""
    from google.protobuf.json_format import MessageToDict

    from tator_core.timestamps import milliseconds

    s = job.result.prepass
    console.print(f"[bold]{s.images} images[/], {s.cache_hits} cache hits, "
                  f"{s.candidates} candidates from {s.atoms} raw detections")
    console.print(count_table({c.key: c.count for c in s.candidates_by_source}, "candidates per source"))
    console.print(count_table({c.key: c.count for c in s.atoms_by_source}, "raw detections per source"))
    console.print(count_table({c.key: c.count for c in s.candidates_by_class}, "candidates per class", key="class"))
    if s.stages:
        console.print(stage_table({_stage(st.stage): milliseconds(st.duration) for st in s.stages},
                                  "stage timings (images that ran, total)"))
    return MessageToDict(s, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_result(console: Console, result: Any, limit: int = 30) -> None:
    from tator_core.convert import warning_text
    from tator_core.enums import source_name
    from tator_core.timestamps import milliseconds

    table = Table(title=f"{result.image_name or result.image_sha256[:12]}: {len(result.candidates)} candidates"
                        f"{' (cache hit)' if result.cache_hit else ''}")
    calibrated = any(c.HasField("accept_prob") for c in result.candidates)
    for col in ("#", "label", "score", "box", "sources", "classifier") + (("accept",) if calibrated else ()):
        table.add_column(col)
    for c in list(result.candidates)[:limit]:
        b = c.box
        clf = c.classifier_error or (f"{c.classifier_label} {c.classifier_score:.2f}" if c.classifier_label else "")
        accept = (f"{'yes' if c.accepted else 'no'} {c.accept_prob:.2f}",) if calibrated else ()
        table.add_row(str(c.index), c.label, f"{c.score:.3f}", f"{b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}",
                      ",".join(source_name(s) for s in c.sources), clf, *accept)
    console.print(table)
    console.print(stage_table({_stage(s.stage): milliseconds(s.duration) for s in result.stages if s.ran}))
    for w in result.warnings:
        console.print(f"[yellow]warning ({_stage(w.stage)}):[/] {warning_text(w.warning)}")


async def watch_with_progress(client: Any, job_id: str, console: Console, description: str = "prepass",
                              images: list[str] | None = None) -> Any:
    """Follow a job with a rich progress bar; returns the final Job (image names go to `images`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    last = None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("eta {task.fields[eta]}"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                  console=console, transient=False) as bar:
        task = bar.add_task(description, total=None, eta="?", note="")
        async for ev in client.stream("WatchJob", pb.WatchJobRequest(job_id=job_id)):
            job = ev.job
            if ev.image and images is not None:
                images.append(ev.image)
            bar.update(task, total=job.total or None, completed=job.done, eta=f"{job.eta.seconds}s" if job.HasField("eta") else "?",
                       note=(ev.image or job.message)[-60:])
            last = job
    return last


# --- commands -------------------------------------------------------------------------------------

def _config(windowed: bool | None, caption: bool | None, config_json: str | None) -> Any:
    from google.protobuf.json_format import Parse

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    cfg = Parse(config_json, pb.PrepassConfig()) if config_json else pb.PrepassConfig()
    if windowed is not None:
        cfg.sam3_text_window_extension = cfg.similarity_window_extension = windowed
    if caption is not None:
        cfg.enable_caption = caption
        if windowed is not None:
            cfg.caption_windowed = windowed
    return cfg


def prepass(
    image: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="One image file.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset id: with IMAGE, its labelmap and glossary; "
                                                   "alone, a prepass job over the dataset.")] = None,
    windowed: Annotated[bool | None, typer.Option("--windowed/--no-windowed",
                                                     help="SAM3 text + similarity on grid windows too.")] = None,
    caption: Annotated[bool | None, typer.Option("--caption/--no-caption", help="Caption the image.")] = None,
    config: Annotated[str | None, typer.Option(help="PrepassConfig as JSON (flags above override).")] = None,
    glossary: Annotated[str | None, typer.Option(help="Saved glossary name to use.")] = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe id whose config is the base.")] = None,
    split: Annotated[str, typer.Option(help="Job: only this split.")] = "",
    max_images: Annotated[int, typer.Option(help="Job: at most N images (seeded sample).")] = 0,
    refresh: Annotated[bool, typer.Option(help="Recompute even when cached.")] = False,
    calibration: Annotated[str | None, typer.Option(
        help="IMAGE only: calibration job whose accept model scores the candidates. Without --config/--recipe "
             "the prepass runs with that calibration's prepass config (the accept model refuses any other).")] = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Prepass one IMAGE, or a whole --dataset as a job with a progress bar."""
    from tator_core.client import image_ref
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    if image is None and not dataset:
        raise typer.BadParameter("give an IMAGE or --dataset ID")
    if calibration and image is None:
        raise typer.BadParameter("--calibration applies to one IMAGE, not a dataset job")
    cfg = _config(windowed, caption, config)
    out = Console()

    async def one(client: Any, image: Path) -> Any:
        ds = dataset
        if not ds:
            ids = [d.id for d in (await client.call("ListDatasets", pb.ListDatasetsRequest(page_size=1000))).datasets]
            if len(ids) != 1:
                raise typer.BadParameter(f"--dataset is required to pick the labelmap (datasets: {', '.join(ids)})")
            ds = ids[0]
        base = cfg
        if calibration and config is None and not recipe:
            # The accept model checks the prepass config hash: start from the one it was trained on.
            report = (await client.call("GetCalibrationReport",
                                        pb.GetCalibrationReportRequest(job_id=calibration))).report
            base = pb.PrepassConfig()
            base.CopyFrom(report.config.prepass)
            base.MergeFrom(cfg)
        req = pb.PrepassRequest(image=image_ref(image.read_bytes()), dataset_id=ds, config=base,
                                glossary_name=glossary or "", recipe_id=recipe or "", refresh=refresh,
                                calibration_id=calibration or "")
        return (await client.call("Prepass", req)).result

    async def job(client: Any) -> Any:
        req = pb.StartPrepassJobRequest(dataset_id=dataset, config=cfg, split=split, max_images=max_images,
                                        glossary_name=glossary or "", recipe_id=recipe or "", refresh=refresh)
        started = (await client.call("StartPrepassJob", req)).job
        err_console.print(f"job {started.id}: {started.total} images of {dataset}")
        if as_json:
            last = None
            async for ev in client.stream("WatchJob", pb.WatchJobRequest(job_id=started.id)):
                last = ev.job
            return last
        return await watch_with_progress(client, started.id, err_console, f"prepass {dataset}")

    if image is not None:
        result = run_rpc(functools.partial(one, image=image), address)
        dump_json(result) if as_json else print_result(out, result)
        return
    final = run_rpc(job, address)
    if as_json:
        dump_json(final)
    elif final.state == pb.JOB_STATE_SUCCEEDED:
        print_job_summary(out, final)
    if final.state != pb.JOB_STATE_SUCCEEDED:
        stage = f" in stage {final.failed_stage}" if final.failed_stage else ""
        err_console.print(f"[red]{pb.JobState.Name(final.state)}[/]{stage}: {final.error or final.message}")
        raise typer.Exit(1)


def datasets(address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """Datasets under the orchestrator's data root."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    resp = run_rpc(lambda c: c.call("ListDatasets", pb.ListDatasetsRequest(page_size=1000)), address)
    if as_json:
        return dump_json(resp)
    table = Table(title="datasets")
    for col in ("id", "layout", "classes", "images", "splits", "boxes", "glossary"):
        table.add_column(col)
    for d in resp.datasets:
        splits = " ".join(f"{k}:{v}" for k, v in sorted(d.images_per_split.items()))
        table.add_row(d.id, d.layout, ", ".join(d.labelmap), str(d.image_count), splits, str(d.annotation_count),
                      d.glossary_hash[:12])
    Console().print(table)


glossary_app = typer.Typer(help="The glossary library: list, get, put, delete.", no_args_is_help=True)


@glossary_app.command("list")
def glossary_list(address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """Saved glossaries."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    resp = run_rpc(lambda c: c.call("ListGlossaries", pb.ListGlossariesRequest(page_size=1000)), address)
    if as_json:
        return dump_json(resp)
    table = Table(title="glossaries")
    for col in ("name", "labels", "terms", "hash"):
        table.add_column(col)
    for g in resp.glossaries:
        table.add_row(g.name, str(len(g.terms)), str(sum(len(t.terms) for t in g.terms.values())), g.hash[:12])
    Console().print(table)


def _print_glossary(g: Any, as_json: bool) -> None:
    if as_json:
        return dump_json(g)
    table = Table(title=f"{g.name} ({g.hash[:12]})")
    table.add_column("label")
    table.add_column("terms")
    for key, terms in sorted(g.terms.items()):
        table.add_row(key, ", ".join(terms.terms))
    Console().print(table)


@glossary_app.command("get")
def glossary_get(name: str, address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """One glossary with its parsed terms."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    _print_glossary(run_rpc(lambda c: c.call("GetGlossary", pb.GetGlossaryRequest(name=name)), address).glossary,
                    as_json)


@glossary_app.command("put")
def glossary_put(name: str,
                 file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False,
                                                                help="Glossary file (JSON or lines).")] = None,
                 text: Annotated[str | None, typer.Option(help="Glossary text instead of a file.")] = None,
                 address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """Save (create or replace) a glossary."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    if (file is None) == (text is None):
        raise typer.BadParameter("give a FILE or --text")
    body = file.read_text(encoding="utf-8") if file is not None else text
    req = pb.PutGlossaryRequest(name=name, text=body or "")
    _print_glossary(run_rpc(lambda c: c.call("PutGlossary", req), address).glossary, as_json)


@glossary_app.command("delete")
def glossary_delete(name: str, address: AddressOpt = None) -> None:
    """Delete a glossary."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    run_rpc(lambda c: c.call("DeleteGlossary", pb.DeleteGlossaryRequest(name=name)), address)
    err_console.print(f"deleted {name}")


jobs_app = typer.Typer(help="Jobs: list (default), get, watch, cancel.", invoke_without_command=True)


def _jobs_table(jobs: list) -> Table:
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    table = Table(title="jobs")
    for col in ("id", "kind", "state", "dataset", "progress", "created", "note"):
        table.add_column(col)
    for j in jobs:
        note = f"{j.failed_stage}: {j.error}" if j.failed_stage else (j.error or j.message)
        table.add_row(j.id, pb.JobKind.Name(j.kind).removeprefix("JOB_KIND_").lower(),
                      pb.JobState.Name(j.state).removeprefix("JOB_STATE_").lower(), j.dataset_id,
                      f"{j.done}/{j.total}", j.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
                      note[:70])
    return table


@jobs_app.callback()
def jobs_list(ctx: typer.Context, limit: Annotated[int, typer.Option(help="At most N jobs.")] = 20,
              address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """Jobs, newest first."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    if ctx.invoked_subcommand is not None:
        return
    resp = run_rpc(lambda c: c.call("ListJobs", pb.ListJobsRequest(page_size=limit)), address)
    dump_json(resp) if as_json else Console().print(_jobs_table(list(resp.jobs)))


@jobs_app.command("get")
def jobs_get(job_id: str, address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """One job (with its result summary)."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    job = run_rpc(lambda c: c.call("GetJob", pb.GetJobRequest(job_id=job_id)), address).job
    if as_json:
        return dump_json(job)
    Console().print(_jobs_table([job]))
    if job.kind == pb.JOB_KIND_PREPASS and job.state == pb.JOB_STATE_SUCCEEDED:
        print_job_summary(Console(), job)


@jobs_app.command("watch")
def jobs_watch(job_id: str, address: AddressOpt = None) -> None:
    """Follow a job with a progress bar until it ends."""
    final = run_rpc(lambda c: watch_with_progress(c, job_id, err_console, job_id), address)
    Console().print(_jobs_table([final]))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, address: AddressOpt = None) -> None:
    """Cancel a job (takes effect within one image)."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    job = run_rpc(lambda c: c.call("CancelJob", pb.CancelJobRequest(job_id=job_id)), address).job
    Console().print(_jobs_table([job]))


def register(app: typer.Typer) -> None:
    app.command("prepass")(prepass)
    app.command("datasets")(datasets)
    app.add_typer(glossary_app, name="glossary")
    app.add_typer(jobs_app, name="jobs")
