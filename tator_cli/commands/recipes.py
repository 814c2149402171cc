"""`tator recipes list|get|put|delete|import|export`: saved prepass recipes on the orchestrator.

A recipe travels as the JSON `get --json` prints (the Recipe message with its proto field names), so
`get --json > r.json`, an edit, and `put r.json` round-trip; `export`/`import` move the orchestrator's
zip archive between stacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from tator_cli.output import dump_json, run_rpc

err_console = Console(stderr=True)
recipes_app = typer.Typer(help="Saved prepass recipes: list, get, put, delete, import, export.",
                          no_args_is_help=True)
AddressOpt = Annotated[str | None, typer.Option(help="Orchestrator host:port (default from config/stack.yaml).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
PAGE_SIZE = 200
#: ImportRecipeRequest.archive's max_len.
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]{message}[/red]", soft_wrap=True)
    raise typer.Exit(1)


def _print(recipe: Any, as_json: bool) -> None:
    if as_json:
        return dump_json(recipe)
    from google.protobuf.json_format import MessageToDict

    console = Console()
    console.print(f"[bold]{recipe.id}[/] {recipe.name}" + (f": {recipe.description}" if recipe.description else ""))
    console.print(f"updated {recipe.update_time.ToJsonString()}, layout version {recipe.schema_version}")
    console.print_json(json.dumps(MessageToDict(recipe.config, preserving_proto_field_name=True)))
    if recipe.glossary:
        console.print(f"glossary:\n{recipe.glossary}")


@recipes_app.command("list")
def recipes_list(address: AddressOpt = None, as_json: JsonOpt = False) -> None:
    """Every saved recipe, by id (all pages)."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    async def every_page(client: Any) -> list[Any]:
        out: list[Any] = []
        token = ""
        while True:
            resp = await client.call("ListRecipes", pb.ListRecipesRequest(page_size=PAGE_SIZE, page_token=token))
            out.extend(resp.recipes)
            token = resp.next_page_token
            if not token:
                return out

    recipes = run_rpc(every_page, address)
    if as_json:
        return dump_json(pb.ListRecipesResponse(recipes=recipes))
    table = Table("id", "name", "description", "updated", title="recipes")
    for r in recipes:
        table.add_row(r.id, r.name, r.description, r.update_time.ToJsonString())
    Console().print(table)


@recipes_app.command("get")
def recipes_get(recipe_id: Annotated[str, typer.Argument(help="Recipe id.")], address: AddressOpt = None,
                as_json: JsonOpt = False) -> None:
    """One recipe: its prepass config and glossary."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    _print(run_rpc(lambda c: c.call("GetRecipe", pb.GetRecipeRequest(id=recipe_id)), address).recipe, as_json)


@recipes_app.command("put")
def recipes_put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="Recipe JSON, as `tator recipes get --json` prints it.")],
    recipe_id: Annotated[str | None, typer.Option("--id", help="Save under this id (replaces that recipe); "
                                                  "default: the file's id, else one derived from the name.")] = None,
    address: AddressOpt = None, as_json: JsonOpt = False,
) -> None:
    """Save (create or replace) a recipe. Server-set fields in the file (times, layout version) are ignored."""
    from google.protobuf.json_format import ParseDict, ParseError

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    try:
        recipe = ParseDict(json.loads(file.read_text(encoding="utf-8")), pb.Recipe())
    except (ParseError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        _fail(f"{file}: not a recipe: {exc}")
    for server_set in ("create_time", "update_time", "schema_version"):
        recipe.ClearField(server_set)
    if recipe_id is not None:
        recipe.id = recipe_id
    saved = run_rpc(lambda c: c.call("PutRecipe", pb.PutRecipeRequest(recipe=recipe)), address).recipe
    if as_json:
        return dump_json(saved)
    err_console.print(f"saved {saved.id}")


@recipes_app.command("delete")
def recipes_delete(recipe_id: Annotated[str, typer.Argument(help="Recipe id.")], address: AddressOpt = None) -> None:
    """Delete a recipe."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    run_rpc(lambda c: c.call("DeleteRecipe", pb.DeleteRecipeRequest(id=recipe_id)), address)
    err_console.print(f"deleted {recipe_id}")


@recipes_app.command("export")
def recipes_export(
    recipe_id: Annotated[str, typer.Argument(help="Recipe id.")],
    out: Annotated[Path | None, typer.Option(help="Archive file (default: the server's suggested name here).")] = None,
    address: AddressOpt = None,
) -> None:
    """Write a recipe's zip archive (recipe, glossary, manifest) for `tator recipes import` elsewhere."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.hashing import atomic_write_bytes

    resp = run_rpc(lambda c: c.call("ExportRecipe", pb.ExportRecipeRequest(id=recipe_id)), address)
    path = out or Path(Path(resp.filename).name or f"{recipe_id}.recipe.zip")  # a name, never a server path
    atomic_write_bytes(path, resp.archive)
    err_console.print(f"wrote {path} ({len(resp.archive)} bytes)")


@recipes_app.command("import")
def recipes_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Archive from `tator recipes export`.")],
    address: AddressOpt = None, as_json: JsonOpt = False,
) -> None:
    """Store a recipe archive; an id already taken is imported under a new id (printed)."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    if file.stat().st_size > MAX_ARCHIVE_BYTES:  # the request's own bound; not read into memory past it
        _fail(f"{file}: {file.stat().st_size} bytes; an archive is at most {MAX_ARCHIVE_BYTES}")
    resp = run_rpc(lambda c: c.call("ImportRecipe", pb.ImportRecipeRequest(archive=file.read_bytes())), address)
    if as_json:
        return dump_json(resp)
    err_console.print(f"imported {resp.recipe.id}" + (f" ({resp.notice})" if resp.notice else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")
