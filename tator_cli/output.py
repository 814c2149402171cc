"""Output helpers shared by the CLI commands."""

from __future__ import annotations

import typer
from rich.console import Console


def fail_rpc(exc: Exception, console: Console) -> None:
    """Print a failed call's status, reason and field violations; exit 1."""
    from tator_core.errors import parse_rpc_error

    err = parse_rpc_error(exc)  # type: ignore[arg-type]
    console.print(f"[red]{err.code.name}[/] {err.reason}: {err.message}")
    for fld, why in err.field_violations:
        console.print(f"  {fld}: {why}")
    raise typer.Exit(1) from None
