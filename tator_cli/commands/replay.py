"""`tator replay RUN_ID`: run a recorded prepass again and say whether its candidates are identical.

Exit status: 0 identical, 1 the candidates differ (the first differences are listed), 2 the run could
not be replayed (unknown run id, an input that changed since, the client's image needed: the status
and reason are printed), so a script can tell "not reproducible" from "not replayable".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tator_cli.commands.orchestrator import AddressOpt, JsonOpt, stage_table
from tator_cli.output import dump_json, run_rpc

EXIT_DIFFERS, EXIT_NOT_REPLAYED = 1, 2


def _box(c: Any) -> str:
    b = c.box
    return f"{b.x1:.2f},{b.y1:.2f},{b.x2:.2f},{b.y2:.2f}"


def print_replay(console: Console, out: Any) -> None:
    from tator_core.enums import short_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.timestamps import milliseconds

    verdict = "[green]identical[/]" if out.identical else f"[red]differs[/] ({out.difference_count} differences)"
    console.print(f"[bold]replay of {out.run_id}[/]: {verdict}")
    facts = Table(show_header=False)
    for key, value in (("image", out.image_name or f"client image {out.image_sha256[:12]}"),
                       ("dataset", out.dataset_id), ("stored run", out.stored_time.ToDatetime().isoformat() + "Z"),
                       ("new run_id", out.new_run_id + ("" if out.new_run_id == out.run_id else "  (differs)")),
                       ("candidates", f"{out.stored_candidates} stored, {out.replayed_candidates} replayed"),
                       ("digest", f"{out.stored_digest[:16]} stored, {out.replayed_digest[:16]} replayed")):
        facts.add_row(key, value)
    console.print(facts)
    if out.differences:
        table = Table(title=f"first {len(out.differences)} of {out.difference_count} differences")
        for col in ("kind", "label", "stored box", "stored score", "replayed box", "replayed score", "fields"):
            table.add_column(col)
        for d in out.differences:
            s, r = (d.stored if d.HasField("stored") else None), (d.replayed if d.HasField("replayed") else None)
            table.add_row(short_name(pb.ReplayDifferenceKind, d.kind), d.stored.label or d.replayed.label,
                          _box(s) if s else "", f"{s.score:.6f}" if s else "", _box(r) if r else "",
                          f"{r.score:.6f}" if r else "", ", ".join(d.fields))
        console.print(table)
    console.print(stage_table({short_name(pb.PrepassStage, s.stage): milliseconds(s.duration) for s in out.stages if s.ran},
                              "replay stage timings"))


def replay(
    run_id: Annotated[str, typer.Argument(help="run_id of a prepass result (tator prepass --json shows it).")],
    image: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="The image file, for a run "
                                               "whose image was sent by the client (the orchestrator keeps "
                                               "only its hash).")] = None,
    max_differences: Annotated[int, typer.Option(min=0, max=1000, help="Differences listed at most "
                                                                       "(0 = the service's 20).")] = 0,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a recorded prepass without the cache; exit 0 identical, 1 differs, 2 not replayable."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    req = pb.ReplayRequest(run_id=run_id, image_data=image.read_bytes() if image else b"",
                           max_differences=max_differences)
    out = run_rpc(lambda c: c.call("Replay", req), address, exit_code=EXIT_NOT_REPLAYED)
    dump_json(out) if as_json else print_replay(Console(), out)
    if not out.identical:
        raise typer.Exit(EXIT_DIFFERS)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
