"""`tator models build|add|list|activate|remove`: the local model registry ($TATOR_HOME/models/registry.yaml).

These commands edit the registry file. A running service adopts an added model on its next ListModels or
the first call naming it (tator_core.lifecycle); it stops listing a removed one at its next start.
`activate` goes through the running service's SetDefaultModel when it can, so the new default applies
at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
models_app = typer.Typer(help="Models: build the fixtures, add your own checkpoints, choose defaults.",
                         no_args_is_help=True)

RegistryOpt = Annotated[Path | None, typer.Option(
    help="Registry file (default: $TATOR_HOME/models/registry.yaml; models are placed beside it).")]


def _registry(path: Path | None) -> Path:
    from tator_cli.stack import registry_path

    return (path or registry_path()).resolve()


def _fail(message: str) -> NoReturn:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)


@models_app.command("build")
def build(
    out: Annotated[Path | None, typer.Option(help="Models dir (default: $TATOR_HOME/models).")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Synthetic dataset the classifier head is trained on (default: $TATOR_HOME/train/synth, the seed-0 "
             "training world, generated if absent; keep it out of the data root you evaluate on).",
    )] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random-init models.")] = 0,
    force: Annotated[bool, typer.Option(help="Rebuild even when the build stamp matches.")] = False,
) -> None:
    """Write every fixture model file and registry.yaml (once; later runs reuse them)."""
    from tator_fixtures import default_models_dir, default_train_dir
    from tator_fixtures.models import build_models

    registry = build_models(out or default_models_dir(), data=data or default_train_dir(), seed=seed, force=force)
    console.print(f"registry: {registry}")


@models_app.command("add")
def add(
    family: Annotated[str, typer.Argument(help="yolo, rfdetr, sam3, qwen, clip or dinov3.")],
    path: Annotated[Path, typer.Argument(help="Checkpoint file (yolo .pt, rfdetr .pth) or Hugging Face folder.")],
    labelmap: Annotated[Path | None, typer.Option(
        help="Class names, one per line in class-id order; must match the checkpoint's (yolo, rfdetr).")] = None,
    name: Annotated[str | None, typer.Option(help="Registry id (default: from the file or folder name).")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", help="Family option key=value, repeatable (yolo imgsz=320; rfdetr variant=nano resolution=384; "
                         "qwen dtype=bfloat16 ...).")] = None,
    default: Annotated[bool | None, typer.Option(
        "--default/--no-default", help="Make it its family's default (default: only when the family has none).",
    )] = None,
    device: Annotated[str, typer.Option(help="Device of the check: cpu, cuda:N or auto.")] = "cpu",
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entry and the check as JSON.")] = False,
) -> None:
    """Register your own checkpoint: copy it under the model directory, load it and run one inference in the
    serving service's own code, and only then write the registry."""
    from tator_cli.checkpoints import AddError, add_model, parse_options
    from tator_core.registry import RegistryError

    try:
        added = add_model(_registry(registry), family, path, name=name, labelmap_file=labelmap,
                          options=parse_options(option or []), default=default, device=device)
    except (AddError, RegistryError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"entry": added.entry, "check": added.check}, indent=2))
        return
    entry, check = added.entry, added.check
    console.print(f"added [bold]{entry['id']}[/] ({entry['family']}) at {entry['path']}"
                  + (" [green]default[/]" if entry["default"] else ""))
    if entry.get("labelmap"):
        console.print(f"labelmap: {', '.join(entry['labelmap'])}")
    console.print(f"check: loaded in {check.get('load_s')} s, one inference in {check.get('inference_s')} s")


@models_app.command("list")
def list_models(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines with the full SHA-256.")] = False,
) -> None:
    """The registry: family, name, default, training images, path and SHA-256 of the weights."""
    from tator_core.registry import Registry

    reg = Registry.load(_registry(registry))
    root = _registry(registry).parent
    rows: list[dict[str, Any]] = []
    for entry in sorted(reg.entries.values(), key=lambda e: (e.family, e.id)):
        if family and entry.family != family:
            continue
        default = reg.default(entry.family)
        rel = entry.path.relative_to(root) if entry.path.is_relative_to(root) else entry.path
        rows.append({"family": entry.family, "name": entry.id,
                     "default": default is not None and default.id == entry.id,
                     "trained_on": len(entry.trained_on.image_sha256) if entry.trained_on else None,
                     "path": str(rel), "sha256": entry.version() or None, "missing": entry.missing_reason or None})
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("family", "name", "default", "trained_on", "path", "sha256")
    for row in rows:
        table.add_row(row["family"], row["name"], "yes" if row["default"] else "",
                      "-" if row["trained_on"] is None else str(row["trained_on"]), row["path"],
                      (row["sha256"] or "")[:16] or "[red]missing[/]")
    Console().print(table)


@models_app.command("activate")
def activate(
    name: Annotated[str, typer.Argument(help="Registry id to make its family's default.")],
    registry: RegistryOpt = None,
) -> None:
    """Make a model its family's default, persisted in the registry; a running stack switches at once."""
    import grpc

    from tator_cli.checkpoints import activate_model
    from tator_cli.output import fail_rpc
    from tator_core.errors import TatorError
    from tator_core.registry import RegistryError

    path = _registry(registry)
    try:
        done = activate_model(path, name, address=_service_address(path, name, registry))
    except (TatorError, RegistryError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    except grpc.aio.AioRpcError as exc:
        fail_rpc(exc, console)
    console.print(f"{name} is now the default {done.family} model"
                  + (" (the running service switched)" if done.live else "") + (f"; {done.note}" if done.note else ""))


@models_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Registry id to remove.")],
    force: Annotated[bool, typer.Option(help="Remove it even when it is its family's default.")] = False,
    keep_files: Annotated[bool, typer.Option(help="Leave its files in the model directory.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Unregister a model (a running stack unloads it at once); its files are deleted only when they lie
    inside the model directory and no other entry uses them."""
    from tator_cli.checkpoints import remove_model
    from tator_core.errors import TatorError
    from tator_core.registry import RegistryError

    path = _registry(registry)
    try:
        deleted, served = remove_model(path, name, force=force, keep_files=keep_files,
                                       address=_service_address(path, name, registry))
    except (TatorError, RegistryError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    console.print(f"removed {name}" + (f"; {served}" if served else "")
                  + (f"; deleted {', '.join(map(str, deleted))}" if deleted else ""))


def _service_address(path: Path, name: str, registry: Path | None) -> str | None:
    """The address of the service that serves `name`'s family when the registry is the stack's own (a
    registry named with --registry is edited offline)."""
    from tator_cli.checkpoints import SERVICE_OF
    from tator_cli.stack import load_config
    from tator_core.registry import Registry

    family = Registry.load(path).get(name).family
    return load_config()[SERVICE_OF[family]].address if registry is None and family in SERVICE_OF else None


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
