"""Fixture commands: `tator data synth`, `tator regress` (`tator models build` lives with the other model commands).

Heavy libraries (torch, ultralytics, transformers) are imported inside the commands, so `tator --help`
stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tator_fixtures import DEMO_IMAGES, DEMO_SEED, REPO_ROOT, default_synth_dir

DEFAULT_BASELINE = REPO_ROOT / "tests" / "baselines" / "regress.json"

console = Console(stderr=True)
data_app = typer.Typer(help="Datasets: generate the synthetic shapes world.", no_args_is_help=True)


@data_app.command("synth")
def synth(
    seed: Annotated[int, typer.Option(help="Generator seed; same seed => byte-identical files. Seed 0 is the "
                                      "models' training world: evaluate on any other.")] = DEMO_SEED,
    images: Annotated[int, typer.Option(help="Number of images (split 70/15/15).")] = DEMO_IMAGES,
    out: Annotated[Path | None, typer.Option(help="Output dir (default: $TATOR_HOME/data/synth).")] = None,
) -> None:
    """Generate the synthetic dataset (YOLO + COCO layouts, labelmap, glossary)."""
    from tator_fixtures.synth import generate

    out = out or default_synth_dir()
    meta = generate(out, seed=seed, images=images)
    for split, counts in meta["splits"].items():
        console.print(f"{split}: {counts['images']} images ({counts['large_images']} large), "
                      f"{counts['objects']} objects")
    console.print(f"wrote {out}")


def _print_steps(summary: dict) -> None:
    table = Table("step", "tier", "status", "detail")
    for name, record in summary["steps"].items():
        colour = {"ok": "green", "failed": "red"}.get(record["status"], "yellow")
        detail = record.get("error") or record.get("reason") or ""
        if "detections" in record:
            detail = f"{record['detections']} detections"
        table.add_row(name, str(record["tier"]), f"[{colour}]{record['status']}[/{colour}]", detail)
    console.print(table)
    statuses = [r["status"] for r in summary["steps"].values()]
    console.print(", ".join(f"{statuses.count(s)} {s}" for s in ("ok", "skipped", "failed")))


def regress(
    tier: Annotated[list[int] | None, typer.Option(
        "--tier", min=0, max=2, help="Tier(s) to run: 0 smoke, 1 fuzz-lite, 2 deep (default: 0 and 1).",
    )] = None,
    fast: Annotated[bool, typer.Option(help="Skip the heavy model steps (SAM3, Qwen).")] = False,
    baseline: Annotated[Path | None, typer.Option(
        help="Compare with this baseline; exit 1 on a regression.",
    )] = None,
    update_baseline: Annotated[bool, typer.Option(
        help="Accept this run as the baseline (--baseline, default tests/baselines/regress.json); print the diff.",
    )] = False,
    out: Annotated[Path | None, typer.Option(help="Write the JSON summary here.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every step's randomised inputs.")] = 0,
    stack_config: Annotated[Path | None, typer.Option(
        envvar="TATOR_STACK_CONFIG",  # the same stack `tator up` started, whichever ports it uses
        help="Stack config with service addresses (default: $TATOR_STACK_CONFIG, else config/stack.yaml).",
    )] = None,
    fuzz_pack: Annotated[Path | None, typer.Option(
        help="Fuzz pack dir (default: tests/fixtures/fuzz_pack).",
    )] = None,
) -> None:
    """Run the regression harness; exit 0 ok, 1 failed step or regression, 2 fuzz pack refused."""
    from tator_fixtures.fuzz_pack import FuzzPackError
    from tator_fixtures.regress import run_regress

    try:
        summary = run_regress(tiers=tier or (0, 1), fast=fast, seed=seed, stack_config=stack_config,
                              fuzz_pack_dir=fuzz_pack)
    except FuzzPackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if out:
        out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _print_steps(summary)

    failed = [name for name, r in summary["steps"].items() if r["status"] == "failed"]
    if update_baseline:
        _accept(baseline or DEFAULT_BASELINE, summary, failed)
    elif baseline is not None:
        _check(baseline, summary, failed)
    elif failed:
        raise typer.Exit(1)


def _accept(path: Path, summary: dict, failed: list[str]) -> None:
    """Write the new baseline, printing every difference it accepts."""
    from tator_fixtures.regress.diff import accept_baseline, compare

    if failed:
        console.print(f"[red]not accepting a run with failed steps: {', '.join(failed)}[/red]")
        raise typer.Exit(1)
    old = json.loads(path.read_text()) if path.is_file() else None
    if old is None:
        lines = ["(new baseline)"]
    else:
        diff = compare(old, summary)
        lines = diff.regressions + diff.changes or ["(no changes)"]
    for line in lines:
        console.print(f"accept: {line}")
    path.write_text(json.dumps(accept_baseline(old, summary), indent=2, sort_keys=True) + "\n")
    console.print(f"baseline written: {path}")


def _check(path: Path, summary: dict, failed: list[str]) -> None:
    from tator_fixtures.regress.diff import diff_summaries

    if not path.is_file():
        console.print(f"[red]baseline {path} not found[/red]")
        raise typer.Exit(1)
    regressions = diff_summaries(json.loads(path.read_text()), summary)
    for line in regressions:
        console.print(f"[red]regression: {line}[/red]")
    if not regressions:
        console.print(f"no regressions against {path}")
    if failed or regressions:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("regress")(regress)
