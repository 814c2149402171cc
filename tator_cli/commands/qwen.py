"""`tator caption` and `tator synonyms`: call the running Qwen service."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from tator_cli.output import err_console, fail_rpc


def _stack_address() -> str:
    from tator_cli.stack import load_config

    return load_config()["qwen"].address


def _generation(max_new_tokens: int | None, sample: bool, seed: int | None) -> Any:
    from tator_core.gen.tator.common.v1 import common_pb2

    gen = common_pb2.GenerationSettings(do_sample=sample)
    if max_new_tokens is not None:
        gen.max_new_tokens = max_new_tokens
    if seed is not None:
        gen.seed = seed
    return gen


def _call(address: str, method: str, request: Any, image_data: bytes | None = None, timeout_s: float = 600) -> Any:
    """One RPC; a failed call prints its status and reason and exits 1."""
    import grpc

    from tator_core.client import ServiceClient
    from tator_core.gen.tator.qwen.v1 import qwen_pb2_grpc

    async def go() -> Any:
        client = ServiceClient(address, qwen_pb2_grpc.QwenServiceStub, timeout_s=timeout_s)
        try:
            return await client.call(method, request, image_data=image_data)
        finally:
            await client.close()

    try:
        return asyncio.run(go())
    except grpc.RpcError as exc:
        fail_rpc(exc, err_console)


def _print_json(response: Any) -> None:
    from google.protobuf.json_format import MessageToJson

    typer.echo(MessageToJson(response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))


def _read_text(path: Path | None) -> str:
    return path.read_text(encoding="utf-8") if path is not None else ""


def caption(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="image file"),
    windowed: str | None = typer.Option(None, "--windowed", help="caption a COLSxROWS grid of windows, e.g. 2x2"),
    include_full: bool = typer.Option(False, "--include-full", help="windowed: also caption the full frame as a draft"),
    avoid: list[str] = typer.Option([], "--avoid", help="raw labelmap tag the caption must not contain (repeatable)"),
    glossary: Path | None = typer.Option(None, "--glossary", exists=True, dir_okay=False, help="glossary file"),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, max=4096),
    sample: bool = typer.Option(False, "--sample", help="sample instead of greedy decoding"),
    seed: int | None = typer.Option(None, "--seed"),
    model_id: str = typer.Option("", "--model-id", help="registry id; default model when empty"),
    address: str = typer.Option(None, "--address", help="qwen service host:port (default: config/stack.yaml)"),
    as_json: bool = typer.Option(False, "--json", help="print the response as JSON"),
) -> None:
    """Caption IMAGE with the Qwen service (full frame, or windows plus a merged caption)."""
    from tator_core.client import image_ref
    from tator_core.gen.tator.common.v1 import common_pb2
    from tator_core.gen.tator.qwen.v1 import qwen_pb2

    data = image.read_bytes()
    request = qwen_pb2.CaptionRequest(image=image_ref(data, with_bytes=False), avoid_labels=avoid,
                                      glossary=_read_text(glossary), model_id=model_id,
                                      generation=_generation(max_new_tokens, sample, seed))
    if windowed:
        from tator_core.geometry import parse_grid

        try:
            cols, rows = parse_grid(windowed)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--windowed") from None
        request.mode = qwen_pb2.CAPTION_MODE_WINDOWED
        request.windows.CopyFrom(common_pb2.WindowSpec(grid=common_pb2.GridSpec(cols=cols, rows=rows),
                                                       include_full=include_full))
    response = _call(address or _stack_address(), "Caption", request, image_data=data)
    if as_json:
        _print_json(response)
        return
    _print_caption(response)


def _print_caption(response: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from tator_core.convert import warning_text
    from tator_core.timestamps import milliseconds

    console = Console()
    if response.windows:
        table = Table(title="windows")
        for col in ("window", "box", "caption / rejected because", "tokens"):
            table.add_column(col)
        for w in response.windows:
            b = w.window.box
            table.add_row(w.window.name, f"{b.x1:.0f},{b.y1:.0f},{b.x2:.0f},{b.y2:.0f}",
                          w.caption or f"[red]{w.degenerate_reason}[/red]", str(w.generated_tokens))
        console.print(table)
    if response.caption:
        console.print(f"[bold]caption[/bold]: {response.caption}")
    else:
        console.print(f"[bold red]no caption[/bold red]: {response.degenerate_reason}")
    for label, items in (("rewritten", response.rewritten_tokens), ("flagged", response.flagged_tokens),
                         ("warnings", [warning_text(w) for w in response.warnings])):
        if items:
            console.print(f"{label}: {', '.join(items)}")
    console.print(f"tokens: {response.generated_tokens}  total: {milliseconds(response.timing.total):.0f} ms")


def synonyms(
    labels: list[str] = typer.Argument(..., help="labels to expand"),
    cap: int | None = typer.Option(None, "--cap", min=0, max=100, help="terms per label (default 10)"),
    glossary: Path | None = typer.Option(None, "--glossary", exists=True, dir_okay=False, help="glossary file"),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, max=4096),
    model_id: str = typer.Option("", "--model-id", help="registry id; default model when empty"),
    address: str = typer.Option(None, "--address", help="qwen service host:port (default: config/stack.yaml)"),
    as_json: bool = typer.Option(False, "--json", help="print the response as JSON"),
) -> None:
    """Synonyms per LABEL: glossary terms, else the model's, else the natural label."""
    from tator_core.gen.tator.qwen.v1 import qwen_pb2

    request = qwen_pb2.ExpandSynonymsRequest(labels=labels, glossary=_read_text(glossary), model_id=model_id,
                                             generation=_generation(max_new_tokens, False, None))
    if cap is not None:
        request.max_terms_per_class = cap
    response = _call(address or _stack_address(), "ExpandSynonyms", request)
    if as_json:
        _print_json(response)
        return
    from rich.console import Console
    from rich.table import Table

    from tator_core.convert import warning_text
    from tator_core.enums import short_name
    from tator_core.gen.tator.qwen.v1 import qwen_pb2

    table = Table(title="synonyms")
    for col in ("label", "origin", "terms"):
        table.add_column(col)
    for lt in response.labels:
        table.add_row(lt.label, short_name(qwen_pb2.TermsOrigin, lt.terms_origin), ", ".join(lt.terms))
    console = Console()
    console.print(table)
    console.print(f"parsed_json: {response.parsed_json}  dropped_by_cap: {response.dropped_by_cap}")
    if response.warnings:
        console.print("warnings: " + ", ".join(warning_text(w) for w in response.warnings))


def register(app: typer.Typer) -> None:
    app.command("caption")(caption)
    app.command("synonyms")(synonyms)
