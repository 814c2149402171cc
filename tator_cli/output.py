"""Output helpers shared by the CLI commands."""

from __future__ import annotations

import typer
from rich.console import Console


def fail_rpc(exc: Exception, console: Console) -> None:
    """Print a failed call's status, reason and field violations; exit 1."""
    from tator_core.errors import parse_rpc_error

    err = parse_rpc_error(exc)  # type: ignore[arg-type]  # callers pass the AioRpcError they caught
    console.print(f"[red]{err.code.name}[/] {err.reason}: {err.message}")
    for fld, why in err.field_violations:
        console.print(f"  {fld}: {why}")
    raise typer.Exit(1) from None


def call_and_show(run, as_json: bool, printer, console: Console) -> None:
    """Run a blocking call; on a failed RPC print its status and exit 1; else
    print the response as JSON (proto field names) or through `printer`."""
    import json

    import grpc
    from google.protobuf.json_format import MessageToDict

    try:
        resp = run()
    except grpc.aio.AioRpcError as exc:
        fail_rpc(exc, console)
    if as_json:
        typer.echo(json.dumps(MessageToDict(resp, preserving_proto_field_name=True), indent=2))
    else:
        printer(resp)
