"""Output helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:  # grpc is imported where a command calls, so the CLI starts fast
    import grpc

err_console = Console(stderr=True)

# Width for tables written to a pipe or a log: rich falls back to 80 columns there and elides cells
# (a metric with its interval would read "0.957 [0.9…"), so a report in CI logs would lose its numbers.
PIPE_WIDTH = 200


def stdout_console() -> Console:
    """Console for reports on stdout: the terminal's width, or PIPE_WIDTH when not a terminal
    (COLUMNS, when set, still wins, as rich reads it)."""
    console = Console()
    return console if console.is_terminal or "COLUMNS" in os.environ else Console(width=PIPE_WIDTH)


def fail_rpc(exc: grpc.RpcError, console: Console, exit_code: int = 1) -> NoReturn:
    """Print a failed call's status, reason and field violations; exit with exit_code."""
    from tator_core.errors import parse_rpc_error

    err = parse_rpc_error(exc)
    console.print(f"[red]{err.code.name}[/] {err.reason}: {err.message}")
    for fld, why in err.field_violations:
        console.print(f"  {fld}: {why}")
    raise typer.Exit(exit_code) from None


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


def default_address() -> str:
    """The orchestrator's host:port from the stack config."""
    from tator_cli.stack import load_config

    return load_config()["orchestrator"].address


def run_rpc(coro_fn: Callable[[Any], Awaitable[Any]], address: str | None, timeout_s: float = 600.0,
            exit_code: int = 1) -> Any:
    """Run `coro_fn(client)` against the orchestrator; a failed RPC prints its status and exits `exit_code`."""
    import grpc

    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc

    async def main() -> Any:
        client = ServiceClient(address or default_address(), orchestrator_pb2_grpc.OrchestratorServiceStub,
                               timeout_s=timeout_s)
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as exc:
        fail_rpc(exc, err_console, exit_code)


def dump_json(msg: Any) -> None:
    """A message as JSON with the proto field names."""
    from google.protobuf.json_format import MessageToDict

    typer.echo(json.dumps(MessageToDict(msg, preserving_proto_field_name=True), indent=2, sort_keys=True))
